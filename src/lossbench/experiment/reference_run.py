"""A run of a model with nothing to train (``python -m pipeline.run model=bm25``): the reference
system, evaluated as it is on the test split.

    prepare -> skip -> data -> track -> test (and eval.collections) -> report

Which stages a run has is the model config's to say, never the model's name: a config class whose
``trainable`` is False (:class:`~lossbench.models.lexical.LexicalConfig`) gets these stages
(:func:`experiment_for`); every other one :class:`~lossbench.experiment.stages.Experiment`'s. The
test and report stages are a training run's (the same ``test/*`` metrics, ``test.run.txt``,
``test.qrels.txt``, per-query table, ``test/<collection>/*`` for ``eval.collections``), so the run
is a system in any sweep (``-m model=dpr_minilm,bm25``) and in ``pipeline.compare``, where it is
the reference row (tag ``lossbench_role=reference``: :mod:`lossbench.experiment.reference`).

No loss, regularizer, schedule, trainer, index or first stage applies, so none is checked against
the model, and the run's record holds none: its params and ``config.yaml`` keep only
:data:`REFERENCE_KEYS`, with ``loss``, ``regularizer`` and the schedules named ``none`` (tags too).
Its ``system_hash`` covers that record (every loss of a sweep gives the same system); its
``config_hash`` stays the whole command's, so each job of a sweep is a run of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lossbench.data.collection import Collection
from lossbench.evaluation import evaluate_run
from lossbench.experiment.reference import REFERENCE_ROLE
from lossbench.experiment.retrieval import Retrieved
from lossbench.experiment.setup_stages import Plan
from lossbench.experiment.stages import Experiment

REFERENCE_KEYS = ("seed", "paths", "data", "dataset", "model", "eval", "tracking")
"""The config keys a reference run reads; the rest configure training."""

UNUSED_GROUPS = ("loss", "regularizer", "regularizer_schedule", "schedule")
"""Groups a reference run records as ``none`` (tags ``loss``, ``regularizer``, ...)."""


def is_trainable(cfg: DictConfig) -> bool:
    """Whether the model config's class trains (its ``trainable``; True when it cannot be read)."""
    from hydra.utils import get_class

    try:
        return bool(getattr(get_class(str(cfg.model.config._target_)), "trainable", True))
    except Exception:  # noqa: BLE001 -- a broken model config fails in the run's own checks
        return True


def experiment_for(cfg: DictConfig) -> Experiment:
    """The stages the model config asks for: :class:`ReferenceRun` for a model with nothing to
    train, else a training :class:`~lossbench.experiment.stages.Experiment`."""
    return Experiment(cfg) if is_trainable(cfg) else ReferenceRun(cfg)


def reference_config(cfg: DictConfig) -> DictConfig:
    """What a reference run records of ``cfg``: :data:`REFERENCE_KEYS`, resolved, the unused groups
    named ``none``, and a run name that says the model (``bm25 · seed 0``) unless one is set."""
    from lossbench.experiment.config import plain_dict
    from lossbench.experiment.jobs import SEPARATOR, job_name

    resolved = plain_dict(cfg)
    kept = {key: resolved[key] for key in REFERENCE_KEYS if key in resolved}
    kept.update({group: {"name": "none"} for group in UNUSED_GROUPS})
    if not cfg.tracking.get("run_name"):  # job_name: "<loss> · seed <n> · <overrides>"
        parts = job_name(cfg).split(SEPARATOR)
        kept["tracking"]["run_name"] = SEPARATOR.join([str(cfg.model.name), *parts[1:]])
    reduced = OmegaConf.create(kept)
    assert isinstance(reduced, DictConfig)
    return reduced


@dataclass
class LexicalRetrieval:
    """Retrieval with a retriever that needs no model (a
    :class:`~lossbench.retrieval.first_stage.FirstStage`): the interface of
    :class:`~lossbench.experiment.retrieval.BiEncoderRetrieval` that the test stages use."""

    retriever: Any
    k: int

    def evaluate(
        self, module: Any, collection: Collection, split: str, metrics: Sequence[str]
    ) -> Retrieved:
        """Search ``split``'s judged queries (``module``: unused, there is none) and evaluate."""
        run = self.retriever.search(collection, collection.split_queries(split), self.k)
        return Retrieved(run, evaluate_run(collection.qrels[split], run, metrics), None)


class ReferenceRun(Experiment):
    """The stages of a run of a model with nothing to train (see the module docstring)."""

    trains = False

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__(cfg)
        self.command_cfg = cfg  # the whole composed config: its hash tells the jobs apart
        self.module = None
        self.checkpoints: list[Any] = []

    # Experiment.run's flow with nothing to build, fit or save: prepare -> skip? -> data -> track
    # -> test -> report
    def build_model(self) -> None:
        """Nothing to build: the retriever is the model (built by :meth:`prepare`)."""

    def fit(self) -> bool:
        """Nothing to train; this (single) process goes on to test."""
        return True

    def save_model(self) -> None:
        """Nothing trained, nothing to save."""

    def prepare(self) -> None:
        """Check the config (schema, evaluation settings), build the retriever; no loss, schedule
        or trainer is built or checked against it."""
        from hydra.utils import instantiate

        from lossbench.experiment.config_checks import check_config
        from lossbench.experiment.identity import config_hash
        from lossbench.experiment.zero_shot import eval_collections

        with self.watch.stage("prepare"):
            check_config(self.command_cfg)
            model_config = instantiate(self.command_cfg.model.config)
            self.plan = Plan(
                losses=[],
                weights=[],
                optimizer=None,
                lr_schedule=None,
                model_config=model_config,
                config_hash=config_hash(self.command_cfg),
            )
            self.plan.collections = eval_collections(self.command_cfg)
            self.cfg = reference_config(self.command_cfg)
            self.retrieval = LexicalRetrieval(model_config.retriever, int(self.cfg.eval.k))

    def tags(self) -> dict[str, Any]:
        tags = super().tags()
        tags["config_hash"] = self.plan.config_hash
        tags["lossbench_role"] = REFERENCE_ROLE
        return tags

    def describe(self, counts: dict[str, Any]) -> str:
        """What is evaluated on what (Markdown): a reference, nothing trained."""
        cfg = self.cfg
        settings = dict(self.plan.model_config.retriever.settings)
        described = ", ".join(f"{key}={value}" for key, value in settings.items())
        return (
            f"Reference **{cfg.model.name}** ({described}) on **{cfg.dataset.name}** "
            f"({counts.get('docs', 0)} docs; {counts.get('test_queries', 0)} test queries): "
            "nothing trained, no loss applies."
        )

    def test(self) -> None:
        """Search the test queries with the retriever (it indexes the corpus first) and evaluate."""
        with self.watch.stage("search"):
            retrieved = self.retrieval.evaluate(
                None, self.collection, "test", list(self.cfg.eval.metrics)
            )
        self.test_run, self.evaluation = retrieved.run, retrieved.evaluation

    def write_run(self, ranking: Any, name: str) -> Path:
        """A ranking of record as a TREC run file (tag ``lossbench-<model>``)."""
        from lossbench.data.sources.formats import write_trec_run

        tag = f"lossbench-{self.cfg.model.name}"
        return write_trec_run(ranking, self.folder / name, tag=tag)
