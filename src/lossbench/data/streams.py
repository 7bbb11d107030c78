"""Streaming training tuples, and their sharding across DataLoader workers and DDP ranks.

A tuple source is anything iterable over training tuples: a list held by a collection, a triples
file (:class:`TuplesFile`) or ir_datasets docpairs (:class:`IrDatasetsDocPairs`). The file and the
docpairs are read line by line in each worker, never loaded whole, so 40M triples need no RAM.

Sharding: with ``R`` ranks and ``W`` workers per rank, worker ``w`` of rank ``r`` reads shard
``w * R + r`` of ``R * W``: the tuples at positions ``i`` with ``i % (R * W) == w * R + r``. Every
tuple goes to exactly one worker of exactly one rank per epoch, and a rank's share (``i % R == r``)
does not depend on its number of workers.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import get_worker_info

from lossbench.data.sources.formats import TrainTuple, iter_tuples
from lossbench.training.distributed import distributed_position  # noqa: F401 (re-exported)


def as_train_tuple(item: Any) -> TrainTuple:
    """A :class:`TrainTuple` from a TrainTuple or a plain ``(qid, pos, neg, ...)`` tuple."""
    if isinstance(item, TrainTuple):
        return item
    query_id, *doc_ids = item
    return TrainTuple(str(query_id), tuple(str(d) for d in doc_ids))


def shard_of(rank: int, world_size: int) -> tuple[int, int]:
    """``(shard, number of shards)`` of the calling DataLoader worker on ``rank`` of ``world_size``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world size {world_size})")
    worker = get_worker_info()
    worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
    return worker_id * world_size + rank, world_size * num_workers


def take_shard(items: Iterable[Any], shard: int, num_shards: int) -> Iterator[Any]:
    """The items at positions ``shard, shard + num_shards, ...`` of ``items``."""
    return itertools.islice(items, shard, None, num_shards)


def buffer_shuffle(items: Iterable[Any], buffer_size: int, rng: random.Random) -> Iterator[Any]:
    """Shuffle a stream with a buffer of ``buffer_size`` items: each item, once, in a random order.

    A buffer at least as large as the stream gives a uniform permutation; a smaller one mixes items
    that are at most about ``buffer_size`` apart.
    """
    if buffer_size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        index = rng.randrange(buffer_size)
        yield buffer[index]
        buffer[index] = item
    rng.shuffle(buffer)
    yield from buffer


def permuted_shard(count: int, shard: int, num_shards: int, seed: int) -> list[int]:
    """Shard ``shard`` of a permutation of ``range(count)`` drawn from ``seed`` (same on every worker)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[shard::num_shards].tolist()


class TuplesFile:
    """The training tuples of a TSV or JSONL file (see :func:`lossbench.data.sources.formats.iter_tuples`), streamed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such triples file")
        self._count: int | None = None

    def __iter__(self) -> Iterator[TrainTuple]:
        return iter_tuples(self.path)

    def __len__(self) -> int:
        """The number of non-blank lines (counted once, without parsing them)."""
        if self._count is None:
            with self.path.open("rb") as handle:
                self._count = sum(1 for line in handle if line.strip())
        return self._count

    def __bool__(self) -> bool:
        with self.path.open("rb") as handle:
            return any(line.strip() for line in handle)

    def __repr__(self) -> str:
        return f"TuplesFile({str(self.path)!r})"


class IrDatasetsDocPairs:
    """The docpairs ``(query, doc a, doc b)`` of an ir_datasets dataset, streamed (doc a is the positive)."""

    def __init__(self, dataset_id: str) -> None:
        from lossbench.data.sources.irds import load_dataset

        dataset = load_dataset(dataset_id)
        if not dataset.has_docpairs():
            raise ValueError(
                f"ir_datasets {dataset_id!r} has no docpairs (training triples); choose a dataset "
                "with them, such as msmarco-passage/train/triples-small, or pass a triples file"
            )
        self.dataset_id = dataset_id

    def __iter__(self) -> Iterator[TrainTuple]:
        from lossbench.data.sources.irds import load_dataset

        for pair in load_dataset(self.dataset_id).docpairs_iter():
            yield TrainTuple(pair.query_id, (pair.doc_id_a, pair.doc_id_b))

    def __len__(self) -> int:
        from lossbench.data.sources.irds import load_dataset

        count = load_dataset(self.dataset_id).docpairs_count()
        if count is None:
            raise TypeError(f"ir_datasets {self.dataset_id!r} does not know its docpairs count")
        return int(count)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"IrDatasetsDocPairs({self.dataset_id!r})"


class FilteredTuples:
    """The tuples of ``source`` whose query is not in ``excluded`` (queries held out for validation)."""

    def __init__(self, source: Iterable[Any], excluded: frozenset[str]) -> None:
        self.source = source
        self.excluded = excluded

    def __iter__(self) -> Iterator[TrainTuple]:
        for item in self.source:
            sample = as_train_tuple(item)
            if sample.query_id not in self.excluded:
                yield sample

    def __bool__(self) -> bool:
        return any(True for _ in self)

    def __repr__(self) -> str:
        return f"FilteredTuples({self.source!r}, {len(self.excluded)} queries excluded)"


def is_random_access(source: Iterable[Any]) -> bool:
    """Whether ``source`` is an in-memory sequence (shuffled exactly) rather than a stream."""
    return isinstance(source, Sequence)
