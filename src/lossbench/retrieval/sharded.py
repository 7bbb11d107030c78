"""Indexing sharded across DDP ranks: each rank encodes a contiguous shard, rank 0 builds the index."""

from __future__ import annotations

import math
from itertools import islice
from typing import TYPE_CHECKING, Any

import torch.distributed as dist

from lossbench.data.collection import Collection
from lossbench.models.module import BiEncoderModule
from lossbench.retrieval.encode import corpus_tokens_for, iter_encoded_docs
from lossbench.training.distributed import distributed_position

if TYPE_CHECKING:
    from lossbench.retrieval.base import Index


def shard_bounds(count: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, end)`` of rank ``rank``'s contiguous shard of ``count`` items (sizes differ by <= 1)."""
    return count * rank // world_size, count * (rank + 1) // world_size


def num_batches(count: int, batch_size: int, texts_per_chunk: int) -> int:
    """How many batches :func:`iter_encoded_docs` yields for ``count`` docs."""
    full, rest = divmod(count, texts_per_chunk)
    return full * math.ceil(texts_per_chunk / batch_size) + math.ceil(rest / batch_size)


def index_corpus_sharded(
    module: BiEncoderModule,
    collection: Collection,
    index: Index,
    batch_size: int = 128,
    num_workers: int = 0,
    texts_per_chunk: int = 100_000,
) -> Index | None:
    """Index the corpus with every DDP rank encoding its contiguous shard; rank 0 gets every doc.

    A collective: every rank must call it, with the same collection. Rank ``r`` of ``R`` encodes the
    docs ``[r*N/R, (r+1)*N/R)`` of ``collection.docs`` (in iteration order); the batches travel to
    rank 0 one round at a time (each rank's next batch, on the CPU; a sparse model's as sparse
    tensors), so rank 0 holds the index and at most one round besides. Returns the filled index on
    rank 0 and None on the other ranks. Not distributed: the same as :func:`index_corpus`.
    """
    rank, world_size = distributed_position()
    count = len(collection.docs)
    start, end = shard_bounds(count, rank, world_size)
    batches = iter_encoded_docs(
        module,
        islice(collection.docs.items(), start, end),
        batch_size,
        num_workers,
        texts_per_chunk,
        progress=rank == 0,
        store=corpus_tokens_for(module, collection.docs),
        first_position=start,
    )
    if world_size == 1:
        for doc_ids, vectors in batches:
            index.add(vectors, doc_ids)
        return index
    rounds = max(
        num_batches(e - s, batch_size, texts_per_chunk)
        for s, e in (shard_bounds(count, r, world_size) for r in range(world_size))
    )
    sparse = bool(getattr(module.config, "sparse", False))
    for _ in range(rounds):
        payload: Any = None
        batch = next(batches, None)
        if batch is not None:
            doc_ids, vectors = batch
            vectors = vectors.cpu()
            payload = (doc_ids, vectors.to_sparse() if sparse else vectors)
        received: list[Any] | None = [None] * world_size if rank == 0 else None
        dist.gather_object(payload, received, dst=0)
        for item in received or []:  # rank order: rank 0's batch, then rank 1's, ...
            if item is not None:
                index.add(item[1].to(module.device), item[0])
    if next(batches, None) is not None:  # pragma: no cover - num_batches mirrors the chunking
        raise RuntimeError("index_corpus_sharded: a rank has more batches than counted")
    return index if rank == 0 else None
