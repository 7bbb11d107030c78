"""RunDataset: each training query's ranked candidate list from a (teacher) run, sampled, with targets."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.utils.data import Dataset

from lossbench.data.collection import Collection
from lossbench.data.runs import RUN_HINT, RankedList, rank_scored_run, read_run_source
from lossbench.data.samples import TrainSample, doc_texts
from lossbench.data.sources.resolve import QrelsSource, TextSource, resolve_qrels, resolve_texts
from lossbench.experiment.schema import RunTargets, SamplingStrategy

log = logging.getLogger(__name__)


def check_sampling(
    sampling_strategy: str, targets: str | None, sample_size: int
) -> tuple[str, str]:
    """The sampling strategy and targets as plain strings (targets None: ``score``), or a ValueError
    naming the bad setting and the valid values."""
    strategies = [strategy.value for strategy in SamplingStrategy]
    if sampling_strategy not in strategies:
        raise ValueError(
            f"unknown sampling_strategy {sampling_strategy!r}; valid: {', '.join(strategies)}"
        )
    kinds = [kind.value for kind in RunTargets]
    targets = targets or "score"
    if targets not in kinds:
        raise ValueError(f"unknown targets {targets!r}; valid: {', '.join(kinds)}")
    if sample_size == 0 or sample_size < -1:
        raise ValueError(f"sample_size={sample_size}: use -1 (all) or a positive count")
    return str(sampling_strategy), str(targets)


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
        sampling_strategy: str = "top",
        targets: str | None = None,
        normalize_targets: bool = False,
        docs: TextSource | None = None,
        queries: TextSource | None = None,
        qrels: QrelsSource | None = None,
    ) -> None:
        self.sampling_strategy, self.targets = check_sampling(
            sampling_strategy, targets, sample_size
        )
        self.depth = depth
        self.sample_size = sample_size
        self.normalize_targets = normalize_targets
        self.collection: Collection | None = None
        if isinstance(run_path_or_id, Collection):
            ranked = self._read_collection(run_path_or_id)
        else:
            ranked = self._read_source(run_path_or_id, docs, queries, qrels)
        self.lists = self._candidate_lists(ranked)

    def _read_collection(self, collection: Collection) -> dict[str, RankedList]:
        """The collection's teacher run, its train queries, the docs training reads, train qrels."""
        if not collection.teacher_run:
            raise ValueError(
                f"collection {collection.name!r} has no run with teacher scores; "
                "choose a dataset that has one or train from triples"
            )
        self.collection = collection
        self.name = collection.name
        self.queries: Mapping[str, str] = collection.queries.get("train", {})
        self.docs = collection.training_docs
        self.qrels: Mapping[str, Mapping[str, int]] = collection.qrels.get("train", {})
        return rank_scored_run(collection.teacher_run, self.depth)

    def _read_source(
        self,
        source: str | Path,
        docs: TextSource | None,
        queries: TextSource | None,
        qrels: QrelsSource | None,
    ) -> dict[str, RankedList]:
        """A run file or ir_datasets id, with texts and qrels from the arguments or the dataset."""
        self.name = str(source)
        owner = f"RunDataset({self.name!r})"
        ranked, default_id = read_run_source(source, self.depth, hint=RUN_HINT)
        self.queries = resolve_texts(queries, "queries", default_id, owner)
        self.docs = resolve_texts(docs, "docs", default_id, owner)
        self.qrels = resolve_qrels(qrels, default_id) or {}
        needs_qrels = self.targets == "relevance" or self.sampling_strategy == "single_relevant"
        if needs_qrels and not self.qrels:
            raise ValueError(
                f"{owner}: targets={self.targets!r} with sampling_strategy="
                f"{self.sampling_strategy!r} needs relevance judgements; pass qrels= (a mapping, "
                "a qrels file or an ir_datasets id)"
            )
        return ranked

    def _candidate_lists(
        self, ranked: Mapping[str, RankedList]
    ) -> list[tuple[str, list[str], list[float]]]:
        """``(query id, doc ids, scores)`` of every query that has a text (and, for
        ``single_relevant``, a relevant candidate); warns about those left out."""
        lists: list[tuple[str, list[str], list[float]]] = []
        missing = unjudged = 0
        for qid in sorted(ranked):
            if qid not in self.queries:
                missing += 1
                continue
            doc_ids = list(ranked[qid].doc_ids)
            if self.sampling_strategy == "single_relevant" and not any(
                self.qrels.get(qid, {}).get(d, 0) > 0 for d in doc_ids
            ):
                unjudged += 1
                continue
            lists.append((qid, doc_ids, list(ranked[qid].scores)))
        if missing:
            log.warning("%s: %d run queries have no text and are left out", self.name, missing)
        if unjudged:
            log.warning(
                "%s: %d queries have no relevant candidate, left out by single_relevant",
                self.name,
                unjudged,
            )
        if not lists:
            what = "train query" if self.collection else "query with a text"
            raise ValueError(f"{self.name!r}: the run has no {what} to train on")
        return lists

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
            doc_texts=doc_texts(self.docs, chosen, self.name),
            targets=values,
        )
