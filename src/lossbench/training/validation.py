"""Validation while training: a bi-encoder indexes the corpus with the current weights and searches
the dev split (:class:`RetrievalValidation`), or, on a large corpus, indexes only a fixed pool of the
dev queries' candidates (:class:`CandidateValidation`); a cross-encoder re-ranks the dev queries'
first-stage candidates (:class:`RerankValidation`). All log the split's metrics on the same schedule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L

from lossbench.data.collection import Collection, ScoredRun, candidate_ids
from lossbench.evaluation import evaluate_run, mlflow_metric_name
from lossbench.retrieval import Index, index_corpus, index_corpus_sharded, search_split


class ValidationSchedule(L.Callback):
    """When to validate: every ``every_n_steps`` optimizer steps (if set), at the end of every epoch
    and at the end of training. Subclasses say how (:meth:`validate`); each validation is recorded
    in :attr:`history` (``(step, metrics)``) and :attr:`last_step`."""

    def __init__(
        self,
        collection: Collection,
        split: str,
        metrics: Sequence[str],
        every_n_steps: int | None,
        batch_size: int,
    ) -> None:
        self.collection = collection
        self.split = split
        self.metrics = list(metrics)
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        self.last_index: Index | None = None
        self.last_step: int | None = None
        self.history: list[tuple[int, dict[str, float]]] = []

    def validate(self, trainer: L.Trainer, module: Any, every_rank: bool = True) -> None:
        raise NotImplementedError

    def evaluate_start(self, module: Any, untrained_index: Index | None) -> dict[str, float]:
        """The step-0 validation of the untrained ``module``, whose corpus index exists already."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What the validation's metrics depend on besides the model, data and metric names (part of
        the key of a stored untrained evaluation, whose step-0 validation is reused)."""
        return {"kind": type(self).__name__}

    def log_means(self, trainer: L.Trainer, means: dict[str, float]) -> None:
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {mlflow_metric_name(m, "val"): v for m, v in means.items()}, trainer.global_step
            )

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.validate(trainer, module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: Any) -> None:
        self.validate(trainer, module, every_rank=False)

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        self.validate(trainer, module)

    def on_fit_end(self, trainer: L.Trainer, module: Any) -> None:
        # a run resumed from a checkpoint at max_steps trains no step, and Lightning calls no
        # on_train_end; its final weights are validated here
        self.validate(trainer, module)


class RetrievalValidation(ValidationSchedule):
    """Index the corpus with the current weights, search a split and log its metrics.

    Runs every ``every_n_steps`` optimizer steps (if set), at the end of every epoch, and at the end of
    training, never twice for the same step. The last index is kept (:attr:`last_index`,
    :attr:`last_step`) so the pipeline can search the test split without encoding the corpus again.

    Under DDP the every-n-steps and final validations shard the corpus encoding across the ranks
    (:func:`~lossbench.retrieval.index_corpus_sharded`, all ranks reach those points at the same
    step); rank 0 searches, evaluates, logs and keeps the index. At an epoch's end rank 0 validates
    alone, since the ranks' shares of a stream may end one step apart (the others wait for it).

    Args:
        collection: the collection to index and search.
        make_index: builds an empty index.
        split: the queries to evaluate (``dev``).
        metrics: ranx metric names, logged as ``val/<name>`` (``val/ndcg_at_10``).
        every_n_steps: also validate every n steps (None: only per epoch and at the end).
        k: search depth.
    """

    def __init__(
        self,
        collection: Collection,
        make_index: Callable[[], Index],
        split: str = "dev",
        metrics: Sequence[str] = ("ndcg@10",),
        every_n_steps: int | None = None,
        k: int = 100,
        batch_size: int = 128,
        num_workers: int = 0,
    ) -> None:
        super().__init__(collection, split, metrics, every_n_steps, batch_size)
        self.make_index = make_index
        self.k = k
        self.num_workers = num_workers

    def evaluate_index(self, module: Any, index: Index, step: int) -> dict[str, float]:
        """Search the split in ``index`` (built with the weights of ``step``) and record its metrics."""
        run = search_split(module, self.collection, index, self.split, self.k, self.batch_size)
        means = evaluate_run(self.collection.qrels[self.split], run, self.metrics).means
        self.last_index, self.last_step = index, step
        self.history.append((step, means))
        return means

    def validate(self, trainer: L.Trainer, module: Any, every_rank: bool = True) -> None:
        """Validate at this step unless already done; ``every_rank``: every DDP rank is at this
        point of the same step, so the corpus encoding is sharded across them."""
        step = trainer.global_step
        index: Index | None
        if every_rank and trainer.world_size > 1:
            if not trainer.strategy.broadcast(step != self.last_step, src=0):  # rank 0 decides
                return
            index = index_corpus_sharded(
                module, self.collection, self.make_index(), self.batch_size, self.num_workers
            )
            if index is None:  # not rank 0
                return
        else:
            if step == self.last_step or not trainer.is_global_zero:
                return
            index = index_corpus(
                module, self.collection, self.make_index(), self.batch_size, self.num_workers
            )
        self.log_means(trainer, self.evaluate_index(module, index, step))

    def evaluate_start(self, module: Any, untrained_index: Index | None) -> dict[str, float]:
        if untrained_index is None:
            raise ValueError("a corpus validation starts from the untrained model's corpus index")
        return self.evaluate_index(module, untrained_index, step=0)


class CandidateValidation(RetrievalValidation):
    """Validation whose cost does not grow with the corpus: the dev queries' candidates (a first
    stage's top docs, fixed before training) are pooled into one small corpus (:attr:`collection`),
    which each validation indexes with the current weights and searches with the dev queries.

    A query ranks the whole pool (its own candidates and the other queries'), so the pool holds at
    most ``queries x depth`` docs whatever the corpus holds; a relevant doc outside the pool counts as
    not retrieved. Rank 0 validates alone under DDP (the other ranks wait at their next step). The
    pool's index is not the corpus's: the test indexes the corpus itself (:attr:`last_index` None).

    Args:
        collection: the collection (dev queries, qrels, doc texts).
        candidates: the first stage's run of the split (``{query id: {doc id: score}}``).
        make_index: builds an empty index (the run's index type).
        split: the queries to evaluate (``dev``).
        settings: ``metrics``, ``every_n_steps``, ``k``, ``batch_size``, ``num_workers``, as
            :class:`RetrievalValidation`'s.
    """

    def __init__(
        self,
        collection: Collection,
        candidates: ScoredRun,
        make_index: Callable[[], Index],
        split: str = "dev",
        **settings: Any,
    ) -> None:
        pooled = sorted({doc_id for docs in candidates.values() for doc_id in docs})
        pool = Collection(
            name=f"{collection.name}-{split}-candidates",
            docs={doc_id: collection.docs[doc_id] for doc_id in pooled},
            queries={split: collection.split_queries(split)},
            qrels={split: collection.qrels[split]},
        )
        super().__init__(pool, make_index, split=split, **settings)
        self.candidates = candidate_ids(candidates)

    def evaluate_now(self, module: Any, step: int) -> dict[str, float]:
        """Index the pool with ``module`` (the weights of ``step``), search the split in it and
        record its metrics."""
        index = index_corpus(
            module,
            self.collection,
            self.make_index(),
            self.batch_size,
            self.num_workers,
            progress=False,
        )
        means = self.evaluate_index(module, index, step)
        self.last_index = None  # the pool's index: the test must index the corpus itself
        return means

    def evaluate_start(self, module: Any, untrained_index: Index | None) -> dict[str, float]:
        return self.evaluate_now(module, step=0)

    def identity(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "k": self.k, "candidates": self.candidates}

    def validate(self, trainer: L.Trainer, module: Any, every_rank: bool = True) -> None:
        if trainer.global_step == self.last_step or not trainer.is_global_zero:
            return
        self.log_means(trainer, self.evaluate_now(module, trainer.global_step))


class RerankValidation(ValidationSchedule):
    """Re-rank a split's first-stage candidates with the current weights and log its metrics.

    The candidates are fixed (the first stage ran once, before training), so each validation costs
    the split's queries times the candidates per query, whatever the corpus size. Rank 0 validates
    alone under DDP (the other ranks wait for it at their next step).

    Args:
        collection: the collection (query and doc texts, qrels).
        candidates: the first stage's run of the split (``{query id: {doc id: score}}``).
        split: the queries to evaluate (``dev``).
        metrics: ranx metric names, logged as ``val/<name>``.
        every_n_steps: also validate every n steps (None: only per epoch and at the end).
        batch_size: pairs per scoring batch.
    """

    def __init__(
        self,
        collection: Collection,
        candidates: ScoredRun,
        split: str = "dev",
        metrics: Sequence[str] = ("ndcg@10",),
        every_n_steps: int | None = None,
        batch_size: int = 128,
    ) -> None:
        super().__init__(collection, split, metrics, every_n_steps, batch_size)
        self.candidates = candidates  # last_index stays None: the test re-ranks its own candidates

    def evaluate_now(self, module: Any, step: int) -> dict[str, float]:
        """Re-rank the split with ``module`` (the weights of ``step``) and record its metrics."""
        from lossbench.retrieval.rerank import rerank

        collection = self.collection
        queries = collection.split_queries(self.split)
        run = rerank(
            module, self.candidates, queries, collection.docs, self.batch_size, progress=False
        )
        means = evaluate_run(collection.qrels[self.split], run, self.metrics).means
        self.last_step = step
        self.history.append((step, means))
        return means

    def evaluate_start(self, module: Any, untrained_index: Index | None) -> dict[str, float]:
        return self.evaluate_now(module, step=0)

    def identity(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "candidates": candidate_ids(self.candidates)}

    def validate(self, trainer: L.Trainer, module: Any, every_rank: bool = True) -> None:
        step = trainer.global_step
        if step == self.last_step or not trainer.is_global_zero:
            return
        self.log_means(trainer, self.evaluate_now(module, step))
