"""The index contract: what every index takes, returns and declares about itself.

The stages and the checks ask an index these questions instead of guessing from its class name:
:attr:`Index.vectors` (what kind of vectors it takes, :data:`VECTOR_KINDS`), :attr:`Index.approximate`
(whether its top-k may miss docs an exhaustive search would find) and
:attr:`Index.report_recall_vs_exact` (whether a run measures what it misses).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import torch

from lossbench.data.collection import ScoredRun

VectorKind = Literal["dense", "sparse", "multi_vector"]
"""What a model makes of a text and an index takes (``BiEncoderConfig.vectors``, :attr:`Index.vectors`)."""

VECTOR_KINDS: dict[str, str] = {
    "dense": "dense vectors (DPR)",
    "sparse": "sparse vocabulary-sized vectors (SPLADE)",
    "multi_vector": "a vector per token (ColBERT)",
}
"""Each kind of vectors in words, for messages."""


class Index(ABC):
    """Docs' vectors in, each query's top-k out."""

    vectors: ClassVar[VectorKind] = "dense"
    """The vectors it is built for: ``dense`` (DPR) ``(N, dim)``, ``sparse`` vocabulary-sized ones
    (SPLADE) ``(N, V)``, or ``multi_vector`` (ColBERT) ``(N, L, dim)``, a vector per token with the
    tokens that do not count as zero vectors."""
    approximate: ClassVar[bool] = False
    """Whether a search may miss docs that an exhaustive search of the same vectors finds."""
    report_recall_vs_exact: bool = False
    """Whether a run also searches exhaustively and logs ``index/recall_at_100_vs_exact``."""
    measured_stats: ClassVar[frozenset[str]] = frozenset()
    """The :meth:`stats` that depend on the trained model (logged as MLflow metrics); the others
    follow from the config and the corpus (logged as params)."""

    @abstractmethod
    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None:
        """Add docs' vectors ``(N, dim)`` (a multi-vector index: ``(N, L, dim)``) with their ids."""

    @abstractmethod
    def search_tensors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and doc positions ``(Q, k')``, ``k' = min(k, corpus size)``."""

    @abstractmethod
    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun:
        """Top-``k`` docs of each query as ``{query id: {doc id: score}}``."""

    @abstractmethod
    def stats(self) -> dict[str, float]:
        """Size of the index (docs, dims, MiB, ...), logged as ``index/<name>``."""
