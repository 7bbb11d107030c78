"""The steps of a run that are a cross-encoder's own: its first stage's candidates (before the MLflow
run opens), the first stage's and the untrained re-ranker's test metrics, and validation by
re-ranking the dev candidates. Mixed into :class:`~lossbench.experiment.stages.Experiment`, whose
stages call them when the model config says it re-ranks."""

from __future__ import annotations

import logging
from typing import Any

from lossbench.experiment.retrieval import RerankRetrieval
from lossbench.experiment.run_state import RunState

log = logging.getLogger("lossbench")


class RerankStages(RunState):
    """A cross-encoder's steps of :class:`~lossbench.experiment.stages.Experiment`."""

    def retrieve_candidates(self) -> None:
        """A cross-encoder's first stage on the dev and test queries, once: its candidates are what
        every validation and the test re-rank. A run file that is malformed (file and line) or
        matches no query fails here, before anything is logged; thin candidate lists warn."""
        from lossbench.training.hardware import inference_batch_size, inference_device

        cfg = self.cfg
        device = inference_device(cfg.trainer.get("accelerator"))
        self.retrieval = RerankRetrieval(
            self.plan.first_stage,
            k=cfg.eval.k,
            batch_size=inference_batch_size(cfg.data.inference_batch_size, device),
            device=device,
        )
        for warning in self.retrieval.retrieve_candidates(
            self.collection, [cfg.eval.val_split, "test"]
        ):
            log.warning(warning)

    def evaluate_start_reranking(self) -> None:
        """A cross-encoder's starting point: the first stage's own test metrics
        (``test/first_stage_*``, its run as ``first_stage.run.txt``), then the untrained
        re-ranker's (``test/base_*``, its run as ``test_base.run.txt``) and the step-0 validation,
        computed once per model, data, candidates and evaluation settings, then reused (tag
        ``base_eval``). A resumed run has them all already."""
        from lossbench.data.sources.formats import write_trec_run
        from lossbench.evaluation import evaluate_run, mlflow_metric_name
        from lossbench.experiment.reuse import evaluate_untrained
        from lossbench.experiment.ui import FIRST_STAGE_RUN_FILE

        cfg, collection, retrieval = self.cfg, self.collection, self.retrieval
        if not (self.primary and self.resume is None):
            return
        metrics = cfg.eval.metrics
        first_stage = evaluate_run(collection.qrels["test"], retrieval.candidates["test"], metrics)
        self.first_stage_means = first_stage.means
        tag = f"lossbench-first-stage-{self.cfg.first_stage.name}"
        path = write_trec_run(first_stage.ranking, self.folder / FIRST_STAGE_RUN_FILE, tag)
        self.tracked.log_artifact(path)  # the ranking of record: ranx reading it gets these means
        self.tracked.log_metrics(
            {
                f"test/first_stage_{mlflow_metric_name(m)}": v
                for m, v in self.first_stage_means.items()
            }
        )
        if cfg.eval.base:
            evaluate_untrained(self)  # or reused from an earlier job's (experiment/reuse.py)

    def make_rerank_validation(self) -> Any:
        """Validation that re-ranks the dev queries' candidates (their count x ``eval.k`` pairs)."""
        from lossbench.training.validation import RerankValidation

        cfg, retrieval = self.cfg, self.retrieval
        return RerankValidation(
            self.collection,
            retrieval.candidates[cfg.eval.val_split],
            split=cfg.eval.val_split,
            metrics=cfg.eval.val_metrics,
            every_n_steps=cfg.eval.get("val_every_n_steps"),
            batch_size=retrieval.batch_size,
        )
