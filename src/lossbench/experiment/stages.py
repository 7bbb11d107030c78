"""One run of ``python -m pipeline.run``, stage by stage, in the order of the data flow.

    prepare    every check the config allows; losses, optimizer, schedules, model config, index
    skip       a FINISHED run of the same config (unless tracking.rerun), or the run to resume
    data       the collection, checked against what the run will read (a cross-encoder: its
               first stage's dev and test candidates)
    track      the MLflow run: tags, params (the resolved config, the data's counts), description,
               the evaluation data as a dataset input
    model      the module its config says (bi- or cross-encoder), losses, optimizer, LR schedule
    start      the untrained model's test metrics (test/base_*, test/first_stage_*), step-0
               validation, and its metrics on each of eval.collections (test/<collection>/base_*)
    train      Lightning, validating on the dev split
    test       index (the last validation's, when it holds the final weights) and search, or
               re-rank the test candidates (a cross-encoder); evaluate
    save       the trained model in <output folder>/model, logged as the run's MLflow model
               (``save_model``; loads back from ``runs:/<run id>/model``)
    report     test metrics, stage times, run files, the per-query table, the result in the run's
               description, the summary table, the objective for Hydra sweepers

Each stage is a method of :class:`Experiment` timed under its name (``time/<stage>_s`` in MLflow,
:attr:`Experiment.watch` for benchmarks). Under DDP the ranks other than 0 only train. Model, start
and train are here; prepare, skip, data and track in :mod:`lossbench.experiment.setup_stages`;
test, save and report in :mod:`lossbench.experiment.result_stages`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig

from lossbench.experiment.config import plain_dict
from lossbench.experiment.rerank_stages import RerankStages
from lossbench.experiment.result_stages import ResultStages
from lossbench.experiment.retrieval import BiEncoderRetrieval
from lossbench.experiment.setup_stages import SetupStages

log = logging.getLogger("lossbench")


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


def run_experiment(cfg: DictConfig) -> float:
    """Run one experiment described by a composed config; returns ``eval.objective``. A model with
    nothing to train gets a reference run's stages (:mod:`lossbench.experiment.reference_run`)."""
    from lossbench.experiment.reference_run import experiment_for

    return experiment_for(cfg).run()


class Experiment(SetupStages, ResultStages, RerankStages):
    """The stages of one run, sharing what each produces (see the module docstring): prepare, skip,
    data and track come from :class:`~lossbench.experiment.setup_stages.SetupStages`; test, save and
    report from :class:`~lossbench.experiment.result_stages.ResultStages`; a cross-encoder's own
    steps from :class:`~lossbench.experiment.rerank_stages.RerankStages`."""

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
        """prepare -> skip? -> data -> track -> model -> start -> train -> test -> save -> report."""
        self.prepare()
        previous = self.skip()
        if previous is not None:
            return previous
        self.load_data()
        with self.track():
            self.build_model()
            if not self.fit():
                return float("nan")
            self.test()
            self.test_collections()
            self.save_model()
            return self.report()

    def fit(self) -> bool:
        """start -> train; whether this process goes on to test (rank 0: the other DDP ranks only
        train). An evaluation-only run skips both."""
        self.evaluate_start()
        self.train()
        return self.primary

    # ---- model -------------------------------------------------------------------------------
    def build_model(self) -> None:
        """The module the model config says (a bi-encoder, or a cross-encoder when it re-ranks),
        its losses, optimizer and LR schedule, seeded."""
        import lightning as L

        from lossbench.data.token_cache import TokenCache
        from lossbench.experiment.reuse import attach_corpus_tokens
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
        attach_corpus_tokens(self)  # the corpus's token ids on disk (experiment/reuse.py)
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
        validation (computed once per model, data and evaluation settings, then reused: tag
        ``base_eval``). A resumed run has both already."""
        from lossbench.experiment.reuse import evaluate_untrained
        from lossbench.experiment.zero_shot import evaluate_untrained_collections

        cfg = self.cfg
        self.validation = self.make_validation()
        if self.reranks:
            self.evaluate_start_reranking()
            return
        if not (cfg.eval.base and self.primary and self.resume is None):
            return
        evaluate_untrained(self)  # or reused from an earlier job's (experiment/reuse.py)
        evaluate_untrained_collections(self, self.plan.collections)  # eval.collections

    def make_validation(self) -> Any:
        """The dev-split validation callback (every ``eval.val_every_n_steps``, each epoch, at the end)."""
        from lossbench.experiment.validation_choice import (
            validates_on_candidates,
            validation_candidates,
        )
        from lossbench.training.validation import CandidateValidation, RetrievalValidation

        cfg, retrieval = self.cfg, self.retrieval
        if self.reranks:
            return self.make_rerank_validation()
        settings = {
            "split": cfg.eval.val_split,
            "metrics": cfg.eval.val_metrics,
            "every_n_steps": cfg.eval.get("val_every_n_steps"),
            "k": retrieval.k,
            "batch_size": retrieval.batch_size,
            "num_workers": retrieval.encode_workers,
        }
        if not validates_on_candidates(cfg, self.collection):
            self.tracked.set_tags({"validation": "corpus"})
            return RetrievalValidation(self.collection, self.make_index, **settings)
        with self.watch.stage("val_candidates"):
            candidates = validation_candidates(cfg, self.collection)
        self.tracked.set_tags({"validation": "candidates"})
        return CandidateValidation(self.collection, candidates, self.make_index, **settings)

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
