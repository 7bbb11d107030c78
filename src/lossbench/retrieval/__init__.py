"""Indexing a corpus with a trained model and searching it (one index contract: add, search)."""

from __future__ import annotations

from typing import Protocol

import torch

from lossbench.data.collection import Collection, ScoredRun
from lossbench.data.datasets import DocDataset, QueryDataset
from lossbench.models.module import BiEncoderModule
from lossbench.retrieval.dense import ExactDenseIndex
from lossbench.retrieval.encode import encode_texts


class Index(Protocol):
    """What every index does: take docs' vectors, return each query's top-k."""

    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None: ...

    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun: ...


def index_corpus(
    module: BiEncoderModule,
    collection: Collection,
    index: Index,
    batch_size: int = 128,
    num_workers: int = 0,
) -> Index:
    """Encode every doc of ``collection`` and add it to ``index``."""
    dataset = DocDataset(collection)
    doc_ids, vectors = encode_texts(
        module, dataset.items_as_samples(), "doc", batch_size=batch_size, num_workers=num_workers
    )
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
    """Encode the judged queries of ``split`` and retrieve their top-``k`` docs."""
    dataset = QueryDataset(collection, split)
    query_ids, vectors = encode_texts(
        module, dataset.items_as_samples(), "query", batch_size=batch_size, progress=False
    )
    return index.search(vectors, query_ids, k)


__all__ = ["ExactDenseIndex", "Index", "encode_texts", "index_corpus", "search_split"]
