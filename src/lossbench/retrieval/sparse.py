"""Exact sparse retrieval for SPLADE vectors: an inverted index held as a sparse CSR matrix.

The docs' vectors form a ``(N, V)`` compressed-sparse-row matrix (``V`` the vocabulary): row ``d``
lists the terms of doc ``d`` and their weights; a term's column is its posting list. A query batch
``(B, V)`` is scored against the docs ``chunk_size`` rows at a time with one sparse-dense product
per chunk, ``S = D_c · Q^T`` of shape ``(C, B)``, which only touches the docs' non-zeros (``nnz * B``
multiply-adds, no Python loop per query); a running top-k keeps each query's best docs, so extra
memory is bounded by the chunk, not the corpus. Scores are exact: the same dot products as a
dense brute-force search of the same vectors, up to float summation order.
"""

from __future__ import annotations

import warnings

import torch

from lossbench.data.collection import ScoredRun
from lossbench.retrieval.base import Index
from lossbench.retrieval.dense import top_k_to_run
from lossbench.retrieval.shapes import check_docs
from lossbench.retrieval.topk import RunningTopK


def row_chunk(matrix: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Rows ``start:end`` of a CSR matrix as a CSR matrix (views of its arrays, no copy)."""
    crows = matrix.crow_indices()
    first, last = int(crows[start]), int(crows[end])
    return torch.sparse_csr_tensor(
        crows[start : end + 1] - first,
        matrix.col_indices()[first:last],
        matrix.values()[first:last],
        size=(end - start, matrix.shape[1]),
        check_invariants=False,  # a slice of a valid CSR matrix
    )


class SparseIndex(Index):
    """An exact inverted index over non-negative sparse vectors (same contract as ExactDenseIndex).

    :meth:`add` turns each batch into sparse form at once, so a corpus is never held as dense
    ``(N, V)`` vectors: memory is that of the non-zeros (value + column index per non-zero).

    Args:
        query_batch_size: queries scored together.
        chunk_size: docs scored together; the dense score block is ``chunk_size x query_batch_size``
            floats (256 MiB at the defaults).
    """

    vectors = "sparse"
    measured_stats = frozenset({"nnz", "avg_doc_nnz", "terms", "avg_posting_length", "size_mb"})

    def __init__(self, query_batch_size: int = 256, chunk_size: int = 262_144) -> None:
        if query_batch_size < 1 or chunk_size < 1:
            raise ValueError("query_batch_size and chunk_size must be positive")
        self.query_batch_size = query_batch_size
        self.chunk_size = chunk_size
        self.doc_ids: list[str] = []
        self.dim: int | None = None
        self._blocks: list[torch.Tensor] = []  # sparse CSR (n_i, V) each
        self._matrix: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.doc_ids)

    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None:
        """Add docs' vectors ``(N, V)`` (dense, or any torch sparse layout) with their ids."""
        check_docs(embeddings, doc_ids, self.dim)
        self.dim = int(embeddings.shape[1])
        block = embeddings.detach().float()
        if block.layout != torch.sparse_csr:
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
                warnings.filterwarnings("ignore", message="Sparse CSR", category=UserWarning)
                block = block.to_sparse_csr()  # (n, V) CSR: only the non-zeros are kept
        self._blocks.append(block)
        self._matrix = None
        self.doc_ids.extend(doc_ids)

    def matrix(self) -> torch.Tensor:
        """All docs as one sparse CSR matrix ``(N, V)``."""
        if not self.doc_ids or self.dim is None:
            raise ValueError("the index is empty: add docs before searching")
        if self._matrix is None:
            crows, cols, values, offset = [], [], [], 0
            for i, block in enumerate(self._blocks):
                crow = block.crow_indices()  # (n_i + 1,)
                crows.append((crow if i == 0 else crow[1:]) + offset)
                cols.append(block.col_indices())
                values.append(block.values())
                offset += int(crow[-1])
            self._matrix = torch.sparse_csr_tensor(
                torch.cat(crows),
                torch.cat(cols),
                torch.cat(values),
                size=(len(self.doc_ids), self.dim),
                check_invariants=False,  # built from valid CSR blocks
            )
            self._blocks = [self._matrix]
        return self._matrix

    def search_tensors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and doc positions ``(Q, k')`` with ``k' = min(k, corpus size)``."""
        docs = self.matrix()  # (N, V) CSR
        if queries.layout != torch.strided:
            queries = queries.to_dense()
        queries = queries.to(device=docs.device, dtype=docs.dtype)  # (Q, V)
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"queries {tuple(queries.shape)} do not match the index's {self.dim} dims"
            )
        k = min(k, docs.shape[0])
        all_scores, all_positions = [], []
        chunks = [
            (offset, row_chunk(docs, offset, min(offset + self.chunk_size, docs.shape[0])))
            for offset in range(0, docs.shape[0], self.chunk_size)
        ]
        for start in range(0, queries.shape[0], self.query_batch_size):
            batch = queries[start : start + self.query_batch_size]  # (B, V)
            best = RunningTopK(batch.shape[0], k, docs.device)
            for offset, chunk in chunks:
                best.add((chunk @ batch.T).T, offset)  # (B, C) scores
            all_scores.append(best.scores)
            all_positions.append(best.positions)
        if not all_scores:
            empty = torch.empty((0, k), device=docs.device)
            return empty, empty.long()
        return torch.cat(all_scores), torch.cat(all_positions)

    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun:
        """Top-``k`` docs of each query as ``{query id: {doc id: score}}``."""
        scores, positions = self.search_tensors(queries, k)
        return top_k_to_run(query_ids, self.doc_ids, scores, positions)

    def stats(self) -> dict[str, float]:
        """Size of the index, for logging as ``index/<name>``.

        ``docs``; ``dim`` (vocabulary size); ``nnz`` (postings); ``avg_doc_nnz`` (terms per doc);
        ``terms`` (terms with a posting list); ``avg_posting_length`` (docs per such term);
        ``size_mb`` (values, column indices and row offsets).
        """
        docs = self.matrix()
        nnz = int(docs.values().numel())
        terms = int(torch.unique(docs.col_indices()).numel()) if nnz else 0
        size = sum(
            t.numel() * t.element_size()
            for t in (docs.values(), docs.col_indices(), docs.crow_indices())
        )
        return {
            "docs": float(len(self.doc_ids)),
            "dim": float(self.dim or 0),
            "nnz": float(nnz),
            "avg_doc_nnz": nnz / max(len(self.doc_ids), 1),
            "terms": float(terms),
            "avg_posting_length": nnz / max(terms, 1),
            "size_mb": size / 2**20,
        }
