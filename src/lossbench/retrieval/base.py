"""The index contract: what every index takes, returns and declares about itself.

The stages and the checks ask an index these questions instead of guessing from its class name:
:attr:`Index.vectors` (dense vectors or sparse vocabulary-sized ones), :attr:`Index.approximate`
(whether its top-k may miss docs an exhaustive search would find) and
:attr:`Index.report_recall_vs_exact` (whether a run measures what it misses).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import torch

from lossbench.data.collection import ScoredRun

VectorKind = Literal["dense", "sparse"]


class Index(ABC):
    """Docs' vectors in, each query's top-k out."""

    vectors: ClassVar[VectorKind] = "dense"
    """The vectors it is built for: ``dense`` (DPR), or ``sparse`` vocabulary-sized ones (SPLADE)."""
    approximate: ClassVar[bool] = False
    """Whether a search may miss docs that an exhaustive search of the same vectors finds."""
    report_recall_vs_exact: bool = False
    """Whether a run also searches exhaustively and logs ``index/recall_at_100_vs_exact``."""
    measured_stats: ClassVar[frozenset[str]] = frozenset()
    """The :meth:`stats` that depend on the trained model (logged as MLflow metrics); the others
    follow from the config and the corpus (logged as params)."""

    @abstractmethod
    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None:
        """Add docs' vectors ``(N, dim)`` with their ids."""

    @abstractmethod
    def search_tensors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and doc positions ``(Q, k')``, ``k' = min(k, corpus size)``."""

    @abstractmethod
    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun:
        """Top-``k`` docs of each query as ``{query id: {doc id: score}}``."""

    @abstractmethod
    def stats(self) -> dict[str, float]:
        """Size of the index (docs, dims, MiB, ...), logged as ``index/<name>``."""
