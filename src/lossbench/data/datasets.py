"""What training (TupleDataset, RunDataset) and inference (Doc/QueryDataset) read.

TupleDataset streams (an iterable dataset sharded over workers and ranks); RunDataset is map-style
(one item per query; Lightning's DistributedSampler shards it under DDP).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lossbench.data.collection import Collection
from lossbench.data.formats import TrainTuple
from lossbench.data.irds import load_dataset
from lossbench.data.runs import RUN_HINT, rank_scored_run, read_run_source
from lossbench.data.sources import (
    QrelsSource,
    TextSource,
    is_existing_path,
    resolve_qrels,
    resolve_texts,
)
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

log = logging.getLogger(__name__)

SamplingStrategy = Literal["top", "random", "log_random", "top_and_random", "single_relevant"]
RunTargets = Literal["relevance", "rank", "score"]
SAMPLING_STRATEGIES = ("top", "random", "log_random", "top_and_random", "single_relevant")
RUN_TARGETS = ("relevance", "rank", "score")


@dataclass
class TrainSample:
    """One query with its candidate docs (best first where the source has an order) and targets."""

    query_id: str
    query_text: str
    doc_ids: list[str]
    doc_texts: list[str]
    targets: list[float]


@dataclass
class TextSample:
    """One query or doc to encode."""

    id: str
    text: str


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
            :func:`~lossbench.data.formats.iter_tuples`), a :class:`Collection` (its ``triples``), or
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
            doc_texts=_doc_texts(self.docs, doc_ids, self.name),
            targets=targets,
        )


def _doc_texts(docs: Mapping[str, str], doc_ids: Sequence[str], owner: str) -> list[str]:
    """The texts of ``doc_ids``, failing with the missing id and who asked."""
    try:
        return [docs[d] for d in doc_ids]
    except KeyError as error:
        raise KeyError(f"{owner!r}: doc {error.args[0]!r} has no text in the docs") from None


_TUPLES_HINT = (
    "TupleDataset reads ir_datasets docpairs or a triples file (TSV 'qid pos neg [pos_score "
    "neg_score]' or JSONL), with docs= and queries= for the texts"
)


class RunDataset(Dataset[TrainSample]):
    """Ranked candidate lists of the training queries, with targets, sampled per query.

    Args:
        run_path_or_id: a :class:`Collection` (its ``teacher_run``), a run file (TREC
            ``qid Q0 docid rank score tag``, ``.jsonl`` or ``.parquet`` with ``query_id``, ``doc_id``,
            ``score`` [, ``rank``]), or an ir_datasets id with scoreddocs. A query's ranks are its
            docs' positions by descending score (ties by the file's rank, then doc id).
        depth: keep candidates of rank <= depth (-1 keeps all).
        sample_size: candidates per query (-1 keeps all kept by ``depth``). Queries with fewer give a
            shorter list, padded and masked by the collator: never dropped, never misaligned.
        sampling_strategy: ``top`` the first k; ``random`` k uniformly; ``log_random`` k with weights
            ``1 / log(1 + rank)``; ``top_and_random`` the first k // 2 then the rest at random;
            ``single_relevant`` one relevant doc (qrels grade > 0) plus k - 1 non-relevant ones
            (queries with no relevant candidate are left out, with a warning). Sampled lists stay
            in rank order (single_relevant: the relevant doc first). Randomness comes from torch's
            global RNG (seeded per worker by Lightning).
        targets: ``relevance`` (qrels grade, 0 if unjudged; max over qrels iterations), ``rank``
            (``depth - rank + 1``; without a depth, the list's length stands for it) or ``score``
            (the run's score, e.g. a teacher's); None means ``score``.
        normalize_targets: min-max normalize each query's targets to [0, 1] (a constant list gives 0s).
        docs: doc texts when ``run_path_or_id`` is not a Collection: a mapping, a JSONL/TSV file or an
            ir_datasets id; None uses the ir_datasets dataset ``run_path_or_id`` itself.
        queries: query texts, likewise. Run queries without a text are left out, with a warning.
        qrels: judgements for ``relevance`` targets and ``single_relevant`` (a mapping, a qrels file
            or an ir_datasets id); None uses the ir_datasets dataset's qrels, if any.
    """

    def __init__(
        self,
        run_path_or_id: str | Path | Collection,
        depth: int = -1,
        sample_size: int = -1,
        sampling_strategy: SamplingStrategy = "top",
        targets: RunTargets | None = None,
        normalize_targets: bool = False,
        docs: TextSource | None = None,
        queries: TextSource | None = None,
        qrels: QrelsSource | None = None,
    ) -> None:
        if sampling_strategy not in SAMPLING_STRATEGIES:
            raise ValueError(
                f"unknown sampling_strategy {sampling_strategy!r}; valid: {', '.join(SAMPLING_STRATEGIES)}"
            )
        targets = targets or "score"
        if targets not in RUN_TARGETS:
            raise ValueError(f"unknown targets {targets!r}; valid: {', '.join(RUN_TARGETS)}")
        if sample_size == 0 or sample_size < -1:
            raise ValueError(f"sample_size={sample_size}: use -1 (all) or a positive count")
        self.depth = depth
        self.sample_size = sample_size
        self.sampling_strategy = sampling_strategy
        self.targets = targets
        self.normalize_targets = normalize_targets
        self.collection: Collection | None = None
        if isinstance(run_path_or_id, Collection):
            collection = run_path_or_id
            if not collection.teacher_run:
                raise ValueError(
                    f"collection {collection.name!r} has no run with teacher scores; "
                    "choose a dataset that has one (dataset=synthetic) or train from triples"
                )
            self.collection = collection
            self.name = collection.name
            ranked = rank_scored_run(collection.teacher_run, depth)
            self.queries: Mapping[str, str] = collection.queries.get("train", {})
            self.docs = collection.training_docs
            self.qrels: Mapping[str, Mapping[str, int]] = collection.qrels.get("train", {})
        else:
            self.name = str(run_path_or_id)
            owner = f"RunDataset({self.name!r})"
            ranked, default_id = read_run_source(run_path_or_id, depth, hint=RUN_HINT)
            self.queries = resolve_texts(queries, "queries", default_id, owner)
            self.docs = resolve_texts(docs, "docs", default_id, owner)
            self.qrels = resolve_qrels(qrels, default_id) or {}
            needs_qrels = targets == "relevance" or sampling_strategy == "single_relevant"
            if needs_qrels and not self.qrels:
                raise ValueError(
                    f"{owner}: targets={targets!r} with sampling_strategy={sampling_strategy!r} needs "
                    "relevance judgements; pass qrels= (a mapping, a qrels file or an ir_datasets id)"
                )
        self.lists: list[tuple[str, list[str], list[float]]] = []
        missing = unjudged = 0
        for qid in sorted(ranked):
            if qid not in self.queries:
                missing += 1
                continue
            doc_ids = list(ranked[qid].doc_ids)
            if sampling_strategy == "single_relevant" and not any(
                self.qrels.get(qid, {}).get(d, 0) > 0 for d in doc_ids
            ):
                unjudged += 1
                continue
            self.lists.append((qid, doc_ids, list(ranked[qid].scores)))
        if missing:
            log.warning("%s: %d run queries have no text and are left out", self.name, missing)
        if unjudged:
            log.warning(
                "%s: %d queries have no relevant candidate, left out by single_relevant",
                self.name,
                unjudged,
            )
        if not self.lists:
            what = "train query" if self.collection else "query with a text"
            raise ValueError(f"{self.name!r}: the run has no {what} to train on")

    def __len__(self) -> int:
        return len(self.lists)

    def _sample(self, qid: str, doc_ids: list[str]) -> list[int]:
        count = len(doc_ids)
        k = count if self.sample_size < 0 else min(self.sample_size, count)
        strategy = self.sampling_strategy
        if strategy == "top" or k == count and strategy != "single_relevant":
            return list(range(k))
        if strategy == "random":
            picked = torch.randperm(count)[:k]
        elif strategy == "log_random":
            weights = torch.tensor([1.0 / math.log(1 + rank) for rank in range(1, count + 1)])
            picked = torch.multinomial(weights, k, replacement=False)
        elif strategy == "top_and_random":
            head = k // 2
            rest = torch.randperm(count - head)[: k - head] + head
            picked = torch.cat([torch.arange(head), rest])
        else:  # single_relevant
            judged = self.qrels.get(qid, {})
            relevant = [i for i, d in enumerate(doc_ids) if judged.get(d, 0) > 0]
            others = [i for i, d in enumerate(doc_ids) if judged.get(d, 0) <= 0]
            first = relevant[int(torch.randint(len(relevant), ()))]
            chosen = torch.randperm(len(others))[: max(k - 1, 0)]
            return [first] + sorted(others[i] for i in chosen.tolist())
        return sorted(picked.tolist())

    def __getitem__(self, index: int) -> TrainSample:
        qid, doc_ids, scores = self.lists[index]
        positions = self._sample(qid, doc_ids)
        chosen = [doc_ids[i] for i in positions]
        if self.targets == "score":
            values = [scores[i] for i in positions]
        elif self.targets == "rank":
            depth = self.depth if self.depth > 0 else len(doc_ids)
            values = [float(depth - i) for i in positions]  # rank = i + 1
        else:
            judged = self.qrels.get(qid, {})
            values = [float(judged.get(d, 0)) for d in chosen]
        if self.normalize_targets:
            low, high = min(values), max(values)
            span = high - low
            values = [(v - low) / span if span > 0 else 0.0 for v in values]
        return TrainSample(
            query_id=qid,
            query_text=self.queries[qid],
            doc_ids=chosen,
            doc_texts=_doc_texts(self.docs, chosen, self.name),
            targets=values,
        )


class TextDataset(Dataset[TextSample]):
    """Texts to encode, as ``(id, text)`` pairs."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TextSample:
        return TextSample(*self.items[index])

    def items_as_samples(self) -> list[TextSample]:
        return [TextSample(*item) for item in self.items]


class DocDataset(TextDataset):
    """The docs of a collection, for indexing.

    Iterating it (or :meth:`items_as_samples`) streams ``collection.docs.items()``; the list of all
    ``(id, text)`` pairs that random access needs is built only on the first ``dataset[i]``.
    """

    def __init__(self, collection: Collection) -> None:
        self.docs = collection.docs
        self._items: list[tuple[str, str]] | None = None

    @property
    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        if self._items is None:
            self._items = list(self.docs.items())
        return self._items

    def __len__(self) -> int:
        return len(self.docs)

    def __iter__(self) -> Iterator[TextSample]:
        for doc_id, text in self.docs.items():
            yield TextSample(doc_id, text)

    def items_as_samples(self) -> list[TextSample]:
        return list(self)


class QueryDataset(TextDataset):
    """The judged queries of one split of a collection, for search."""

    def __init__(self, collection: Collection, split: str = "test") -> None:
        queries = collection.split_queries(split)
        if not queries:
            raise ValueError(f"collection {collection.name!r} has no judged {split!r} queries")
        super().__init__(list(queries.items()))
        self.split = split
