"""Evaluation: mean and per-query metrics, and the one place metric names meet MLflow.

Metrics follow ranx's definitions. :mod:`lossbench.evaluation.metrics` computes the common ones directly
(no numba start-up on a run's first evaluation); any other metric name
goes to ranx, which ``pipeline.compare`` also uses for its significance tests.

ranx's names (``ndcg@10``) are canonical everywhere; only :func:`mlflow_metric_name` turns them into
names MLflow accepts (``test/ndcg_at_10``: MLflow forbids ``@``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lossbench.data.collection import Qrels, ScoredRun
from lossbench.evaluation import metrics as native

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map@100")


def mlflow_metric_name(metric: str, prefix: str = "") -> str:
    """``ndcg@10`` -> ``ndcg_at_10`` (with ``prefix`` ``test``: ``test/ndcg_at_10``)."""
    name = metric.replace("@", "_at_")
    return f"{prefix}/{name}" if prefix else name


@dataclass
class Evaluation:
    """Mean metrics over the judged queries and each query's own values."""

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value

    def write_per_query_csv(self, path: Path) -> Path:
        """One row per query, one column per metric."""
        metrics = list(self.means)
        query_ids = sorted({qid for values in self.per_query.values() for qid in values})
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["query_id", *metrics])
            for qid in query_ids:
                writer.writerow([qid, *(f"{self.per_query[m].get(qid, 0.0):.6f}" for m in metrics)])
        return path


Engine = Literal["auto", "native", "ranx"]


def evaluate_run(
    qrels: Qrels,
    run: ScoredRun,
    metrics: Sequence[str] = DEFAULT_METRICS,
    engine: Engine = "auto",
) -> Evaluation:
    """Evaluate ``run`` against ``qrels``.

    Every judged query counts: a judged query missing from the run scores 0 (ranx's
    ``make_comparable``). Judgements of grade <= 0 are kept in the qrels and count as non-relevant.
    ``engine``: ``native`` (:mod:`lossbench.evaluation.metrics`), ``ranx``, or ``auto``: native when it knows
    every metric asked for, else ranx.
    """
    if not qrels:
        raise ValueError("no judged queries to evaluate against")
    judged_run = {qid: dict(docs) for qid, docs in run.items() if qid in qrels and docs}
    if not judged_run:
        raise ValueError("the run retrieved nothing for any judged query")
    if engine not in ("auto", "native", "ranx"):
        raise ValueError(f"engine={engine!r}; valid: auto, native, ranx")
    if engine == "native" or (engine == "auto" and all(map(native.is_supported, metrics))):
        per_query = native.per_query_scores(qrels, judged_run, metrics)
        return Evaluation(
            means={m: native.mean(per_query[m]) for m in metrics}, per_query=per_query
        )
    return _evaluate_with_ranx(qrels, judged_run, metrics)


def _evaluate_with_ranx(qrels: Qrels, judged_run: ScoredRun, metrics: Sequence[str]) -> Evaluation:
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    ranx_qrels = RanxQrels({qid: dict(docs) for qid, docs in qrels.items()})
    ranx_run = RanxRun(judged_run)
    means = evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
    if isinstance(means, float):  # ranx returns a bare float for a single metric
        means = {metrics[0]: means}
    per_query = {m: {qid: float(v) for qid, v in ranx_run.scores[m].items()} for m in metrics}
    return Evaluation(means={m: float(means[m]) for m in metrics}, per_query=per_query)
