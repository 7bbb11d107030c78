"""The ranking of record: one deterministic order per query, the same for every tool that reads it.

A run is a score per (query, doc). Evaluating it needs an *order*, and tools disagree on the order
of docs with equal scores:

* ranx sorts each query's docs with numba's ``np.argsort`` (a quicksort: not stable), so the order
  of tied docs depends on the input order and the sort's internals;
* trec_eval (``pytrec_eval``) sorts by score, then by doc id *descending* (``comp_sim_docno`` in
  its ``form_res_rels.c``), and it keeps scores as single-precision floats: two scores that differ
  only beyond float32 precision (``1.0`` and ``1.0 + 1e-9``) are a tie to it.

Ties are common (a SPLADE run scores many docs exactly 0; a bi-encoder's float32 dot products
collide), so the logged metrics, ranx reading ``test.run.txt`` and trec_eval reading ``test.run.txt`` would
otherwise each see another ranking. lossbench therefore fixes the order itself and writes it into
the scores, so that no reader has a tie left to break:

1. Scores are compared as float32 (the precision of the model's scores and of trec_eval).
2. The order of record is by decreasing float32 score, ties by increasing doc id (Python's string
   order); a doc listed twice for a query keeps its best score (:func:`rank_rows`).
3. The *scores of record* are the float32 scores, each lowered by the fewest float32 steps that
   make it strictly lower than the one ranked above it. A tie group of ``n`` docs moves by at most
   ``n - 1`` steps (units in the last place: ``1.2e-7`` relative), docs without ties do not move.
4. ``test.run.txt`` holds the scores of record with 9 significant digits, which round-trips every
   float32 value: ranx (float64) and trec_eval (float32) parse strictly decreasing scores, so both
   sort the file into exactly the order of record, and evaluate what the logged metrics evaluated.

The ranking of a ranking is itself (the scores of record have no ties left), so reading ``test.run.txt``
back and ranking it again gives the same order, the same scores and, written again, the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

SCORE_FORMAT = "{:.9g}"
"""How a run file writes a score of record: 9 significant digits round-trip every float32."""

_SIGN = np.int64(0x80000000)
_FINITE_LIMIT = np.int64(0x7F800000)  # the ordered key of +inf (and, negated, of -inf)


@dataclass(frozen=True)
class Ranking:
    """One query's docs in the order of record, with their scores of record.

    ``scores`` are float32 values (held as float64), strictly decreasing along ``doc_ids``.
    """

    doc_ids: tuple[str, ...]
    scores: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.doc_ids)

    def as_dict(self) -> dict[str, float]:
        """``{doc id: score of record}`` in rank order."""
        return dict(zip(self.doc_ids, self.scores, strict=True))


RankedRun = dict[str, Ranking]
"""Query id -> its :class:`Ranking`: a run in the order of record."""


def _ordered_keys(scores: np.ndarray) -> np.ndarray:
    """float32 values -> int64 keys with the same order, adjacent floats on adjacent integers
    (``-0.0`` and ``0.0`` both on 0)."""
    bits = scores.view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _floats_from_keys(keys: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_ordered_keys` (key 0 is ``+0.0``)."""
    bits = np.where(keys < 0, (-keys) | _SIGN, keys)
    return bits.astype(np.uint32).view(np.float32)


def rank(scores: Mapping[str, float], query_id: str = "") -> Ranking:
    """One query's ``{doc id: score}`` in the order of record, with its scores of record.

    Raises ValueError for a NaN or infinite score (in float32), naming the query and the doc.

    >>> ranked = rank({"b": 0.5, "a": 0.5, "c": 2.0})
    >>> ranked.doc_ids
    ('c', 'a', 'b')
    >>> [SCORE_FORMAT.format(s) for s in ranked.scores]
    ['2', '0.5', '0.49999997']
    """
    if not scores:
        return Ranking((), ())
    doc_ids = np.array(list(scores), dtype=str)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, refused below
        values = np.array(list(scores.values()), dtype=np.float64).astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        doc = str(doc_ids[np.flatnonzero(bad)[0]])
        raise ValueError(
            f"query {query_id!r}: doc {doc!r} has the score {scores[doc]!r}; a run's scores "
            "must be finite float32 values"
        )
    order = np.lexsort((doc_ids, -values))  # by score, descending; ties by doc id
    keys = _ordered_keys(values[order])
    steps = np.arange(len(keys), dtype=np.int64)
    # each key at most the one above it minus 1: a running minimum of (key + position) - position
    record = np.minimum.accumulate(keys + steps) - steps
    if record[-1] <= -_FINITE_LIMIT:
        raise ValueError(
            f"query {query_id!r}: its lowest scores cannot be told apart above -inf in float32"
        )
    return Ranking(
        tuple(str(d) for d in doc_ids[order]),
        tuple(float(s) for s in _floats_from_keys(record)),
    )


def rank_run(run: Mapping[str, Mapping[str, float]] | RankedRun) -> RankedRun:
    """Every query of ``run`` in the order of record (a :data:`RankedRun` is returned as it is)."""
    if all(isinstance(ranking, Ranking) for ranking in run.values()):
        return dict(run)  # type: ignore[arg-type]
    return {qid: rank(docs, qid) for qid, docs in run.items()}  # type: ignore[arg-type]


def best_scores(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """``{doc id: score}`` from ``(doc id, score)`` pairs; a doc listed twice keeps its highest score."""
    best: dict[str, float] = {}
    for doc_id, score in pairs:
        previous = best.get(doc_id)
        if previous is None or score > previous:
            best[doc_id] = score
    return best


def rank_rows(rows: Iterable[tuple[str, str, float]]) -> RankedRun:
    """Rows ``(query id, doc id, score)`` in the order of record; a doc listed more than once for a
    query keeps its highest score (trec_eval refuses such a run, ranx keeps the last line)."""
    by_query: dict[str, list[tuple[str, float]]] = {}
    for qid, doc_id, score in rows:
        by_query.setdefault(qid, []).append((doc_id, score))
    return {qid: rank(best_scores(pairs), qid) for qid, pairs in by_query.items()}


def scored_run(ranked: RankedRun) -> dict[str, dict[str, float]]:
    """``{query id: {doc id: score of record}}``, each query's docs in rank order."""
    return {qid: ranking.as_dict() for qid, ranking in ranked.items()}
