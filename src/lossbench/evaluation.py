"""Evaluation with ranx: mean and per-query metrics, and the one place metric names meet MLflow.

ranx's names (``ndcg@10``) are canonical everywhere; only :func:`mlflow_metric_name` turns them into
names MLflow accepts (``test/ndcg_at_10``: MLflow forbids ``@``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lossbench.data.collection import Qrels, ScoredRun

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


def evaluate_run(
    qrels: Qrels, run: ScoredRun, metrics: Sequence[str] = DEFAULT_METRICS
) -> Evaluation:
    """Evaluate ``run`` against ``qrels`` with ranx.

    Every judged query counts: a judged query missing from the run scores 0 (ranx's
    ``make_comparable``). Judgements of grade <= 0 are kept in the qrels; ranx treats them as non-relevant.
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    if not qrels:
        raise ValueError("no judged queries to evaluate against")
    judged_run = {qid: dict(docs) for qid, docs in run.items() if qid in qrels and docs}
    if not judged_run:
        raise ValueError("the run retrieved nothing for any judged query")
    ranx_qrels = RanxQrels({qid: dict(docs) for qid, docs in qrels.items()})
    ranx_run = RanxRun(judged_run)
    means = evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
    if isinstance(means, float):  # ranx returns a bare float for a single metric
        means = {metrics[0]: means}
    per_query = {m: {qid: float(v) for qid, v in ranx_run.scores[m].items()} for m in metrics}
    return Evaluation(means={m: float(means[m]) for m in metrics}, per_query=per_query)
