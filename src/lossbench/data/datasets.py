"""Map-style datasets: what training (TupleDataset, RunDataset) and inference (Doc/QueryDataset) read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import Dataset

from lossbench.data.collection import Collection

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


class TupleDataset(Dataset[TrainSample]):
    """Training triples ``(query, positive, negative)`` of a collection.

    Args:
        tuples_dataset: the collection whose ``triples`` to read.
        targets: ``"order"`` gives the positive 1 and the negative 0 (the tuple order is the label);
            ``"score"`` is for tuples carrying teacher scores (not available for plain triples).
        num_docs: keep the first ``num_docs`` docs of each tuple (None keeps all).
    """

    def __init__(
        self,
        tuples_dataset: Collection,
        targets: Literal["order", "score"] = "order",
        num_docs: int | None = None,
    ) -> None:
        if targets != "order":
            raise ValueError(
                f"TupleDataset(targets={targets!r}): the triples of {tuples_dataset.name!r} carry no "
                "scores; use targets='order', or a RunDataset for teacher scores"
            )
        if not tuples_dataset.triples:
            raise ValueError(
                f"collection {tuples_dataset.name!r} has no training triples; "
                "train from its run (a RunDataset) or choose a dataset with triples"
            )
        self.collection = tuples_dataset
        self.triples = tuples_dataset.triples
        self.num_docs = num_docs
        self.targets = targets
        queries = tuples_dataset.queries.get("train", {})
        missing = [t for t in self.triples[:1000] if t[0] not in queries]
        if missing:
            raise ValueError(
                f"collection {tuples_dataset.name!r}: triple query {missing[0][0]!r} is not a train query"
            )

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, index: int) -> TrainSample:
        qid, *doc_ids = self.triples[index]
        doc_ids = doc_ids[: self.num_docs] if self.num_docs else doc_ids
        docs = self.collection.docs
        return TrainSample(
            query_id=qid,
            query_text=self.collection.queries["train"][qid],
            doc_ids=list(doc_ids),
            doc_texts=[docs[d] for d in doc_ids],
            targets=[float(len(doc_ids) - i - 1) for i in range(len(doc_ids))],
        )


class RunDataset(Dataset[TrainSample]):
    """Ranked candidate lists of the training queries, with targets, sampled per query.

    Args:
        run_path_or_id: the collection whose ``teacher_run`` to read.
        depth: keep candidates of rank <= depth (-1 keeps all).
        sample_size: candidates per query (-1 keeps all kept by ``depth``). Queries with fewer give a
            shorter list, padded and masked by the collator: never dropped, never misaligned.
        sampling_strategy: ``top`` the first k; ``random`` k uniformly; ``log_random`` k with weights
            ``1 / log(1 + rank)``; ``top_and_random`` the first k // 2 then the rest at random;
            ``single_relevant`` one relevant doc (qrels grade > 0) plus k - 1 non-relevant ones.
            Sampled lists stay in rank order. Randomness comes from torch's global RNG (seeded per
            worker by Lightning).
        targets: ``relevance`` (qrels grade, 0 if unjudged), ``rank`` (``depth - rank + 1``) or
            ``score`` (the teacher's score); None means ``score``.
        normalize_targets: min-max normalize each query's targets to [0, 1] (a constant list gives 0s).
    """

    def __init__(
        self,
        run_path_or_id: Collection,
        depth: int = -1,
        sample_size: int = -1,
        sampling_strategy: SamplingStrategy = "top",
        targets: RunTargets | None = None,
        normalize_targets: bool = False,
    ) -> None:
        collection = run_path_or_id
        if sampling_strategy not in SAMPLING_STRATEGIES:
            raise ValueError(
                f"unknown sampling_strategy {sampling_strategy!r}; valid: {', '.join(SAMPLING_STRATEGIES)}"
            )
        targets = targets or "score"
        if targets not in RUN_TARGETS:
            raise ValueError(f"unknown targets {targets!r}; valid: {', '.join(RUN_TARGETS)}")
        if not collection.teacher_run:
            raise ValueError(
                f"collection {collection.name!r} has no run with teacher scores; "
                "choose a dataset that has one (dataset=synthetic) or train from triples"
            )
        self.collection = collection
        self.depth = depth
        self.sample_size = sample_size
        self.sampling_strategy = sampling_strategy
        self.targets = targets
        self.normalize_targets = normalize_targets
        self.qrels = collection.qrels.get("train", {})
        queries = collection.queries.get("train", {})
        self.lists: list[tuple[str, list[str], list[float]]] = []
        for qid in sorted(collection.teacher_run):
            if qid not in queries:
                continue
            ranked = sorted(
                collection.teacher_run[qid].items(), key=lambda item: (-item[1], item[0])
            )
            if depth > 0:
                ranked = ranked[:depth]
            self.lists.append((qid, [d for d, _ in ranked], [s for _, s in ranked]))
        if not self.lists:
            raise ValueError(f"collection {collection.name!r}: the teacher run has no train query")

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
            if not relevant:
                raise ValueError(
                    f"query {qid!r} has no relevant doc in the run: single_relevant needs one"
                )
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
            query_text=self.collection.queries["train"][qid],
            doc_ids=chosen,
            doc_texts=[self.collection.docs[d] for d in chosen],
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
    """The docs of a collection, for indexing."""

    def __init__(self, collection: Collection) -> None:
        super().__init__(list(collection.docs.items()))


class QueryDataset(TextDataset):
    """The judged queries of one split of a collection, for search."""

    def __init__(self, collection: Collection, split: str = "test") -> None:
        queries = collection.split_queries(split)
        if not queries:
            raise ValueError(f"collection {collection.name!r} has no judged {split!r} queries")
        super().__init__(list(queries.items()))
        self.split = split
