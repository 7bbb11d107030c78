"""TupleDataset: training tuples (query, positive, negatives), streamed and sharded over workers and ranks."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import IterableDataset, get_worker_info

from lossbench.data.collection import Collection
from lossbench.data.samples import TrainSample, doc_texts
from lossbench.data.sources.formats import TrainTuple
from lossbench.data.sources.irds import load_dataset
from lossbench.data.sources.resolve import TextSource, is_existing_path, resolve_texts
from lossbench.data.streams import (
    IrDatasetsDocPairs,
    TuplesFile,
    as_train_tuple,
    buffer_shuffle,
    distributed_position,
    is_random_access,
    permuted_shard,
    shard_of,
    take_shard,
)

_TUPLES_HINT = (
    "TupleDataset reads ir_datasets docpairs or a triples file (TSV 'qid pos neg [pos_score "
    "neg_score]' or JSONL), with docs= and queries= for the texts"
)


class TupleDataset(IterableDataset[TrainSample]):
    """Training tuples ``(query, positive, negative[, more negatives])``, streamed and sharded.

    An iterable dataset: each DataLoader worker of each DDP rank reads its own shard (see
    :mod:`lossbench.data.streams`), so every tuple is seen exactly once per epoch, and a 40M-line
    triples file or ir_datasets' docpairs are never loaded into memory. It has no ``len()``:
    the workers' last batches are partial, and Lightning would cut an epoch short at a reported
    length. Under DDP the ranks may get one tuple more or less each; bound training by
    ``max_steps`` there.

    Args:
        tuples_dataset: an ir_datasets id with docpairs (``msmarco-passage/train/triples-small``), a
            triples file (TSV ``qid pos neg [pos_score neg_score]``, or JSONL, see
            :func:`~lossbench.data.sources.formats.iter_tuples`), a :class:`Collection` (its ``triples``), or
            an iterable of tuples.
        targets: ``"order"`` gives the docs of a tuple ``n - 1, ..., 1, 0`` (positive first: the
            order is the label); ``"score"`` uses the scores the tuples carry (a 5-column TSV or JSONL
            with ``scores``).
        num_docs: keep the first ``num_docs`` docs of each tuple (None keeps all).
        docs: doc texts when ``tuples_dataset`` is not a Collection: a mapping, a JSONL/TSV file or an
            ir_datasets id; None uses the ir_datasets dataset ``tuples_dataset`` itself.
        queries: query texts, likewise.
        shuffle: shuffle every epoch: an exact permutation for a list, a buffer of ``shuffle_buffer``
            tuples for a stream (a file or docpairs).
        shuffle_buffer: tuples held by a stream's shuffle buffer (per worker).
        seed: shuffling seed (with the epoch); None takes Lightning's ``PL_GLOBAL_SEED`` (set by
            ``seed_everything``, the same on every rank) or 0.
    """

    def __init__(
        self,
        tuples_dataset: str | Path | Collection | Iterable[Any],
        targets: Literal["order", "score"] = "order",
        num_docs: int | None = None,
        docs: TextSource | None = None,
        queries: TextSource | None = None,
        shuffle: bool = True,
        shuffle_buffer: int = 100_000,
        seed: int | None = None,
    ) -> None:
        if targets not in ("order", "score"):
            raise ValueError(f"unknown targets {targets!r}; valid: order, score")
        self.collection: Collection | None = None
        if isinstance(tuples_dataset, Collection):
            self.collection = tuples_dataset
            self.name = tuples_dataset.name
            if not tuples_dataset.triples:
                raise ValueError(
                    f"collection {tuples_dataset.name!r} has no training triples; "
                    "train from its run (a RunDataset) or choose a dataset with triples"
                )
            source: Iterable[Any] = tuples_dataset.triples
            self.queries = tuples_dataset.queries.get("train", {})
            self.docs = tuples_dataset.training_docs
        elif isinstance(tuples_dataset, str | Path):
            self.name = str(tuples_dataset)
            owner = f"TupleDataset({self.name!r})"
            if is_existing_path(tuples_dataset):
                source = TuplesFile(Path(tuples_dataset).expanduser())
                default_id = None
            else:
                load_dataset(self.name, hint=_TUPLES_HINT)
                source = IrDatasetsDocPairs(self.name)
                default_id = self.name
            self.docs = resolve_texts(docs, "docs", default_id, owner)
            self.queries = resolve_texts(queries, "queries", default_id, owner)
        else:
            self.name = type(tuples_dataset).__name__
            source = tuples_dataset
            self.docs = resolve_texts(docs, "docs", None, "TupleDataset")
            self.queries = resolve_texts(queries, "queries", None, "TupleDataset")
        self.source = source
        self.triples = source  # the name the map-style TupleDataset had
        self.targets = targets
        self.num_docs = num_docs
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        self.rank: int | None = None
        self.world_size: int | None = None
        self.epoch = 0
        self._skip: list[int] | None = None
        self._check(itertools.islice(iter(source), 1000))

    def _check(self, first: Iterable[Any]) -> None:
        """Fail now, not in a worker, when the first tuples lack query texts or scores."""
        for item in first:
            sample = as_train_tuple(item)
            if sample.query_id not in self.queries:
                where = "is not a train query" if self.collection else "has no query text"
                raise ValueError(
                    f"{self.name!r}: tuple query {sample.query_id!r} {where}; pass the queries it uses"
                )
            if self.targets == "score" and sample.scores is None:
                raise ValueError(
                    f"TupleDataset(targets='score'): the tuples of {self.name!r} carry no scores; use "
                    "targets='order', tuples with scores (qid pos neg pos_score neg_score), or a "
                    "RunDataset for teacher scores"
                )

    def set_distributed(self, rank: int, world_size: int) -> None:
        """Read the share of ``rank`` of ``world_size`` (the data module sets it from the Trainer)."""
        shard_of(rank, world_size)  # validates
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next pass as epoch ``epoch`` (each pass otherwise counts one up by itself)."""
        self.epoch = epoch

    def skip_next_pass(self, per_worker: Sequence[int] | None) -> None:
        """Start the next pass after the first ``per_worker[w]`` tuples of DataLoader worker ``w``'s share.

        A run resumed mid-epoch uses it (with :meth:`set_epoch`) to continue where its checkpoint was.
        """
        self._skip = list(per_worker) if per_worker is not None else None

    def __iter__(self) -> Iterator[TrainSample]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        skip, self._skip = self._skip, None
        if self.world_size is None:
            rank, world_size = distributed_position()
        else:
            rank, world_size = self.rank or 0, self.world_size
        shard, num_shards = shard_of(rank, world_size)
        seed = self.seed * 1_000_003 + epoch
        if is_random_access(self.source):
            items: Sequence[Any] = self.source  # type: ignore[assignment]
            positions = (
                permuted_shard(len(items), shard, num_shards, seed)
                if self.shuffle
                else range(shard, len(items), num_shards)
            )
            stream: Iterable[Any] = (items[i] for i in positions)
        else:
            stream = take_shard(iter(self.source), shard, num_shards)
            if self.shuffle:
                stream = buffer_shuffle(
                    stream, self.shuffle_buffer, random.Random(seed * 65_537 + shard)
                )
        if skip:
            worker = get_worker_info()
            stream = itertools.islice(stream, skip[worker.id if worker else 0], None)
        for item in stream:
            yield self.sample(as_train_tuple(item))

    def sample(self, item: TrainTuple) -> TrainSample:
        """The training sample of one tuple: texts looked up, docs cut to ``num_docs``, targets."""
        count = len(item.doc_ids) if not self.num_docs else min(self.num_docs, len(item.doc_ids))
        doc_ids = list(item.doc_ids[:count])
        if self.targets == "score":
            if item.scores is None:
                raise ValueError(f"{self.name!r}: tuple of query {item.query_id!r} has no scores")
            targets = [float(s) for s in item.scores[:count]]
        else:
            targets = [float(count - i - 1) for i in range(count)]
        try:
            query_text = self.queries[item.query_id]
        except KeyError:
            raise KeyError(f"{self.name!r}: query {item.query_id!r} has no text") from None
        return TrainSample(
            query_id=item.query_id,
            query_text=query_text,
            doc_ids=doc_ids,
            doc_texts=doc_texts(self.docs, doc_ids, self.name),
            targets=targets,
        )
