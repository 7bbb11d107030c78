"""The one collection contract: docs, queries and qrels per split, and what training reads.

Synthetic data, ir_datasets and local files all end up as a :class:`Collection`; nothing after this
layer knows where the data came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "dev", "test")

Qrels = dict[str, dict[str, int]]
"""query id -> doc id -> graded relevance."""
ScoredRun = dict[str, dict[str, float]]
"""query id -> doc id -> score."""
Texts = Mapping[str, str]
"""id -> text: a dict, or a lazy mapping over a large corpus (an ir_datasets docs_store, a file index)."""


def candidate_ids(run: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Each query's candidate doc ids, sorted: which docs a run proposes, whatever their scores (a
    :data:`ScoredRun` works as is). What identifies a candidate set in a cache key."""
    return {query_id: sorted(docs) for query_id, docs in run.items()}


@dataclass
class Collection:
    """A retrieval collection with its training sources.

    Attributes:
        name: short name, used in run names and tags.
        docs: doc id -> text: the corpus that is indexed and searched. Any mapping: a dict, or a
            lazy one over a large corpus (indexing iterates ``docs.items()``).
        queries: split -> query id -> text.
        qrels: split -> query id -> doc id -> grade (grades already mapped so larger is better).
        triples: training triples ``(query id, positive doc id, negative doc id)``, or None: a list,
            or a streaming source (:mod:`lossbench.data.streams`) over a large file or ir_datasets
            docpairs, never loaded into memory.
        teacher_run: train query id -> doc id -> teacher score, or None.
        source: where it was read from (a folder or an ir_datasets id), for the logs.
        train_docs: doc id -> text of every doc training may read, when ``docs`` is only a subset of
            the corpus (MS MARCO with a small index); None means ``docs``.
    """

    name: str
    docs: Texts
    queries: Mapping[str, Texts]
    qrels: Mapping[str, Qrels]
    triples: Iterable[tuple[Any, ...]] | None = None
    teacher_run: Mapping[str, Mapping[str, float]] | None = None
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    train_docs: Texts | None = None

    @property
    def has_teacher_scores(self) -> bool:
        return bool(self.teacher_run)

    @property
    def training_docs(self) -> Texts:
        """The texts training reads: ``train_docs`` when set, else ``docs``."""
        return self.docs if self.train_docs is None else self.train_docs

    def split_queries(self, split: str) -> dict[str, str]:
        """The queries of ``split`` that have at least one judgement (what evaluation can score)."""
        judged = self.qrels.get(split, {})
        return {qid: text for qid, text in self.queries.get(split, {}).items() if qid in judged}

    def summary(self) -> dict[str, int]:
        """Counts for logging: docs, queries and judgements per split, triples, teacher run size."""
        counts = {"docs": len(self.docs)}
        for split in SPLITS:
            counts[f"{split}_queries"] = len(self.split_queries(split))
            counts[f"{split}_judgements"] = sum(len(d) for d in self.qrels.get(split, {}).values())
        counts["triples"] = _count(self.triples)
        counts["teacher_run_queries"] = len(self.teacher_run or {})
        return counts


def _count(items: Iterable[object] | None) -> int:
    """The number of ``items`` (0 for None, -1 when a streaming source cannot tell cheaply)."""
    if items is None:
        return 0
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return -1


def map_relevance(qrels: Qrels, relevance_map: Mapping[int, int] | None) -> Qrels:
    """Apply a grade mapping (e.g. Cranfield's backwards grades); unmapped grades are kept as they are."""
    if not relevance_map:
        return qrels
    return {
        qid: {doc: int(relevance_map.get(grade, grade)) for doc, grade in docs.items()}
        for qid, docs in qrels.items()
    }


def describe(path: Path | str, line_number: int, expected: str, line: str) -> str:
    """An error message naming the file, the line and what was expected there."""
    shown = line.rstrip("\n")
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return f"{path}:{line_number}: expected {expected}, got {shown!r}"
