"""Zero-shot evaluation: the trained model on other test collections (``eval.collections``), as
BEIR-style comparisons report it.

Each entry of ``eval.collections`` is a ``dataset`` option, by name (``cranfield``) or as a mapping
with its own settings (``{dataset: local, name: scifact, path: /data/scifact}``: ``dataset`` names
the option, ``name`` the label, every other key overrides the option's). After the in-domain test,
each collection is indexed with the trained model, its test queries searched and evaluated with
the run's metrics: ``test/<label>/<metric>`` in MLflow, and the files a test stage writes under
``collections/<label>/`` (``test.run.txt``, ``test.qrels.txt``, ``per_query.csv``), which
``pipeline.compare`` reads.

Before training, the untrained model is evaluated on each collection the same way
(``test/<label>/base_<metric>``, ``collections/<label>/test_base.run.txt``), once per model,
collection and evaluation settings (:mod:`lossbench.experiment.base_eval_cache`), so the report
shows whether training helped or hurt out of domain too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("lossbench")

COLLECTIONS_FOLDER = "collections"
"""The artifact folder holding one folder of run files per collection."""


@dataclass
class EvalCollection:
    """One entry of ``eval.collections``: its label and its resolved dataset config."""

    label: str
    dataset: DictConfig
    collection: Any = None  # the loaded Collection, once load() ran
    base: dict[str, float] | None = None  # the untrained model's test means, once evaluated

    def load(self) -> Any:
        """Load the collection and check it has judged test queries (a clear error otherwise)."""
        from lossbench.experiment.checks import ConfigurationError, warn_missing_judged_docs
        from lossbench.experiment.config import instantiate_unwrapped

        self.collection = instantiate_unwrapped(self.dataset.collection)
        if not self.collection.split_queries("test"):
            raise ConfigurationError(
                f"eval.collections: {self.label!r} has no judged test queries to evaluate; "
                "give it a test split (a qrels file for 'test') or leave it out"
            )
        warn_missing_judged_docs(self.collection, ["test"])
        return self.collection


def eval_collections(cfg: DictConfig) -> list[EvalCollection]:
    """``eval.collections`` resolved against ``conf/dataset/`` (an unknown option or a repeated
    label: a clear error, before anything runs)."""
    from lossbench.experiment.checks import ConfigurationError
    from lossbench.experiment.jobs import group_options

    entries = list(cfg.eval.get("collections") or [])
    if not entries:
        return []
    options = group_options("dataset")
    chosen: list[EvalCollection] = []
    for entry in entries:
        settings = OmegaConf.to_container(entry) if isinstance(entry, DictConfig) else entry
        if isinstance(settings, str):
            settings = {"dataset": settings}
        if not isinstance(settings, dict) or "dataset" not in settings:
            raise ConfigurationError(
                f"eval.collections entry {settings!r}: give a dataset option (cranfield) or a "
                "mapping naming one ({dataset: local, path: DIR, name: LABEL})"
            )
        settings = dict(settings)
        option = str(settings.pop("dataset"))
        if option not in options:
            raise ConfigurationError(
                f"eval.collections: no dataset option {option!r}; valid: {', '.join(sorted(options))}"
            )
        node = OmegaConf.merge(options[option], settings)
        scope = OmegaConf.create({"paths": OmegaConf.to_container(cfg.paths), "dataset": node})
        dataset = OmegaConf.create(OmegaConf.to_container(scope.dataset, resolve=True))
        assert isinstance(dataset, DictConfig)
        label = str(dataset.get("name") or option)
        if any(c.label == label for c in chosen):
            raise ConfigurationError(
                f"eval.collections: {label!r} appears twice; give one a name (name: LABEL)"
            )
        chosen.append(EvalCollection(label, dataset))
    return chosen


def evaluate_collections(experiment: Any, collections: list[EvalCollection]) -> dict[str, Any]:
    """Index, search and evaluate each collection with the experiment's (trained) model; log
    ``test/<label>/<metric>`` and the collection's files. Returns label -> evaluation means."""
    from lossbench.data.sources.formats import write_qrels
    from lossbench.evaluation import mlflow_metric_name
    from lossbench.experiment.ui import QRELS_FILE, RUN_FILE

    cfg, tracked, results = experiment.cfg, experiment.tracked, {}
    for test in collections:
        with experiment.watch.stage(f"collection_{test.label}"):
            retrieved = experiment.retrieval.evaluate(
                experiment.module, test.collection, "test", cfg.eval.metrics
            )
        evaluation = retrieved.evaluation
        folder = Path(experiment.folder) / COLLECTIONS_FOLDER / test.label
        folder.mkdir(parents=True, exist_ok=True)
        files = [
            experiment.write_run(
                evaluation.ranking, f"{COLLECTIONS_FOLDER}/{test.label}/{RUN_FILE}"
            ),
            evaluation.write_per_query_csv(folder / "per_query.csv"),
            write_qrels(test.collection.qrels["test"], folder / QRELS_FILE),
        ]
        for path in files:
            tracked.log_artifact(path, f"{COLLECTIONS_FOLDER}/{test.label}")
        prefix = f"test/{test.label}"
        tracked.log_metrics({mlflow_metric_name(m, prefix): v for m, v in evaluation.means.items()})
        results[test.label] = evaluation.means
    return results


def evaluate_untrained_collections(experiment: Any, collections: list[EvalCollection]) -> None:
    """The untrained model on each collection: ``test/<label>/base_<metric>`` and
    ``collections/<label>/test_base.run.txt``, read from the base-evaluation cache when an entry
    for this model, collection and evaluation exists (else computed and stored, unless
    ``eval.reuse_base=false``)."""
    from lossbench.data.fingerprint import corpus_fingerprint, split_fingerprint
    from lossbench.evaluation import mlflow_metric_name
    from lossbench.experiment.base_eval_cache import (
        BaseEvaluation,
        base_eval_key,
        look_up,
        with_tag,
        write_entry,
    )
    from lossbench.experiment.reuse import random_state_kept
    from lossbench.experiment.ui import BASE_RUN_FILE

    cfg, tracked, retrieval = experiment.cfg, experiment.tracked, experiment.retrieval
    inference = (retrieval.device.type, retrieval.batch_size)
    for test in collections:
        name = f"{COLLECTIONS_FOLDER}/{test.label}/{BASE_RUN_FILE}"
        (Path(experiment.folder) / COLLECTIONS_FOLDER / test.label).mkdir(
            parents=True, exist_ok=True
        )

        def make_key(collection: Any = test.collection) -> str:
            data = {
                "corpus": corpus_fingerprint(collection.docs),
                "test": split_fingerprint(collection, "test"),
            }
            identity = {"test": retrieval.identity()}
            return base_eval_key(cfg, experiment.module, data, identity, inference)

        with experiment.watch.stage(f"base_collection_{test.label}"), random_state_kept():
            found, key, folder = look_up(cfg, make_key, [])
            if found is not None:
                run_file = with_tag(found.run_file, experiment.run_tag, experiment.folder / name)
            else:
                metrics = list(cfg.eval.metrics)
                retrieved = retrieval.evaluate(experiment.module, test.collection, "test", metrics)
                run_file = experiment.write_run(retrieved.evaluation.ranking, name)
                found = BaseEvaluation(retrieved.evaluation.means, {}, run_file, tracked.run_id)
                if folder is not None:
                    write_entry(folder, key, found)
        prefix = f"test/{test.label}/base"
        tracked.log_metrics({f"{prefix}_{mlflow_metric_name(m)}": v for m, v in found.test.items()})
        tracked.log_artifact(run_file, f"{COLLECTIONS_FOLDER}/{test.label}")
        test.base = found.test


def collections_description(
    results: dict[str, dict[str, float]], collections: list[EvalCollection]
) -> str:
    """The run description's part for ``eval.collections``: per collection, its test metrics
    against the untrained model's there (:func:`~lossbench.experiment.ui.result_description`)."""
    from lossbench.experiment.ui import result_description

    bases = {test.label: test.base or {} for test in collections}
    return "".join(
        f"\n\n**Zero-shot on {label}**\n\n{result_description(means, bases.get(label, {}))}"
        for label, means in results.items()
    )


def print_collections(
    results: dict[str, dict[str, float]], collections: list[EvalCollection]
) -> None:
    """The trained model's metrics on each other collection, below the run's summary table, with
    the untrained model's beside them when it was evaluated there
    (``ndcg@10 <trained> (untrained <untrained>)``)."""
    bases = {test.label: test.base or {} for test in collections}
    for label, means in results.items():
        base = bases.get(label, {})
        summary = "  ".join(
            f"{m} {v:.4f}" + (f" (untrained {base[m]:.4f})" if m in base else "")
            for m, v in means.items()
        )
        print(f"zero-shot on {label}: {summary}", flush=True)
