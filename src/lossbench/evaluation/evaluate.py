"""Evaluation of record: ranx's metrics on the ranking of record, and the one place metric names
meet MLflow.

:func:`evaluate_run` ranks the run (:mod:`lossbench.evaluation.ranking`: a deterministic order for
tied scores, written into strictly decreasing scores of record) and hands that ranking to ranx's
metric kernels (what ``ranx.evaluate`` calls per metric) in exactly that order. The run file of a run
(:func:`~lossbench.data.sources.formats.write_trec_run`) holds the same ranking, so ranx and
trec_eval reading the file compute the logged values (``tests/test_metrics.py`` checks both, with
many ties and duplicate docs). ranx's own ``Run`` is not used on this path: its sort leaves the order
of tied scores to a quicksort, and building its typed dictionaries costs seconds of numba
compilation in every new process; the arrays ranx's kernels read are built here instead
(:mod:`lossbench.evaluation.arrays`, compiled once into numba's cache).

ranx's names (``ndcg@10``) are canonical everywhere; only :func:`mlflow_metric_name` turns them into
names MLflow accepts (``test/ndcg_at_10``: MLflow forbids ``@``).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lossbench.data.collection import Qrels
from lossbench.evaluation.ranking import RankedRun, rank_run

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map@100")


def mlflow_metric_name(metric: str, prefix: str = "") -> str:
    """``ndcg@10`` -> ``ndcg_at_10`` (with ``prefix`` ``test``: ``test/ndcg_at_10``)."""
    name = metric.replace("@", "_at_")
    return f"{prefix}/{name}" if prefix else name


def check_metric_names(metrics: Sequence[str]) -> None:
    """Raise ValueError naming the first metric ranx does not compute (``ndcg@10``, ``map``, ...)."""
    from ranx.meta.evaluate import extract_metric_and_params
    from ranx.metrics import metric_switch

    for metric in metrics:
        try:
            name, _, _ = extract_metric_and_params(metric)
            metric_switch(name)
        except (ValueError, IndexError) as error:
            raise ValueError(f"{metric!r} is not a ranx metric ({error})") from error


@dataclass
class Evaluation:
    """Mean metrics over the judged queries, each query's own values, and the ranking evaluated."""

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    ranking: RankedRun = field(default_factory=dict)  # the run in the order of record

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
    qrels: Qrels,
    run: Mapping[str, Mapping[str, float]] | RankedRun,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> Evaluation:
    """ranx's ``metrics`` of ``run`` (a scored run, or one already in the order of record).

    Every judged query counts: a judged query missing from the run scores 0 (ranx's
    ``make_comparable``). Judgements of grade <= 0 are kept in the qrels and count as non-relevant.
    ``Evaluation.ranking`` is the ranking evaluated (every query of the run, judged or not).
    """
    from ranx.meta.evaluate import extract_metric_and_params
    from ranx.metrics import metric_switch

    from lossbench.evaluation.arrays import ranx_inputs

    if not qrels:
        raise ValueError("no judged queries to evaluate against")
    ranking = rank_run(run)
    if not any(len(ranking.get(qid, ())) for qid in qrels):
        raise ValueError("the run retrieved nothing for any judged query")
    check_metric_names(metrics)
    query_ids = list(qrels)
    ranx_qrels, ranx_run = ranx_inputs(qrels, ranking, query_ids)
    per_query, means = {}, {}
    for metric in metrics:  # what ranx.evaluate does per metric, with the arrays in our order
        name, k, level = extract_metric_and_params(metric)
        scores = metric_switch(name)(ranx_qrels, ranx_run, k, level)
        per_query[metric] = {qid: float(v) for qid, v in zip(query_ids, scores, strict=True)}
        means[metric] = float(np.mean(scores))  # as ranx averages
    return Evaluation(means=means, per_query=per_query, ranking=ranking)
