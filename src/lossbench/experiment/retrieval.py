"""How a run retrieves and evaluates: the test of the untrained model, of the trained one, and the
validations all go through one :class:`BiEncoderRetrieval` (encode the corpus into an index, search
a split's queries, evaluate the run) or, for a cross-encoder, one :class:`RerankRetrieval` (a first
stage's top ``k`` per query, re-ranked, evaluated)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lossbench.data.collection import Collection, ScoredRun, candidate_ids
from lossbench.evaluation import Evaluation, evaluate_run
from lossbench.retrieval import Index, index_corpus, search_split
from lossbench.retrieval.first_stage import FirstStage
from lossbench.retrieval.recall import recall_vs_exact
from lossbench.retrieval.rerank import rerank


@dataclass
class Retrieved:
    """A split's run, its evaluation, and the index it was searched in (None: re-ranked)."""

    run: ScoredRun
    evaluation: Evaluation
    index: Index | None


@dataclass
class BiEncoderRetrieval:
    """Retrieval with a bi-encoder: the corpus encoded into a new index, the queries searched in it.

    Args:
        make_index: builds an empty index (``index`` of the config).
        k: search depth.
        batch_size: texts per encoding batch.
        encode_workers: DataLoader workers tokenizing the corpus (0: the main process or a thread).
        device: where the model encodes.
    """

    make_index: Callable[[], Index]
    k: int
    batch_size: int
    encode_workers: int
    device: torch.device

    def identity(self) -> dict[str, Any]:
        """What the test searches besides the model and data: the whole corpus (the index config
        is part of the run's config)."""
        return {"searches": "corpus"}

    def index(self, module: Any, collection: Collection) -> Index:
        """Encode every doc of ``collection`` with ``module`` into a new index."""
        module.to(self.device)
        return index_corpus(
            module, collection, self.make_index(), self.batch_size, self.encode_workers
        )

    def search(self, module: Any, collection: Collection, index: Index, split: str) -> ScoredRun:
        """The top-``k`` docs of each judged query of ``split``."""
        return search_split(module, collection, index, split, self.k, self.batch_size)

    def evaluate(
        self,
        module: Any,
        collection: Collection,
        split: str,
        metrics: Sequence[str],
        index: Index | None = None,
    ) -> Retrieved:
        """Search ``split`` in ``index`` (a new one when None) and evaluate the run."""
        index = index if index is not None else self.index(module, collection)
        run = self.search(module, collection, index, split)
        return Retrieved(run, evaluate_run(collection.qrels[split], run, metrics), index)

    def recall_vs_exact(
        self, module: Any, collection: Collection, index: Index, split: str
    ) -> float:
        """recall@100 of an approximate index's top-100 against exhaustive search (``split``)."""
        return recall_vs_exact(module, collection, index, split, 100, self.batch_size)


@dataclass
class RerankRetrieval:
    """Retrieval with a cross-encoder: each query's top ``k`` from a first stage, re-ranked.

    The first stage runs once per split (:meth:`retrieve_candidates`, before training); every
    evaluation after that re-ranks the same candidates, so its cost grows with the split's queries
    times ``k``, not with the corpus. The re-ranked run holds exactly the first stage's candidates
    (its recall at ``k`` is the first stage's).

    Args:
        first_stage: proposes the candidates (``first_stage`` of the config).
        k: candidates re-ranked per query.
        batch_size: pairs per scoring batch.
        device: where the model scores.
    """

    first_stage: FirstStage
    k: int
    batch_size: int
    device: torch.device
    candidates: dict[str, ScoredRun] = field(default_factory=dict)
    """split -> the first stage's run, checked (see :func:`~lossbench.experiment.checks.check_candidates`)."""

    def retrieve_candidates(self, collection: Collection, splits: Sequence[str]) -> list[str]:
        """Run the first stage on the judged queries of ``splits``; returns warnings (queries
        without candidates, fewer candidates than ``k``, unknown docs dropped). A first stage
        that gives no judged query of a split any candidate fails with a ConfigurationError."""
        from lossbench.experiment.model_checks import check_candidates

        warnings: list[str] = []
        for split in dict.fromkeys(splits):
            queries = collection.split_queries(split)
            run = self.first_stage.search(collection, queries, self.k)
            self.candidates[split], found = check_candidates(
                run,
                queries,
                collection.docs,
                split,
                self.k,
                self.first_stage.describe(),
                self.first_stage.query_ids(),
            )
            warnings += found
        return warnings

    def identity(self) -> dict[str, Any]:
        """What the test re-ranks: the first stage's test candidates (their ids per query)."""
        return {"reranks": candidate_ids(self.candidates.get("test", {}))}

    def rerank(self, module: Any, collection: Collection, split: str) -> ScoredRun:
        """The first stage's candidates for ``split``, scored by ``module``."""
        module.to(self.device)
        return rerank(
            module,
            self.candidates[split],
            collection.split_queries(split),
            collection.docs,
            self.batch_size,
        )

    def evaluate(
        self, module: Any, collection: Collection, split: str, metrics: Sequence[str]
    ) -> Retrieved:
        """Re-rank ``split``'s candidates and evaluate the run."""
        run = self.rerank(module, collection, split)
        return Retrieved(run, evaluate_run(collection.qrels[split], run, metrics), None)
