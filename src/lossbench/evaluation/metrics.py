"""Ranking metrics in plain Python and numpy, computed exactly as ranx defines them.

ranx compiles its metrics with numba; a fresh process pays seconds of just-in-time compilation on
its first ``evaluate`` (numba cannot cache the typed containers ranx builds). A training run evaluates a
few hundred queries two or three times, so :func:`lossbench.evaluation.evaluate_run` uses these
functions on that path and keeps ranx for everything else (significance tests in
``pipeline.compare``, metrics these functions don't know). ``tests/test_metrics.py`` checks every
metric here against ranx on random runs.

Definitions (ranx 0.3, ``metric@k`` with relevance level ``l``, default 1, written ``metric@k-l2``):
a document is relevant when its grade is >= ``l``; ``R`` is the number of relevant judged docs;
``hits@k`` counts relevant docs in the run's top ``k``; ``k = 0`` means the whole run.

* ``hits@k``; ``hit_rate@k`` = 1 if ``hits@k`` > 0; ``precision@k`` = ``hits@k / k``;
  ``recall@k`` = ``hits@k / R``; ``r-precision`` = ``hits@R / R``.
* ``mrr@k`` = 1 / rank of the first relevant doc in the top ``k`` (0 if none).
* ``map@k`` = sum over relevant ranks ``r <= k`` of ``hits@r / r``, divided by ``R``.
* ``dcg@k`` = sum_i gain(grade_i) / log2(i + 1) over ranks i <= k, gain(g) = g (Järvelin and
  Kekäläinen, TOIS 2002) or 2^g - 1 for ``dcg_burges`` (Burges et al., ICML 2005), counting only
  relevant docs; ``ndcg@k`` = dcg@k / the dcg@k of the judged docs sorted by grade (1 when that is 0;
  for ``ndcg`` without k, the ideal list is every judged doc while the run's list is cut at its own
  length, as in ranx).

A query with no relevant judged doc scores 0 on every metric. Documents with equal scores are
ranked in the run's insertion order (ranx's order for ties is not specified).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SUPPORTED = (
    "hits",
    "hit_rate",
    "precision",
    "recall",
    "r-precision",
    "mrr",
    "map",
    "dcg",
    "dcg_burges",
    "ndcg",
    "ndcg_burges",
)
"""Metric names computed here; anything else is left to ranx."""


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name: ``ndcg@10-l2`` -> name ``ndcg``, k 10, relevance level 2."""

    name: str
    k: int
    level: int

    @classmethod
    def parse(cls, metric: str) -> MetricSpec:
        """Parse like ranx: ``name[@k][-l<level>]``; raise ValueError on anything else."""
        level = 1
        head = metric
        if "-l" in metric:
            head, _, level_text = metric.partition("-l")
            level = int(level_text)
        name, _, k_text = head.partition("@")
        k = int(k_text) if k_text else 0
        if name not in SUPPORTED:
            raise ValueError(f"metric {metric!r} is not computed natively")
        if k < 0:
            raise ValueError(f"metric {metric!r}: k must be >= 0")
        return cls(name, k, level)


def is_supported(metric: str) -> bool:
    """Whether :func:`per_query_scores` computes ``metric`` (else use ranx)."""
    try:
        MetricSpec.parse(metric)
    except ValueError:
        return False
    return True


def _discounts(length: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def _dcg(gains: np.ndarray) -> float:
    return float(np.dot(gains, _discounts(len(gains)))) if len(gains) else 0.0


def _score(spec: MetricSpec, grades: np.ndarray, judged: np.ndarray) -> float:
    """One query's value. ``grades``: the judged grade of each ranked doc (0 when unjudged), in rank
    order, as long as the run's list or cut at the deepest k asked for; ``judged``: all judged grades.
    """
    relevant_count = int(np.count_nonzero(judged >= spec.level))
    if relevant_count == 0:
        return 0.0
    run_length = len(grades)
    k = spec.k if spec.k else run_length
    top = grades[: min(k, run_length)]
    relevant = top >= spec.level
    name = spec.name
    if name == "hits":
        return float(relevant.sum())
    if name == "hit_rate":
        return float(relevant.any())
    if name == "precision":
        return float(relevant.sum()) / k if k else 0.0
    if name == "recall":
        return float(relevant.sum()) / relevant_count
    if name == "r-precision":
        return float((grades[:relevant_count] >= spec.level).sum()) / relevant_count
    if name == "mrr":
        first = np.flatnonzero(relevant)
        return 1.0 / (first[0] + 1) if len(first) else 0.0
    if name == "map":
        ranks = np.flatnonzero(relevant)
        return float(np.sum(np.arange(1, len(ranks) + 1) / (ranks + 1))) / relevant_count
    burges = name.endswith("_burges")
    kept = np.where(relevant, top, 0.0)
    gains = np.exp2(kept) - 1.0 if burges else kept
    dcg = _dcg(gains)
    if name.startswith("dcg"):
        return dcg
    ideal_cut = min(spec.k, len(judged)) if spec.k else len(judged)  # k = 0: all judged docs
    ideal = np.sort(np.where(judged >= spec.level, judged, 0.0))[::-1][:ideal_cut]
    ideal_dcg = _dcg(np.exp2(ideal) - 1.0 if burges else ideal)
    return dcg / (ideal_dcg if ideal_dcg != 0.0 else 1.0)


def ranked_doc_ids(scores: Mapping[str, float], depth: int | None = None) -> list[str]:
    """Doc ids by decreasing score (ties keep insertion order), the first ``depth`` only if given."""
    ordered = sorted(scores, key=scores.__getitem__, reverse=True)
    return ordered if depth is None else ordered[:depth]


def per_query_scores(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
) -> dict[str, dict[str, float]]:
    """``metric -> query id -> value`` for every judged query (missing from the run: 0).

    Raises ValueError for a metric outside :data:`SUPPORTED`.
    """
    specs = {metric: MetricSpec.parse(metric) for metric in metrics}
    whole_run = any(
        spec.k == 0 or spec.name == "r-precision" for spec in specs.values()
    )  # these look past the deepest cut-off
    depth = None if whole_run else max(spec.k for spec in specs.values())
    values: dict[str, dict[str, float]] = {metric: {} for metric in metrics}
    for qid, judgements in qrels.items():
        judged = np.fromiter(judgements.values(), dtype=np.float64, count=len(judgements))
        scored = run.get(qid) or {}
        grades = np.fromiter(
            (judgements.get(doc_id, 0) for doc_id in ranked_doc_ids(scored, depth)),
            dtype=np.float64,
        )
        for metric, spec in specs.items():
            values[metric][qid] = _score(spec, grades, judged)
    return values


def mean(values: Mapping[str, float]) -> float:
    """The mean over queries (0 for none)."""
    return math.fsum(values.values()) / len(values) if values else 0.0
