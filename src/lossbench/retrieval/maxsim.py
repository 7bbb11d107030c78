r"""Exact late-interaction (ColBERT) search: MaxSim of every query against every doc, chunk by chunk.

.. math::

    s(q, d) = \sum_{i \in q} \max_{j \in d} \langle E_i(q), E_j(d) \rangle

over each doc's stored tokens (a multi-vector model's tokens that count, see
:class:`~lossbench.models.ColConfig`). The docs' token vectors are stored packed in fp16
(:class:`~lossbench.retrieval.tokens.TokenStore`); a search reads them back in chunks of docs of
similar length (sorted by length), scores a query batch against each chunk with one matrix product,
a max over each doc's tokens and a sum over the query's (:func:`~lossbench.models.scoring.maxsim`),
and merges the chunk's scores into a running top-k. Extra memory is bounded by the chunk: the
``(query batch x query tokens, chunk_tokens)`` similarities and the chunk's vectors.

No library does this exact search over packed fp16 token vectors with a bounded memory (faiss
searches single vectors; PLAID implementations are approximate), hence this module.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lossbench.data.collection import ScoredRun
from lossbench.models.scoring import maxsim
from lossbench.retrieval.base import Index
from lossbench.retrieval.faiss_index import positions_to_run
from lossbench.retrieval.tokens import TokenStore
from lossbench.retrieval.topk import RunningTopK

Candidates = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
"""A query batch -> the length-sorted doc positions to score, and which of them each query may
retrieve ``(B, N)`` (None: every one)."""


def compute_dtype(device: torch.device) -> torch.dtype:
    """float32 on the CPU (where half-precision products are slow), float16 on a GPU."""
    return torch.float32 if device.type == "cpu" else torch.float16


class MaxSimIndex(Index):
    """Exact MaxSim search over docs' token vectors ``(N, L, dim)``.

    Args:
        chunk_tokens: doc tokens scored at once (padded to the chunk's longest doc); the
            similarities of a query batch take ``query_batch_size x query tokens x chunk_tokens``
            floats (64 MiB at the defaults with 32 query tokens).
        query_batch_size: queries scored together.
    """

    vectors = "multi_vector"

    def __init__(self, chunk_tokens: int = 8192, query_batch_size: int = 64) -> None:
        if chunk_tokens < 1 or query_batch_size < 1:
            raise ValueError("chunk_tokens and query_batch_size must be positive")
        self.chunk_tokens = chunk_tokens
        self.query_batch_size = query_batch_size
        self.store = TokenStore()
        self.doc_ids: list[str] = []

    def __len__(self) -> int:
        return len(self.doc_ids)

    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None:
        """Add docs' token vectors ``(N, L, dim)`` (zero vectors: tokens that do not count)."""
        if embeddings.dim() >= 1 and embeddings.shape[0] != len(doc_ids):
            raise ValueError(
                f"embeddings {tuple(embeddings.shape)} do not match {len(doc_ids)} doc ids"
            )
        if not doc_ids:
            return
        self.store.add(embeddings)
        self.doc_ids.extend(doc_ids)

    def stats(self) -> dict[str, float]:
        """Docs, tokens stored, dim, size in MiB (vectors, lengths, offsets) and bytes per doc."""
        if not self.doc_ids:
            return {"docs": 0.0, "tokens": 0.0, "dim": 0.0, "size_mb": 0.0, "bytes_per_doc": 0.0}
        size = self.store.nbytes()
        return {
            "docs": float(len(self.doc_ids)),
            "tokens": float(self.store.vectors.shape[0]),
            "dim": float(self.store.dim or 0),
            "size_mb": size / 2**20,
            "bytes_per_doc": size / len(self.doc_ids),
        }

    def _check_queries(self, queries: torch.Tensor) -> None:
        if not self.doc_ids:
            raise ValueError("the index is empty: add docs before searching")
        if queries.dim() != 3 or queries.shape[2] != self.store.dim:
            raise ValueError(
                f"queries {tuple(queries.shape)} are not (queries, tokens, {self.store.dim}) token "
                "vectors of the model that filled the index"
            )

    def search_tensors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and doc positions ``(Q, k')`` with ``k' = min(k, corpus size)``."""
        self._check_queries(queries)
        everything = self.store.by_length()
        return self._batched(queries, k, lambda batch: (everything, None))

    def _batched(
        self, queries: torch.Tensor, k: int, candidates: Candidates
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Search query batch by batch, each among its ``candidates(batch)``."""
        device = self.store.vectors.device
        k = min(k, len(self.doc_ids))
        all_scores, all_positions = [], []
        for start in range(0, queries.shape[0], self.query_batch_size):
            batch = queries[start : start + self.query_batch_size].to(device)
            positions, allowed = candidates(batch)
            scores, found = self.top_k(batch, positions, k, allowed)
            all_scores.append(scores)
            all_positions.append(found)
        if not all_scores:
            return torch.empty((0, k), device=device), torch.empty((0, k), dtype=torch.long)
        return torch.cat(all_scores), torch.cat(all_positions)

    def top_k(
        self,
        queries: torch.Tensor,
        positions: torch.Tensor,
        k: int,
        allowed: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The top-``k`` of ``queries`` ``(B, Lq, dim)`` among the docs at ``positions`` (sorted by
        length), ``(B, k)`` scores and doc positions; ``allowed`` ``(B, N)``: the docs each query
        may retrieve (others score ``-inf``). Slots left without a doc have position -1."""
        dtype = compute_dtype(queries.device)
        queries = queries.to(dtype)
        best = RunningTopK(queries.shape[0], k, queries.device)
        for start, end in self.store.chunks(positions, self.chunk_tokens):
            chunk = positions[start:end]
            docs = self.store.padded(chunk).to(dtype)  # (n, L, dim)
            scores = maxsim(queries, docs)  # (B, n)
            if allowed is not None:
                scores = scores.masked_fill(~allowed[:, chunk], float("-inf"))
            best.add(scores, start)
        found = positions[best.positions]  # (B, <=k)
        found = found.masked_fill(best.scores == float("-inf"), -1)
        missing = k - found.shape[1]  # fewer candidates than k
        scores = torch.nn.functional.pad(best.scores, (0, missing), value=float("-inf"))
        return scores, torch.nn.functional.pad(found, (0, missing), value=-1)

    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun:
        """Top-``k`` docs of each query as ``{query id: {doc id: score}}``."""
        scores, positions = self.search_tensors(queries, k)
        return positions_to_run(query_ids, self.doc_ids, scores.cpu(), positions.cpu())
