"""The stages that end a run: test (index and search, or re-rank, then evaluate), save (the trained
model as the run's MLflow model) and report (metrics, run files, per-query table, stage times, the
objective). Mixed into :class:`~lossbench.experiment.stages.Experiment`, whose ``run`` calls them
after training; :class:`~lossbench.experiment.evaluation.Evaluation` calls them without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lossbench.experiment.run_state import RunState

PER_QUERY_TABLE = "per_query.json"
"""The MLflow table of per-query results (the Evaluation view reads it)."""


MODEL_TAGS = ("loss", "regularizer", "model", "dataset", "seed", "config_hash", "system_hash")
"""The run's tags its logged model carries too (the *Models* tab shows them)."""


def _plain(value: float) -> float | int:
    """``150`` for ``150.0``: a count reads as one in MLflow's params."""
    return int(value) if float(value).is_integer() else value


class ResultStages(RunState):
    """The test, save and report stages of :class:`~lossbench.experiment.stages.Experiment`."""

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
        from lossbench.experiment.zero_shot import collections_description, print_collections
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
        result = result_description(means, base)
        others = collections_description(self.zero_shot, self.plan.collections)
        tracked.set_description(f"{self.description}\n\n{result}{others}")
        print_summary(means, base, tracked, self.folder, self.first_stage_means)
        print_collections(self.zero_shot, self.plan.collections)
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

        return write_trec_run(ranking, self.folder / name, tag=self.run_tag)

    @property
    def run_tag(self) -> str:
        """The tag column of the run's TREC files: ``lossbench-<loss>``."""
        return f"lossbench-{self.cfg.loss.name}"
