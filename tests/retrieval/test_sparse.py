"""The sparse inverted index returns exactly what a dense brute-force search of the same vectors does."""

from __future__ import annotations

import pytest
import torch

from lossbench.retrieval.dense import ExactDenseIndex
from lossbench.retrieval.sparse import SparseIndex


def splade_like(rows: int, dim: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """Non-negative vectors with about ``density`` of their entries non-zero, distinct values."""
    values = torch.rand(rows, dim, generator=generator) + 0.1
    keep = torch.rand(rows, dim, generator=generator) < density
    return values * keep  # (rows, dim)


@pytest.mark.parametrize(
    ("query_batch_size", "chunk_size"),
    [(1, 262_144), (4, 262_144), (256, 262_144), (4, 7), (4, 300)],
)
def test_sparse_search_equals_dense_brute_force(query_batch_size: int, chunk_size: int) -> None:
    generator = torch.Generator().manual_seed(0)
    docs = splade_like(300, 500, 0.05, generator)
    queries = splade_like(9, 500, 0.2, generator)
    index = SparseIndex(query_batch_size=query_batch_size, chunk_size=chunk_size)
    for start in range(0, 300, 64):  # added batch by batch, as index_corpus does
        index.add(docs[start : start + 64], [f"d{i}" for i in range(start, min(start + 64, 300))])
    scores, positions = index.search_tensors(queries, k=20)
    dense = queries @ docs.T  # (Q, N)
    expected = dense.topk(20, dim=1)
    assert torch.allclose(scores, expected.values, atol=1e-5)
    # the same docs at every rank (where scores are not tied)
    gathered = dense.gather(1, positions)
    assert torch.allclose(gathered, expected.values, atol=1e-5)
    assert positions[:, :5].tolist() == expected.indices[:, :5].tolist()


def test_same_run_as_the_dense_index() -> None:
    generator = torch.Generator().manual_seed(1)
    docs = splade_like(50, 64, 0.3, generator)
    queries = splade_like(5, 64, 0.5, generator)
    ids = [f"d{i}" for i in range(50)]
    query_ids = [f"q{i}" for i in range(5)]
    sparse, dense = SparseIndex(), ExactDenseIndex()
    sparse.add(docs, ids)
    dense.add(docs, ids)
    sparse_run = sparse.search(queries, query_ids, k=10)
    dense_run = dense.search(queries, query_ids, k=10)
    assert sparse_run.keys() == dense_run.keys()
    for qid in query_ids:
        assert list(sparse_run[qid]) == list(dense_run[qid])
        assert list(sparse_run[qid].values()) == pytest.approx(list(dense_run[qid].values()))


def test_hand_built_postings_and_stats() -> None:
    index = SparseIndex()
    docs = torch.tensor(
        [
            [1.0, 0.0, 0.0, 2.0],  # d0: terms 0, 3
            [0.0, 0.0, 0.0, 1.0],  # d1: term 3
            [0.0, 3.0, 0.0, 0.0],  # d2: term 1
        ]
    )
    index.add(docs[:2], ["d0", "d1"])
    index.add(docs[2:].to_sparse(), ["d2"])  # a sparse (COO) batch works too
    run = index.search(torch.tensor([[0.0, 1.0, 0.0, 1.0]]), ["q"], k=2)
    assert run == {"q": {"d2": 3.0, "d0": 2.0}}
    assert index.stats() == {
        "docs": 3.0,
        "dim": 4.0,
        "nnz": 4.0,
        "avg_doc_nnz": 4 / 3,
        "terms": 3.0,  # term 2 has no posting list
        "avg_posting_length": 4 / 3,
        "size_mb": pytest.approx((4 * 4 + 4 * 8 + 4 * 8) / 2**20),
    }
    assert len(index.search(torch.ones(1, 4), ["q"], k=100)["q"]) == 3  # k capped at the corpus


def test_errors_name_the_problem() -> None:
    index = SparseIndex()
    with pytest.raises(ValueError, match="empty"):
        index.search(torch.ones(1, 4), ["q"])
    with pytest.raises(ValueError, match="do not match"):
        index.add(torch.ones(2, 4), ["only one"])
    index.add(torch.ones(1, 4), ["d"])
    with pytest.raises(ValueError, match="dimensions"):
        index.add(torch.ones(1, 5), ["e"])
