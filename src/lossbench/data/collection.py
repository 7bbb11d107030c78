"""The one collection contract: docs, queries and qrels per split, and what training reads.

Synthetic data, ir_datasets and local files all end up as a :class:`Collection`; nothing after this
layer knows where the data came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "dev", "test")

Qrels = dict[str, dict[str, int]]
"""query id -> doc id -> graded relevance."""
ScoredRun = dict[str, dict[str, float]]
"""query id -> doc id -> score."""


@dataclass
class Collection:
    """A retrieval collection with its training sources.

    Attributes:
        name: short name, used in run names and tags.
        docs: doc id -> text.
        queries: split -> query id -> text.
        qrels: split -> query id -> doc id -> grade (grades already mapped so larger is better).
        triples: training triples ``(query id, positive doc id, negative doc id)``, or None.
        teacher_run: train query id -> doc id -> teacher score, or None.
        source: where it was read from (a folder or an ir_datasets id), for the logs.
    """

    name: str
    docs: dict[str, str]
    queries: dict[str, dict[str, str]]
    qrels: dict[str, Qrels]
    triples: list[tuple[str, str, str]] | None = None
    teacher_run: ScoredRun | None = None
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def has_teacher_scores(self) -> bool:
        return bool(self.teacher_run)

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
        counts["triples"] = len(self.triples or [])
        counts["teacher_run_queries"] = len(self.teacher_run or {})
        return counts


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
