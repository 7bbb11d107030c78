"""Ranked candidate lists per query, read from any run source and cut at a depth.

A run's rank is the position of a doc in its query's list ordered by descending score; ties are
broken by the rank the source gives (if any), then by doc id. This is trec_eval's reading of a run,
and what a :class:`~lossbench.data.collection.Collection`'s teacher run (scores only) gives too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lossbench.data.sources.formats import RunRow, iter_run

_NO_RANK = 2**62

RUN_HINT = (
    "To train from a run, pass a local run file instead: RunDataset('teacher.run', docs=..., "
    "queries=..., depth=50, sample_size=8, sampling_strategy='random', targets='score') with a TREC "
    "run ('qid Q0 docid rank score tag'), or a .jsonl/.parquet run with query_id, doc_id, score. "
    "(lightning-ir registers ids such as msmarco-passage/train/rank-distillm/set-encoder itself; "
    "plain ir_datasets does not know them.)"
)


@dataclass(frozen=True)
class RankedList:
    """One query's candidates, best first: ``doc_ids[i]`` has rank ``i + 1`` and ``scores[i]``."""

    doc_ids: tuple[str, ...]
    scores: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.doc_ids)


def _key(item: tuple[str, float, int]) -> tuple[float, int, str]:
    doc_id, score, rank = item
    return (-score, rank, doc_id)


def _best(candidates: list[tuple[str, float, int]], limit: int) -> list[tuple[str, float, int]]:
    """The first ``limit`` distinct docs of ``candidates`` in rank order (all if ``limit <= 0``)."""
    seen: set[str] = set()
    ordered = []
    for item in sorted(candidates, key=_key):
        if item[0] not in seen:
            seen.add(item[0])
            ordered.append(item)
            if len(ordered) == limit:
                break
    return ordered


def rank_rows(rows: Iterable[RunRow], depth: int = -1) -> dict[str, RankedList]:
    """Group run rows by query, order each query's docs, keep ranks ``<= depth`` (all if ``depth <= 0``).

    With a depth, a query never holds more than ``2 * depth`` candidates while reading, so a large
    run cut at a small depth needs little memory. A doc listed twice for a query keeps its best row.
    """
    pending: dict[str, list[tuple[str, float, int]]] = {}
    for row in rows:
        candidates = pending.setdefault(row.query_id, [])
        candidates.append((row.doc_id, row.score, _NO_RANK if row.rank is None else row.rank))
        if depth > 0 and len(candidates) >= 2 * depth:
            pending[row.query_id] = _best(candidates, depth)
    lists = {}
    for qid, candidates in pending.items():
        ordered = _best(candidates, depth)
        lists[qid] = RankedList(tuple(d for d, _, _ in ordered), tuple(s for _, s, _ in ordered))
    return lists


def rank_scored_run(
    run: Mapping[str, Mapping[str, float]], depth: int = -1
) -> dict[str, RankedList]:
    """:func:`rank_rows` of a ``query id -> doc id -> score`` mapping."""
    return rank_rows(
        (
            RunRow(qid, doc_id, float(score))
            for qid, docs in run.items()
            for doc_id, score in docs.items()
        ),
        depth,
    )


def read_run_source(
    source: str | Path, depth: int = -1, hint: str = ""
) -> tuple[dict[str, RankedList], str | None]:
    """The ranked lists of a run file (TREC, ``.jsonl``, ``.parquet``) or of an ir_datasets id's scoreddocs.

    Returns the lists and the ir_datasets id they came from (None for a file). An unknown id fails
    with the id, the installed ir_datasets version and ``hint``.
    """
    from lossbench.data.sources.irds import load_dataset
    from lossbench.data.sources.resolve import is_existing_path

    if is_existing_path(source):
        return rank_rows(iter_run(Path(source).expanduser()), depth), None
    dataset_id = str(source)
    dataset = load_dataset(dataset_id, hint=hint)
    if not dataset.has_scoreddocs():
        raise ValueError(f"ir_datasets {dataset_id!r} has no scoreddocs (a run). {hint}".strip())
    rows = (RunRow(s.query_id, s.doc_id, float(s.score)) for s in dataset.scoreddocs_iter())
    return rank_rows(rows, depth), dataset_id
