"""RankingModule: what every trained ranker shares (its losses and their weights, optimizer, LR
schedule, gradient clipping, compilation, the training step). A model family subclasses it, makes
its own training batches (:meth:`RankingModule.train_collator`) and computes the losses of a batch
from its own scores (:meth:`RankingModule._losses_of_batch`).

Saving is every family's too: a module writes itself to a folder (:meth:`RankingModule.save_pretrained`)
and loads back from that folder or from the MLflow URI a run logged it under
(:meth:`RankingModule.saved_folder` resolves ``runs:/<run id>/model`` and ``models:/<model id>``)."""

from __future__ import annotations

import importlib
import re
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lossbench.loss import LOSSES
from lossbench.loss.base import LossFunction
from lossbench.models.saved import resolve_model_path

LossSpec = LossFunction | str | type | tuple[Any, float]


def _resolve_loss(spec: Any) -> LossFunction:
    """A loss instance from an instance, a class, or a class path such as ``lossbench.RankNet``."""
    if isinstance(spec, str):
        module_name, _, class_name = spec.rpartition(".")
        if not module_name:
            raise ValueError(f"loss {spec!r}: give a class path such as 'lossbench.RankNet'")
        spec = getattr(importlib.import_module(module_name), class_name)
    if isinstance(spec, type):
        spec = spec()
    if not isinstance(spec, LossFunction):
        raise TypeError(
            f"{spec!r} is not a lossbench loss (a subclass of lossbench.loss.LossFunction)"
        )
    return spec


def normalize_losses(specs: Sequence[LossSpec]) -> tuple[list[LossFunction], list[float]]:
    """Split loss specs into instances and weights; a ``(loss, weight)`` pair sets the weight."""
    losses, weights = [], []
    for spec in specs:
        weight = 1.0
        if isinstance(spec, tuple):
            spec, weight = spec
        losses.append(_resolve_loss(spec))
        weights.append(float(weight))
    return losses, weights


def loss_log_names(losses: Sequence[LossFunction]) -> list[str]:
    """Names for logging: the config name (``ranknet``, ``flops``), else the class name in snake case;
    made unique with the loss's position when a name repeats."""
    registered = {cls: name for name, cls in LOSSES.items()}
    names = [
        registered.get(type(loss))
        or re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(loss).__name__).lower()
        for loss in losses
    ]
    return [name if names.count(name) == 1 else f"{name}_{i}" for i, name in enumerate(names)]


class RankingModule(L.LightningModule):
    """A ranker trained with a weighted sum of losses: ``loss = sum_k weight_k * loss_k``.

    Args:
        loss_functions: losses as instances, classes, class paths, or ``(loss, weight)`` pairs.
            ``module.loss_functions[k]`` is the k-th loss itself, so a scheduler key
            ``loss_functions.1.query_weight`` names the second loss's attribute.
    """

    def __init__(self, loss_functions: Sequence[LossSpec] | None = None) -> None:
        super().__init__()
        self.loss_functions, self.loss_weights = normalize_losses(loss_functions or [])
        self.loss_names = loss_log_names(self.loss_functions)
        self._optimizer: tuple[type[torch.optim.Optimizer], dict[str, Any]] = (
            torch.optim.AdamW,
            {"lr": 1e-5},
        )
        self._lr_lambda: Callable[[int], float] | None = None
        self.compiled = False  # set by compile_encoders: training pads to fixed lengths then
        self._compiled_losses: Callable[[Any], dict[str, torch.Tensor]] | None = None
        self.last_losses: dict[str, torch.Tensor] = {}  # each loss of the last step, on its device

    # ---- saving and loading -------------------------------------------------------------------
    @abstractmethod
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the trained model (weights, config, tokenizer) to ``folder``; returns it."""

    @classmethod
    def saved_model_folder(cls, source: str | Path, tracking_uri: str | None = None) -> str:
        """:meth:`saved_folder` for ``source``, checked to hold a model this family saved
        (:meth:`read_own_saved_config` finds its config), else a ``FileNotFoundError``."""
        from lossbench.models.module import SAVED_CONFIG

        folder = cls.saved_folder(source, tracking_uri)
        if cls.read_own_saved_config(folder) is None:
            raise FileNotFoundError(
                f"{folder} has no {SAVED_CONFIG}: it was not written by "
                f"{cls.__name__}.save_pretrained; for a plain Hugging Face model use "
                f"{cls.__name__}(model_name_or_path=..., config=...)"
            )
        return folder

    @staticmethod
    @abstractmethod
    def read_own_saved_config(folder: str | Path) -> Any | None:
        """The config this family's :meth:`save_pretrained` wrote in ``folder``, or None."""

    @staticmethod
    def saved_folder(
        source: str | Path, tracking_uri: str | None = None, cache_dir: str | Path | None = None
    ) -> str:
        """A local folder holding the model ``source`` names: a folder as is, or an MLflow URI
        (``runs:/<run id>/model``, ``models:/<model id>``) downloaded from ``tracking_uri``'s store
        into ``cache_dir`` once (:func:`~lossbench.models.saved.resolve_model_path`)."""
        return resolve_model_path(str(source), tracking_uri, cache_dir)

    # ---- optimizer, LR schedule, clipping, compilation -------------------------------------------
    def set_optimizer(self, optimizer: type[torch.optim.Optimizer], **kwargs: Any) -> None:
        """Choose the optimizer class and its arguments (``lr``, ``weight_decay``, ...)."""
        self._optimizer = (optimizer, kwargs)

    def set_lr_schedule(self, lr_lambda: Callable[[int], float] | None) -> None:
        """Multiply the learning rate by ``lr_lambda(step)`` at every optimizer step."""
        self._lr_lambda = lr_lambda

    def configure_optimizers(self) -> Any:
        optimizer_class, kwargs = self._optimizer
        kwargs = dict(kwargs)
        if optimizer_class is torch.optim.AdamW and self.device.type == "cuda":
            # fused AdamW unscales fp16's scaled gradients itself, so they cannot be clipped first
            kwargs.setdefault("fused", not self._scales_gradients())
        optimizer = optimizer_class(self.parameters(), **kwargs)
        if self._lr_lambda is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_lambda)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def compile_encoders(self, **kwargs: Any) -> None:
        """``torch.compile`` the training step's computation: both encoders, the scores and every
        loss, as one function (``kwargs`` go to ``torch.compile``; default ``dynamic=False``).

        Training batches are then padded to ``query_length`` / ``doc_length`` (see
        :class:`~lossbench.data.batches.TrainCollator`), so the compiler sees one static shape per
        step and specializes its kernels for it, as a hand-compiled step does; an epoch's partial
        last batch adds a graph. Parameter names, checkpoints and :meth:`save_pretrained` are
        unchanged. Encoding for an index stays eager (:func:`~lossbench.retrieval.encode.iter_encoded`):
        its length-sorted batches have a new shape each, and compiling every one would cost more
        than it saves. The first steps pay the compilation (tens of seconds).
        """
        kwargs.setdefault("dynamic", False)
        self._compiled_losses = torch.compile(self._losses_of_batch, **kwargs)
        self.compiled = True

    def _scales_gradients(self) -> bool:
        """Whether the trainer scales the loss (fp16's GradScaler); bf16 and fp32 do not."""
        trainer = self._trainer  # None outside Trainer.fit
        return trainer is not None and getattr(trainer.precision_plugin, "scaler", None) is not None

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as Lightning does, also for fused AdamW when nothing scales the gradients.

        Lightning refuses to clip for a fused optimizer because, with fp16's GradScaler, the
        optimizer unscales the gradients itself (clipping before that would clip scaled values).
        With bf16 or fp32 there is no scaler: clipping the gradients before the fused step is exact.
        """
        fused = bool(optimizer.defaults.get("fused"))
        if not gradient_clip_val or not fused or self._scales_gradients():
            super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )
            return
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        if str(gradient_clip_algorithm or "norm") == "value":
            torch.nn.utils.clip_grad_value_(parameters, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(parameters, gradient_clip_val)

    # ---- training -----------------------------------------------------------------------------
    @abstractmethod
    def train_collator(self, fixed_length: bool = False) -> Callable[[list[Any]], Any]:
        """What turns a list of :class:`~lossbench.data.datasets.TrainSample` into this model's
        training batch (tokenized; ``fixed_length``: padded to the full lengths, for compilation)."""

    def compute_losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """Every loss of the batch by its log name, plus ``loss``: their weighted sum."""
        if not self.loss_functions:
            raise ValueError(f"{type(self).__name__} has no loss_functions to train with")
        if self._compiled_losses is not None:
            return self._compiled_losses(batch)  # type: ignore[no-any-return]
        return self._losses_of_batch(batch)

    @abstractmethod
    def _losses_of_batch(self, batch: Any) -> dict[str, torch.Tensor]:
        """Every loss of the batch by its log name, ``loss`` (their weighted sum, float32), and any
        other value worth logging per step (``train/<name>``)."""

    def weighted_total(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum_k weight_k * loss_k`` over the losses in ``values`` (by log name), in float32."""
        total = next(iter(values.values())).new_zeros((), dtype=torch.float32)
        for name, weight in zip(self.loss_names, self.loss_weights, strict=True):
            total = total + weight * values[name].float()
        return total

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        values = self.compute_losses(batch)
        self.last_losses = {name: values[name].detach() for name in self.loss_names}
        size = len(batch.query_ids)
        # under DDP the mean over the ranks: with gathered in-batch losses, the global batch's loss;
        # on a GPU the progress bar would read the loss (and wait for the GPU) every step
        sync = self.trainer.world_size > 1
        on_cpu = values["loss"].device.type == "cpu"
        self.log("train/loss", values["loss"], prog_bar=on_cpu, batch_size=size, sync_dist=sync)
        if len(self.loss_functions) > 1:
            for name in self.loss_names:
                self.log(f"train/{name}", values[name], batch_size=size, sync_dist=sync)
        for name in values.keys() - {"loss", *self.loss_names}:  # e.g. SPLADE's non-zeros
            self.log(f"train/{name}", values[name], batch_size=size, sync_dist=sync)
        return values["loss"]
