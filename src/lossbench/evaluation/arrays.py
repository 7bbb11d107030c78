"""The arrays ranx's metric kernels read, built from qrels and a ranking of record.

ranx's kernels take, per query, a ``(n, 2)`` float64 array of ``(doc id, value)`` rows: the qrels
sorted by decreasing grade, the run in rank order (ranx's own ``Run`` and ``Qrels`` build these
through numba typed dictionaries). Doc ids only need to be equal where the doc is the same, so each
distinct doc id gets an integer here (ranx hashes them instead).

The rows are handed over as a numba typed list. Building one from Python compiles numba's list code
in every new process (seconds); :func:`_split_rows` builds it inside a function that numba caches on
disk (``make setup`` compiles it once, through :mod:`lossbench.experiment.warmup`), which a later
process loads in a fraction of that (``bench/ranx_first_call.py`` measures both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numba import njit
from numba.typed import List

from lossbench.evaluation.ranking import RankedRun


@njit(cache=True)
def _split_rows(rows: np.ndarray, offsets: np.ndarray) -> Any:  # pragma: no cover (compiled)
    """Rows ``offsets[i]:offsets[i + 1]`` of ``rows`` as the i-th array of a typed list."""
    out = List()
    for i in range(len(offsets) - 1):
        out.append(np.ascontiguousarray(rows[offsets[i] : offsets[i + 1]]))
    return out


def _typed_rows(per_query: Sequence[list[tuple[int, float]]]) -> Any:
    lengths = np.array([len(rows) for rows in per_query], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    flat = np.array([row for rows in per_query for row in rows], dtype=np.float64).reshape(-1, 2)
    return _split_rows(np.ascontiguousarray(flat), offsets)


def ranx_inputs(
    qrels: Mapping[str, Mapping[str, int]], ranking: RankedRun, query_ids: Sequence[str]
) -> tuple[Any, Any]:
    """ranx's qrels and run arrays for ``query_ids`` (a query missing from ``ranking``: no rows)."""
    codes: dict[str, int] = {}
    judged, ranked = [], []
    for qid in query_ids:
        grades = sorted(qrels[qid].items(), key=lambda item: -item[1])  # stable: by grade only
        judged.append([(codes.setdefault(doc, len(codes)), float(g)) for doc, g in grades])
        ranks = ranking.get(qid)
        ranked.append(
            []
            if ranks is None
            else [
                (codes.setdefault(doc, len(codes)), score)
                for doc, score in zip(ranks.doc_ids, ranks.scores, strict=True)
            ]
        )
    return _typed_rows(judged), _typed_rows(ranked)
