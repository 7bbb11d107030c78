"""The exact dense index returns the true top-k, whatever the chunk and batch sizes."""

from __future__ import annotations

import pytest
import torch

from lossbench.retrieval.dense import ExactDenseIndex


def brute_force(queries: torch.Tensor, docs: torch.Tensor, k: int) -> list[list[int]]:
    return (queries @ docs.T).topk(k, dim=1).indices.tolist()


@pytest.mark.parametrize(
    ("chunk_size", "query_batch_size"), [(7, 3), (1000, 1000), (1, 2), (64, 5)]
)
def test_chunked_search_equals_brute_force(chunk_size: int, query_batch_size: int) -> None:
    generator = torch.Generator().manual_seed(0)
    docs = torch.randn(230, 16, generator=generator)
    queries = torch.randn(11, 16, generator=generator)
    index = ExactDenseIndex(chunk_size=chunk_size, query_batch_size=query_batch_size)
    index.add(docs[:100], [f"d{i}" for i in range(100)])
    index.add(docs[100:], [f"d{i}" for i in range(100, 230)])  # added in two parts
    scores, positions = index.search_tensors(queries, k=10)
    assert positions.tolist() == brute_force(queries, docs, 10)
    assert torch.allclose(scores, (queries @ docs.T).topk(10, dim=1).values)


def test_search_returns_ids_and_scores_per_query() -> None:
    index = ExactDenseIndex()
    index.add(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), ["a", "b", "c"])
    run = index.search(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), ["q1", "q2"], k=2)
    assert run == {"q1": {"a": 1.0, "c": 1.0}, "q2": {"b": 2.0, "c": 2.0}}


def test_k_larger_than_the_corpus_returns_every_doc() -> None:
    index = ExactDenseIndex(chunk_size=2)
    index.add(torch.eye(3), ["a", "b", "c"])
    run = index.search(torch.ones(1, 3), ["q"], k=100)
    assert set(run["q"]) == {"a", "b", "c"}


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        ExactDenseIndex(chunk_size=0)
    index = ExactDenseIndex()
    with pytest.raises(ValueError, match="empty"):
        index.search(torch.ones(1, 2), ["q"], k=1)
    with pytest.raises(ValueError, match="do not match"):
        index.add(torch.ones(2, 2), ["only-one"])


def test_indexing_reads_the_corpus_in_chunks_and_keeps_every_doc(tiny_module) -> None:
    from lossbench.data.collection import Collection
    from lossbench.retrieval import index_corpus

    docs = {f"d{i}": f"text number {i}" for i in range(23)}
    collection = Collection(name="c", docs=docs, queries={}, qrels={})
    index = index_corpus(
        tiny_module, collection, ExactDenseIndex(), batch_size=4, texts_per_chunk=5
    )
    assert sorted(index.doc_ids) == sorted(docs)
    assert index._matrix().shape[0] == 23
