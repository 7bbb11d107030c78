"""Indexing a corpus with a trained model and searching it (one index contract: add, search)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from lossbench.data.collection import Collection, ScoredRun
from lossbench.data.datasets import QueryDataset
from lossbench.models.module import BiEncoderModule
from lossbench.retrieval.dense import ExactDenseIndex
from lossbench.retrieval.encode import encode_texts, iter_encoded, iter_encoded_docs
from lossbench.retrieval.faiss_index import FaissFlatIndex, FaissIVFIndex
from lossbench.retrieval.recall import recall_vs_exact
from lossbench.retrieval.sharded import index_corpus_sharded
from lossbench.retrieval.sparse import SparseIndex


class Index(Protocol):
    """What every index does: take docs' vectors, return each query's top-k."""

    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None: ...

    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun: ...


@runtime_checkable
class IndexWithStats(Protocol):
    """An index that reports its size (logged by the pipeline as ``index/<name>``)."""

    def stats(self) -> dict[str, float]: ...


def index_corpus(
    module: BiEncoderModule,
    collection: Collection,
    index: Index,
    batch_size: int = 128,
    num_workers: int = 0,
    texts_per_chunk: int = 100_000,
) -> Index:
    """Encode every doc of ``collection`` and add it to ``index``, batch by batch (a sparse index
    converts each batch at once, so a corpus of vocabulary-sized vectors is never held dense).

    The corpus is read ``texts_per_chunk`` docs at a time (each chunk length-sorted for encoding),
    so a lazy corpus (an ir_datasets docstore, an 8.8M-passage file) is never held in memory whole.
    """
    for doc_ids, vectors in iter_encoded_docs(
        module, collection.docs.items(), batch_size, num_workers, texts_per_chunk
    ):
        index.add(vectors, doc_ids)
    return index


def search_split(
    module: BiEncoderModule,
    collection: Collection,
    index: Index,
    split: str,
    k: int = 100,
    batch_size: int = 128,
) -> ScoredRun:
    """Encode the judged queries of ``split`` and retrieve their top-``k`` docs, batch by batch."""
    dataset = QueryDataset(collection, split)
    run: ScoredRun = {}
    for query_ids, vectors in iter_encoded(
        module, dataset.items_as_samples(), "query", batch_size=batch_size, progress=False
    ):
        run.update(index.search(vectors, query_ids, k))
    return run


__all__ = [
    "ExactDenseIndex",
    "FaissFlatIndex",
    "FaissIVFIndex",
    "Index",
    "IndexWithStats",
    "SparseIndex",
    "encode_texts",
    "index_corpus",
    "index_corpus_sharded",
    "iter_encoded",
    "recall_vs_exact",
    "search_split",
]
