"""Index a collection's corpus with a model, and search a split's queries in that index."""

from __future__ import annotations

from lossbench.data.collection import Collection, ScoredRun
from lossbench.data.datasets import QueryDataset
from lossbench.models.module import BiEncoderModule
from lossbench.retrieval.base import Index
from lossbench.retrieval.encode import corpus_tokens_for, iter_encoded, iter_encoded_docs


def index_corpus(
    module: BiEncoderModule,
    collection: Collection,
    index: Index,
    batch_size: int = 128,
    num_workers: int = 0,
    texts_per_chunk: int = 100_000,
    progress: bool = True,
) -> Index:
    """Encode every doc of ``collection`` and add it to ``index``, batch by batch (a sparse index
    converts each batch at once, so a corpus of vocabulary-sized vectors is never held dense).

    The corpus is read ``texts_per_chunk`` docs at a time (each chunk length-sorted for encoding),
    so a lazy corpus (an ir_datasets docstore, an 8.8M-passage file) is never held in memory whole.
    ``progress``: show a progress bar per chunk.
    """
    store = corpus_tokens_for(module, collection.docs)  # the ids on disk: no tokenizer
    for doc_ids, vectors in iter_encoded_docs(
        module,
        collection.docs.items(),
        batch_size,
        num_workers,
        texts_per_chunk,
        progress=progress,
        store=store,
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
