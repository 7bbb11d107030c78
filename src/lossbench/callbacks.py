"""Training callbacks: retrieval validation on the dev split, and stopping on a non-finite loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch

from lossbench.data.collection import Collection
from lossbench.evaluation import evaluate_run, mlflow_metric_name
from lossbench.retrieval import Index, index_corpus, search_split


class RetrievalValidation(L.Callback):
    """Index the corpus with the current weights, search a split and log its metrics.

    Runs every ``every_n_steps`` optimizer steps (if set), at the end of every epoch, and at the end of
    training, never twice for the same step. The last index is kept (:attr:`last_index`,
    :attr:`last_step`) so the pipeline can search the test split without encoding the corpus again.

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
        self.collection = collection
        self.make_index = make_index
        self.split = split
        self.metrics = list(metrics)
        self.every_n_steps = every_n_steps
        self.k = k
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.last_index: Index | None = None
        self.last_step: int | None = None
        self.history: list[tuple[int, dict[str, float]]] = []

    def evaluate_index(self, module: Any, index: Index, step: int) -> dict[str, float]:
        """Search the split in ``index`` (built with the weights of ``step``) and record its metrics."""
        run = search_split(module, self.collection, index, self.split, self.k, self.batch_size)
        means = evaluate_run(self.collection.qrels[self.split], run, self.metrics).means
        self.last_index, self.last_step = index, step
        self.history.append((step, means))
        return means

    def validate(self, trainer: L.Trainer, module: Any) -> None:
        step = trainer.global_step
        if step == self.last_step or not trainer.is_global_zero:
            return
        index = index_corpus(
            module, self.collection, self.make_index(), self.batch_size, self.num_workers
        )
        means = self.evaluate_index(module, index, step)
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {mlflow_metric_name(m, "val"): v for m, v in means.items()}, step
            )

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.validate(trainer, module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: Any) -> None:
        self.validate(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        self.validate(trainer, module)

    def on_fit_end(self, trainer: L.Trainer, module: Any) -> None:
        # a run resumed from a checkpoint at max_steps trains no step, and Lightning calls no
        # on_train_end; its final weights are validated here
        self.validate(trainer, module)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and the losses."""


class FiniteLossGuard(L.Callback):
    """Stop training at the first step whose loss is NaN or infinite, naming the step and each loss.

    Checked after the optimizer step, so checkpoints written before it (``checkpoint.every_n_steps``)
    hold the last good weights; nothing logged so far is lost.
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return
        parts = getattr(module, "last_losses", {})
        detail = ", ".join(f"{name}={float(value):.4g}" for name, value in parts.items())
        raise NonFiniteLossError(
            f"training loss is {float(loss.detach()):.4g} at step {trainer.global_step}"
            + (f" ({detail})" if detail else "")
            + "; lower the learning rate, check the loss's inputs, or clip gradients (trainer.gradient_clip_val)"
        )
