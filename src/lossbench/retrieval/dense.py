"""Exact dense retrieval: every query against every doc, top-k in chunks so memory stays bounded."""

from __future__ import annotations

import torch

from lossbench.data.collection import ScoredRun
from lossbench.retrieval.base import Index
from lossbench.retrieval.shapes import check_docs
from lossbench.retrieval.topk import RunningTopK


def top_k_to_run(
    query_ids: list[str], doc_ids: list[str], scores: torch.Tensor, positions: torch.Tensor
) -> ScoredRun:
    """``(Q, k)`` scores and doc positions as ``{query id: {doc id: score}}``."""
    from lossbench.evaluation.ranking import best_scores

    scores_list, positions_list = scores.cpu().tolist(), positions.cpu().tolist()
    return {  # a doc indexed twice keeps its best score
        qid: best_scores((doc_ids[p], s) for p, s in zip(row_positions, row_scores, strict=True))
        for qid, row_positions, row_scores in zip(
            query_ids, positions_list, scores_list, strict=True
        )
    }


class ExactDenseIndex(Index):
    """Brute-force maximum inner product search.

    The score matrix is built ``query_batch_size x chunk_size`` at a time and merged into a running
    top-k, so peak extra memory is bounded by the chunk size, not by the corpus size.

    Args:
        chunk_size: docs scored per chunk.
        query_batch_size: queries scored together.
    """

    def __init__(self, chunk_size: int = 65_536, query_batch_size: int = 1024) -> None:
        if chunk_size < 1 or query_batch_size < 1:
            raise ValueError("chunk_size and query_batch_size must be positive")
        self.chunk_size = chunk_size
        self.query_batch_size = query_batch_size
        self.embeddings: list[torch.Tensor] = []
        self.doc_ids: list[str] = []

    def __len__(self) -> int:
        return len(self.doc_ids)

    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None:
        """Add docs' vectors ``(N, dim)`` with their ids."""
        dim = self.embeddings[0].shape[1] if self.embeddings else None
        check_docs(embeddings, doc_ids, dim)
        self.embeddings.append(embeddings.detach())
        self.doc_ids.extend(doc_ids)

    def stats(self) -> dict[str, float]:
        """Size of the index, for logging as ``index/<name>``: docs, dim and size in MiB."""
        docs = self._matrix() if self.doc_ids else torch.empty(0, 0)
        return {
            "docs": float(len(self.doc_ids)),
            "dim": float(docs.shape[1]) if docs.dim() == 2 else 0.0,
            "size_mb": docs.numel() * docs.element_size() / 2**20,
        }

    def _matrix(self) -> torch.Tensor:
        if len(self.embeddings) > 1:
            self.embeddings = [torch.cat(self.embeddings)]
        return self.embeddings[0]

    def search_tensors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and doc positions ``(Q, k')`` with ``k' = min(k, corpus size)``."""
        if not self.doc_ids:
            raise ValueError("the index is empty: add docs before searching")
        docs = self._matrix()  # (N, dim)
        queries = queries.to(device=docs.device, dtype=docs.dtype)
        k = min(k, docs.shape[0])
        all_scores, all_positions = [], []
        for start in range(0, queries.shape[0], self.query_batch_size):
            batch = queries[start : start + self.query_batch_size]  # (B, dim)
            best = RunningTopK(batch.shape[0], k, docs.device)
            for offset in range(0, docs.shape[0], self.chunk_size):
                chunk = docs[offset : offset + self.chunk_size]  # (C, dim)
                best.add(batch @ chunk.T, offset)  # (B, C) scores
            all_scores.append(best.scores.to(docs.dtype))
            all_positions.append(best.positions)
        return torch.cat(all_scores), torch.cat(all_positions)

    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun:
        """Top-``k`` docs of each query as ``{query id: {doc id: score}}``."""
        scores, positions = self.search_tensors(queries, k)
        return top_k_to_run(query_ids, self.doc_ids, scores, positions)
