"""Retrieval: the index contract, exact dense / sparse / MaxSim and faiss indexes, encoding, search."""

from __future__ import annotations

from lossbench.retrieval.base import Index, VectorKind
from lossbench.retrieval.dense import ExactDenseIndex
from lossbench.retrieval.encode import encode_texts, iter_encoded
from lossbench.retrieval.faiss_index import FaissFlatIndex, FaissIVFIndex
from lossbench.retrieval.maxsim import MaxSimIndex
from lossbench.retrieval.maxsim_ann import MaxSimANNIndex
from lossbench.retrieval.recall import recall_vs_exact
from lossbench.retrieval.search import index_corpus, search_split
from lossbench.retrieval.sharded import index_corpus_sharded
from lossbench.retrieval.sparse import SparseIndex

__all__ = [
    "ExactDenseIndex",
    "FaissFlatIndex",
    "FaissIVFIndex",
    "Index",
    "MaxSimANNIndex",
    "MaxSimIndex",
    "VectorKind",
    "SparseIndex",
    "encode_texts",
    "index_corpus",
    "index_corpus_sharded",
    "iter_encoded",
    "recall_vs_exact",
    "search_split",
]
