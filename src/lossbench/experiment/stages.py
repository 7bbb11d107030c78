"""One run of ``python -m pipeline.run``, stage by stage, in the order of the data flow.

    prepare    every check the config allows; losses, optimizer, schedules, model config, index
    skip       a FINISHED run of the same config (unless tracking.rerun), or the run to resume
    data       the collection, checked against what the run will read (a cross-encoder: its
               first stage's dev and test candidates)
    track      the MLflow run: tags, params (the resolved config, the data's counts), description,
               the evaluation data as a dataset input
    model      the module its config says (bi- or cross-encoder), losses, optimizer, LR schedule
    start      the untrained model's test metrics (test/base_*, test/first_stage_*), step-0 validation
    train      Lightning, validating on the dev split
    test       index (the last validation's, when it holds the final weights) and search, or
               re-rank the test candidates (a cross-encoder); evaluate
    save       the trained model in <output folder>/model, logged as the run's MLflow model
               (``save_model``; loads back from ``runs:/<run id>/model``)
    report     test metrics, stage times, run files, the per-query table, the result in the run's
               description, the summary table, the objective for Hydra sweepers

Each stage is a method of :class:`Experiment` timed under its name (``time/<stage>_s`` in MLflow,
:attr:`Experiment.watch` for benchmarks). Under DDP the ranks other than 0 only train.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lossbench.experiment.config import instantiate_unwrapped, plain_dict
from lossbench.experiment.jobs import CONF_DIR, job_name, output_folder, sweep_parent_run_id
from lossbench.experiment.rerank_stages import RerankStages
from lossbench.experiment.retrieval import BiEncoderRetrieval

log = logging.getLogger("lossbench")

PER_QUERY_TABLE = "per_query.json"
"""The MLflow table of per-query results (the Evaluation view reads it)."""


MODEL_TAGS = ("loss", "regularizer", "model", "dataset", "seed", "config_hash", "system_hash")
"""The run's tags its logged model carries too (the *Models* tab shows them)."""


class Stopwatch:
    """Wall-clock seconds per stage, logged as ``time/<stage>_s``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Plan:
    """What :meth:`Experiment.prepare` builds from the config, before anything is read or logged."""

    losses: list[Any]
    weights: list[float]
    optimizer: Any  # functools.partial of the optimizer class
    lr_schedule: Any
    model_config: Any
    weight_schedules: list[Any] = field(default_factory=list)  # callbacks changing loss weights
    config_hash: str = ""
    first_stage: Any = None  # a cross-encoder's candidates (a FirstStage); None for a bi-encoder
    model_path: str = ""  # model.model_name_or_path as a local folder (an MLflow URI downloaded)
    saved_model: bool = False  # model.model_name_or_path holds a model saved by lossbench
    collections: list[Any] = field(default_factory=list)  # eval.collections (zero_shot.py)


def _plain(value: float) -> float | int:
    """``150`` for ``150.0``: a count reads as one in MLflow's params."""
    return int(value) if float(value).is_integer() else value


def run_experiment(cfg: DictConfig) -> float:
    """Run one experiment described by a composed config; returns ``eval.objective``. A model with
    nothing to train gets a reference run's stages (:mod:`lossbench.experiment.reference_run`)."""
    from lossbench.experiment.reference_run import experiment_for

    return experiment_for(cfg).run()


class Experiment(RerankStages):
    """The stages of one run, sharing what each produces (see the module docstring); a
    cross-encoder's own steps come from :class:`~lossbench.experiment.rerank_stages.RerankStages`."""

    entry_point = "python -m pipeline.run"
    trains = True  # False: evaluation alone (lossbench.experiment.evaluation.Evaluation)

    def __init__(self, cfg: DictConfig) -> None:
        from lossbench.experiment.launch import is_launch_primary

        self.cfg = cfg
        self.watch = Stopwatch()
        self.primary = is_launch_primary()  # DDP: the ranks Lightning starts besides 0 only train
        self.uri = ""
        self.resume: Any = None
        self.base: dict[str, float] = {}
        self.retrieval: Any = None  # BiEncoderRetrieval, or RerankRetrieval for a cross-encoder
        self.first_stage_means: dict[str, float] = {}  # a cross-encoder's first stage on test
        self.tracked: Any = None  # the MLflow run, once track() opened it
        self.model_id: str | None = None  # the run's logged model, once save_model() logged it
        self.zero_shot: dict[str, dict[str, float]] = {}  # eval.collections: label -> test means

    def run(self) -> float:
        """prepare -> skip? -> data -> track -> model -> start -> train -> test -> report."""
        self.prepare()
        previous = self.skip()
        if previous is not None:
            return previous
        self.load_data()
        with self.track():
            self.build_model()
            self.evaluate_start()
            self.train()
            if not self.primary:
                return float("nan")
            self.test()
            self.test_collections()
            self.save_model()
            return self.report()

    # ---- prepare -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check what the config alone allows and build the run's parts, before anything is logged."""
        from hydra.utils import instantiate

        from lossbench.experiment.checks import check_model_source, check_plan

        cfg = self.cfg
        with self.watch.stage("prepare"):
            model_path, saved_config = check_model_source(cfg, require_saved=not self.trains)
            if saved_config is not None and self.trains:  # training on: the record says what it is
                self.describe_saved_model(model_path)
            losses, weights = [instantiate(cfg.loss.function)], [1.0]
            if cfg.regularizer.get("function"):
                losses.append(instantiate(cfg.regularizer.function))
                weights.append(float(cfg.regularizer.weight))
            schedule = cfg.schedule
            self.plan = Plan(
                losses=losses,
                weights=weights,
                optimizer=instantiate(schedule.optimizer),
                lr_schedule=instantiate(schedule.lr_schedule)
                if schedule.get("lr_schedule")
                else None,
                model_config=saved_config or instantiate(cfg.model.config),
                model_path=model_path,
                saved_model=saved_config is not None,
            )
            callback = cfg.regularizer_schedule.get("callback")
            if callback:
                self.plan.weight_schedules.append(instantiate(callback))
            check_plan(cfg, self.plan, self.make_index(), trains=self.trains)
            if self.reranks:
                self.plan.first_stage = instantiate_unwrapped(cfg.first_stage.retriever)
            from lossbench.experiment.identity import config_hash
            from lossbench.experiment.zero_shot import eval_collections

            self.plan.config_hash = config_hash(cfg)
            self.plan.collections = eval_collections(cfg)

    def describe_saved_model(self, folder: str) -> None:
        """Training on from a model a run saved: its ``model`` node (name, config) replaces the
        composed one, which it overrides anyway, so the run's record says what was trained."""
        from lossbench.experiment.model_artifact import read_training_record, with_training_config

        training = read_training_record(folder)
        if training is not None and "model" in training["config"]:
            with_training_config(self.cfg, training["config"], ("model",))

    def make_index(self) -> Any:
        """A new, empty index as ``index`` configures it."""
        from hydra.utils import instantiate

        return instantiate(self.cfg.index)

    # ---- skip or resume ----------------------------------------------------------------------
    def skip(self) -> float | None:
        """The objective of a FINISHED run of this config (the job is skipped), else None; finds the
        run to continue when ``resume=true``. Fails now if the store does not answer."""
        from lossbench.experiment.outcome import previous_objective
        from lossbench.experiment.resume import resume_point
        from lossbench.experiment.tracking import reachable_uri

        if not self.primary:
            return None
        cfg, digest = self.cfg, self.plan.config_hash
        self.uri = reachable_uri(cfg.tracking.uri, cfg.tracking.get("fallback_uri"))
        rerun = bool(cfg.tracking.get("rerun", False))
        if cfg.get("resume"):
            self.resume = resume_point(self.uri, cfg.tracking.experiment, digest, rerun)
        if self.resume is not None or rerun:
            return None
        return previous_objective(cfg, self.uri, digest)

    # ---- data --------------------------------------------------------------------------------
    def load_data(self) -> None:
        """Load the collection (a bad file names its line) and check it has what the run reads."""
        from lossbench.experiment.checks import check_collection

        cfg = self.cfg
        with self.watch.stage("data"):
            self.collection = instantiate_unwrapped(cfg.dataset.collection)
            check_collection(  # an evaluation reads the test split alone
                self.collection,
                cfg.loss.train_source if self.trains else None,
                [cfg.eval.val_split, "test"] if self.trains else ["test"],
                self.plan.losses,
            )
            for other in self.plan.collections:  # eval.collections: each needs test queries
                other.load()
        if self.reranks:
            with self.watch.stage("first_stage"):
                self.retrieve_candidates()

    # ---- track -------------------------------------------------------------------------------
    def tags(self) -> dict[str, Any]:
        """What the run is, as MLflow tags (``config_hash`` finds it again, ``system_hash`` pools seeds,
        ``code_version`` names the code: :mod:`lossbench.experiment.identity`)."""
        from lossbench.experiment.identity import identity_tags
        from lossbench.experiment.sweep_jobs import sweep_job_tags
        from lossbench.experiment.tracking import git_commit
        from lossbench.experiment.ui import source_tags

        cfg = self.cfg
        commit = git_commit(CONF_DIR.parent)
        return {
            **source_tags(self.entry_point, commit),
            "loss": cfg.loss.name,
            "regularizer": cfg.regularizer.name,
            "model": cfg.model.name,
            "dataset": cfg.dataset.name,
            "schedule": cfg.schedule.name,
            "regularizer_schedule": cfg.regularizer_schedule.name,
            "seed": cfg.seed,
            "git_commit": commit,
            "command": " ".join(sys.argv[1:]),
            **sweep_job_tags(),
            **identity_tags(cfg),
            **({"first_stage": self.plan.first_stage.describe()} if self.reranks else {}),
        }

    @contextmanager
    def track(self) -> Iterator[Any]:
        """Open the MLflow run (rank 0) and log what the run is; it ends FINISHED, FAILED or KILLED.

        Params: the resolved config, ``loss`` (short, to group by) and the data's counts
        (``data/*``); metrics are left to what changes between runs."""
        from lossbench.experiment.tracking import UntrackedRun, flatten, tracked_run
        from lossbench.experiment.ui import evaluation_dataset

        cfg, resume = self.cfg, self.resume
        self.folder = output_folder(cfg, create=self.primary)
        tags = self.tags()
        opened = (
            tracked_run(
                self.uri,
                cfg.tracking.experiment,
                job_name(cfg),
                cfg.tracking.get("artifact_root"),
                resume.tags(tags["command"], tags["git_commit"]) if resume else tags,
                parent_run_id=sweep_parent_run_id(),
                resume_run_id=resume.run_id if resume else None,
            )
            if self.primary
            else nullcontext(UntrackedRun())
        )
        with opened as tracked:
            self.tracked = tracked
            resolved = plain_dict(cfg)
            config_path = self.folder / "config.yaml"
            if self.primary:
                config_path.write_text(OmegaConf.to_yaml(resolved), encoding="utf-8")
            summary = self.collection.summary()
            self.description = self.describe(summary)
            if self.reranks:
                first_stage = self.plan.first_stage.describe()
                self.description += f" Re-ranks the top {cfg.eval.k} of `{first_stage}`."
            if resume is None:  # a resumed run keeps the params and config it started with
                tracked.log_params(
                    {
                        **flatten(resolved),
                        "loss": cfg.loss.name,
                        **{f"data/{name}": value for name, value in summary.items()},
                    }
                )
                tracked.log_artifact(config_path)
                tracked.set_description(self.description)
                tracked.log_dataset(evaluation_dataset(self.collection, "test"), "evaluation")
            yield tracked

    def describe(self, counts: dict[str, Any]) -> str:
        """The run's description before any result: what it trains on what (Markdown)."""
        from lossbench.experiment.ui import run_description

        return run_description(self.cfg, counts)

    # ---- model -------------------------------------------------------------------------------
    def build_model(self) -> None:
        """The module the model config says (a bi-encoder, or a cross-encoder when it re-ranks),
        its losses, optimizer and LR schedule, seeded."""
        import lightning as L

        from lossbench.data.token_cache import TokenCache
        from lossbench.models import BiEncoderModule, CrossEncoderModule
        from lossbench.training.hardware import (
            encoding_workers,
            inference_batch_size,
            inference_device,
        )

        cfg, plan = self.cfg, self.plan
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        module_class: Any = CrossEncoderModule if self.reranks else BiEncoderModule
        with self.watch.stage("model"):
            module = module_class(  # a saved model comes with its own config
                model_name_or_path=plan.model_path,
                config=None if plan.saved_model else plan.model_config,
                loss_functions=list(zip(plan.losses, plan.weights, strict=True)),
            )
            module.set_optimizer(plan.optimizer.func, **plan.optimizer.keywords)
            module.set_lr_schedule(plan.lr_schedule)
            module.token_cache = TokenCache(cfg.data.token_cache_mib)
            if cfg.get("compile", False):
                module.compile_encoders()
            if not self.reranks:  # a cross-encoder trains scoring losses only: nothing to cache
                module.set_grad_cache(cfg.grad_cache.chunk_size)
        self.module = module
        if self.reranks:  # its retrieval exists since the data stage (the first stage's candidates)
            return
        device = inference_device(cfg.trainer.get("accelerator"))
        self.retrieval = BiEncoderRetrieval(
            self.make_index,
            k=cfg.eval.k,
            batch_size=inference_batch_size(cfg.data.inference_batch_size, device),
            encode_workers=encoding_workers(cfg.data.get("encode_workers"), device),
            device=device,
        )

    # ---- the untrained starting point --------------------------------------------------------
    def evaluate_start(self) -> None:
        """The untrained model on the test queries (``test/base_*``); its index also gives the step-0
        validation. A resumed run has both already."""
        from lossbench.evaluation import mlflow_metric_name
        from lossbench.experiment.ui import BASE_RUN_FILE

        cfg = self.cfg
        self.validation = self.make_validation()
        if self.reranks:
            self.evaluate_start_reranking()
            return
        if not (cfg.eval.base and self.primary and self.resume is None):
            return
        with self.watch.stage("base_eval"):
            base = self.retrieval.evaluate(self.module, self.collection, "test", cfg.eval.metrics)
            self.base = base.evaluation.means
            self.tracked.log_metrics(
                {f"test/base_{mlflow_metric_name(m)}": v for m, v in self.base.items()}
            )
            self.tracked.log_artifact(self.write_run(base.evaluation.ranking, BASE_RUN_FILE))
            start = self.validation.evaluate_index(self.module, base.index, step=0)
        self.tracked.log_metrics(
            {mlflow_metric_name(m, "val"): v for m, v in start.items()}, step=0
        )

    def make_validation(self) -> Any:
        """The dev-split validation callback (every ``eval.val_every_n_steps``, each epoch, at the end)."""
        from lossbench.training.validation import RetrievalValidation

        cfg, retrieval = self.cfg, self.retrieval
        if self.reranks:
            return self.make_rerank_validation()
        return RetrievalValidation(
            self.collection,
            self.make_index,
            split=cfg.eval.val_split,
            metrics=cfg.eval.val_metrics,
            every_n_steps=cfg.eval.get("val_every_n_steps"),
            k=retrieval.k,
            batch_size=retrieval.batch_size,
            num_workers=retrieval.encode_workers,
        )

    # ---- train -------------------------------------------------------------------------------
    def train(self) -> None:
        """Lightning ``fit`` with the run's logger, validation, loss guard, weight schedules and
        checkpoints (from the last checkpoint when resuming)."""
        from lossbench.experiment.mlflow_logger import MlflowRunLogger
        from lossbench.training.callbacks import FiniteLossGuard
        from lossbench.training.checkpoints import checkpoint_callbacks
        from lossbench.training.trainer import LightningIRTrainer

        cfg, resume = self.cfg, self.resume
        self.checkpoints = checkpoint_callbacks(
            cfg.get("checkpoint"),
            self.folder,
            self.tracked,
            resume.checkpoint_dir if resume else None,
        )
        trainer_args = plain_dict(cfg.trainer)
        trainer_args["enable_checkpointing"] = bool(
            self.checkpoints or trainer_args.get("enable_checkpointing")
        )
        self.trainer = LightningIRTrainer(
            **trainer_args,
            logger=MlflowRunLogger(self.tracked),
            callbacks=[
                FiniteLossGuard(),
                self.validation,
                *self.plan.weight_schedules,
                *self.checkpoints,
            ],
            default_root_dir=str(self.folder),
        )
        with self.watch.stage("train"):
            self.trainer.fit(
                self.module, self.data_module(), ckpt_path=resume.checkpoint if resume else None
            )
        if self.checkpoints:  # part of time/train_s
            self.watch.seconds["checkpoint"] = sum(c.seconds_saving for c in self.checkpoints)

    def data_module(self) -> Any:
        """Training batches from the collection's triples or its teacher run (``loss.train_source``)."""
        from lossbench.data import LightningIRDataModule, RunDataset, TupleDataset
        from lossbench.training.hardware import training_workers

        cfg = self.cfg
        if cfg.loss.train_source == "run":
            dataset: Any = RunDataset(self.collection, **cfg.dataset.run_sampling)
        else:
            dataset = TupleDataset(self.collection)
        return LightningIRDataModule(
            train_dataset=dataset,
            train_batch_size=cfg.data.train_batch_size,
            num_workers=training_workers(cfg.data.num_workers, self.retrieval.device),
        )

    # ---- test --------------------------------------------------------------------------------
    def test(self) -> None:
        """Index the corpus with the trained model and search the test queries (a cross-encoder:
        re-rank the test queries' candidates), then evaluate."""
        from lossbench.evaluation import evaluate_run

        cfg, collection = self.cfg, self.collection
        self.module.to(
            self.retrieval.device
        )  # Lightning moves the model back to the CPU when fit ends
        if self.reranks:
            with self.watch.stage("rerank"):
                self.test_run = self.retrieval.rerank(self.module, collection, "test")
        else:
            self.search_test()
        with self.watch.stage("evaluate"):
            self.evaluation = evaluate_run(
                collection.qrels["test"], self.test_run, cfg.eval.metrics
            )

    def search_test(self) -> None:
        """A bi-encoder's test run: the trained model's index (the last validation's when it holds
        the final weights), the test queries searched in it."""
        module, collection, retrieval = self.module, self.collection, self.retrieval
        with self.watch.stage("index"):
            index = self.final_index()
            if index is None:
                index = retrieval.index(module, collection)
        stats, measured = index.stats(), index.measured_stats  # the config fixes the others
        self.tracked.log_params(
            {f"index/{k}": _plain(v) for k, v in stats.items() if k not in measured}
        )
        self.tracked.log_metrics({f"index/{k}": v for k, v in stats.items() if k in measured})
        with self.watch.stage("search"):
            self.test_run = retrieval.search(module, collection, index, "test")
        if index.report_recall_vs_exact:  # an approximate index: what it misses
            with self.watch.stage("recall_vs_exact"):
                recall = retrieval.recall_vs_exact(module, collection, index, "test")
            self.tracked.log_metrics({"index/recall_at_100_vs_exact": recall})

    def test_collections(self) -> None:
        """The trained model on each of ``eval.collections`` (``test/<collection>/<metric>``)."""
        from lossbench.experiment.zero_shot import evaluate_collections

        self.zero_shot = evaluate_collections(self, self.plan.collections)

    def final_index(self) -> Any | None:
        """The last validation's index when it holds the final weights (no need to index again)."""
        validation = self.validation
        if validation.last_step == self.trainer.global_step:
            return validation.last_index
        return None

    # ---- save ----------------------------------------------------------------------------------
    def save_model(self) -> None:
        """The trained model in ``<output folder>/model``, logged as the run's MLflow model
        (:mod:`lossbench.experiment.model_artifact`); nothing with ``save_model=false``."""
        from lossbench.experiment.model_artifact import log_trained_model, save_trained_model

        if not self.cfg.get("save_model", True):
            return
        tags = self.tags()
        with self.watch.stage("save_model"):
            run_id = self.tracked.run_id
            folder = save_trained_model(self.module, self.folder / "model", self.cfg, run_id)
            self.model_id = log_trained_model(
                self.tracked, folder, {k: tags[k] for k in MODEL_TAGS if k in tags}
            )

    # ---- report ------------------------------------------------------------------------------
    def report(self) -> float:
        """Log the test metrics, run files, the per-query table and stage times; put the result in
        the run's description; print the summary; return the objective."""
        from lossbench.evaluation import mlflow_metric_name
        from lossbench.experiment.model_artifact import log_test_metrics
        from lossbench.experiment.outcome import (
            objective_value,
            print_summary,
            warn_if_below_start,
        )
        from lossbench.experiment.ui import per_query_table, result_description
        from lossbench.experiment.zero_shot import print_collections
        from lossbench.training.checkpoints import discard_when_finished

        cfg, tracked, means = self.cfg, self.tracked, self.evaluation.means
        for path in self.write_run_files():
            tracked.log_artifact(path)
        queries = self.collection.split_queries("test")
        tracked.log_table(per_query_table(self.evaluation.per_query, queries), PER_QUERY_TABLE)
        test_metrics = {mlflow_metric_name(m, "test"): v for m, v in means.items()}
        log_test_metrics(tracked, test_metrics, self.model_id)
        tracked.log_metrics({f"time/{name}_s": s for name, s in self.watch.seconds.items()})
        base = self.resume.base_means(cfg.eval.metrics) if self.resume is not None else self.base
        tracked.set_description(f"{self.description}\n\n{result_description(means, base)}")
        print_summary(means, base, tracked, self.folder, self.first_stage_means)
        print_collections(self.zero_shot)
        warn_if_below_start(means, base, cfg.eval.objective, tracked)
        if not self.trains:
            return float(means[cfg.eval.objective])
        objective = objective_value(cfg, means, self.validation.history)
        discard_when_finished(self.checkpoints, cfg.get("checkpoint"))
        return objective

    def write_run_files(self) -> list[Path]:
        """The TREC run file (the ranking evaluated), ``per_query.csv`` and the qrels in the run's
        folder, named so that MLflow's artifact viewer previews them
        (:data:`~lossbench.experiment.ui.RUN_FILE`)."""
        from lossbench.data.sources.formats import write_qrels
        from lossbench.experiment.ui import QRELS_FILE, RUN_FILE

        folder = self.folder
        return [
            self.write_run(self.evaluation.ranking, RUN_FILE),
            self.evaluation.write_per_query_csv(folder / "per_query.csv"),
            write_qrels(self.collection.qrels["test"], folder / QRELS_FILE),
        ]

    def write_run(self, ranking: Any, name: str) -> Path:
        """A ranking of record as a TREC run file in the run's folder (tag ``lossbench-<loss>``)."""
        from lossbench.data.sources.formats import write_trec_run

        return write_trec_run(ranking, self.folder / name, tag=f"lossbench-{self.cfg.loss.name}")
