"""BiEncoderModule: a bi-encoder with its losses, optimizer and LR schedule, trained by Lightning."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lossbench.data.batches import TrainBatch
from lossbench.loss import LOSSES
from lossbench.loss.base import (
    InBatchLossFunction,
    LossFunction,
    RegularizationLossFunction,
    ScoringLossFunction,
)
from lossbench.models.backbone import load_backbone, load_tokenizer, pool
from lossbench.models.config import BiEncoderConfig, DprConfig

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
        registered.get(type(loss)) or re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(loss).__name__).lower()
        for loss in losses
    ]
    return [name if names.count(name) == 1 else f"{name}_{i}" for i, name in enumerate(names)]


class BiEncoderModule(L.LightningModule):
    """A bi-encoder (queries and docs encoded separately, scored by similarity) and its training.

    Args:
        model_name_or_path: a local model folder (or, with internet, a hub id) for weights and tokenizer.
        config: a :class:`BiEncoderConfig` (default :class:`DprConfig`).
        loss_functions: losses as instances, classes, class paths, or ``(loss, weight)`` pairs; the total
            loss is ``sum_k weight_k * loss_k``. ``module.loss_functions[k]`` is the k-th loss itself, so
            a scheduler key ``loss_functions.1.query_weight`` names the second loss's attribute.
    """

    def __init__(
        self,
        model_name_or_path: str,
        config: BiEncoderConfig | None = None,
        loss_functions: Sequence[LossSpec] | None = None,
    ) -> None:
        super().__init__()
        self.config = config or DprConfig()
        self.model_name_or_path = model_name_or_path
        self.tokenizer = load_tokenizer(model_name_or_path)
        self.backbone: nn.Module = load_backbone(model_name_or_path, self.config)
        self.loss_functions, self.loss_weights = normalize_losses(loss_functions or [])
        self.loss_names = loss_log_names(self.loss_functions)
        self._optimizer: tuple[type[torch.optim.Optimizer], dict[str, Any]] = (
            torch.optim.AdamW,
            {"lr": 1e-5},
        )
        self._lr_lambda: Callable[[int], float] | None = None

    # ---- set-up -------------------------------------------------------------------------------
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
            kwargs.setdefault("fused", True)
        optimizer = optimizer_class(self.parameters(), **kwargs)
        if self._lr_lambda is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_lambda)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # ---- encoding -----------------------------------------------------------------------------
    def encode(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        """Texts' token ids ``(B, L)`` to vectors ``(B, dim)``."""
        hidden = self.backbone(**encoding).last_hidden_state  # (B, L, H)
        vectors = pool(hidden, encoding["attention_mask"], self.config.pooling)  # (B, H)
        if self.config.similarity == "cosine":
            vectors = F.normalize(vectors, dim=-1)
        return vectors

    def encode_queries(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(encoding)

    def encode_docs(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(encoding)

    # ---- training -----------------------------------------------------------------------------
    def compute_losses(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Every loss of the batch by its log name, plus ``loss``: their weighted sum."""
        if not self.loss_functions:
            raise ValueError("BiEncoderModule has no loss_functions to train with")
        queries = self.encode_queries(batch.query_encoding)  # (Q, H)
        real_docs = self.encode_docs(batch.doc_encoding)  # (N, H)
        mask = batch.doc_mask  # (Q, D)
        num_queries, num_docs = mask.shape
        positions = mask.flatten().nonzero().squeeze(1)  # (N,)
        docs = real_docs.new_zeros(num_queries * num_docs, real_docs.shape[-1])
        docs = docs.index_copy(0, positions, real_docs)  # (Q*D, H)
        scores = torch.einsum("qh,qdh->qd", queries, docs.view(num_queries, num_docs, -1))  # (Q, D)
        in_batch_scores: torch.Tensor | None = None
        values: dict[str, torch.Tensor] = {}
        total = scores.new_zeros((), dtype=torch.float32)
        for name, loss, weight in zip(
            self.loss_names, self.loss_functions, self.loss_weights, strict=True
        ):
            if isinstance(loss, ScoringLossFunction):
                value = loss(scores, batch.targets, mask)
            elif isinstance(loss, InBatchLossFunction):
                if in_batch_scores is None:
                    in_batch_scores = queries @ docs.T  # (Q, Q*D)
                value = loss(in_batch_scores, batch.targets, mask)
            elif isinstance(loss, RegularizationLossFunction):
                value = loss(queries, real_docs)
            else:  # pragma: no cover - normalize_losses admits LossFunction subclasses only
                raise TypeError(f"{type(loss).__name__} follows none of the loss contracts")
            values[name] = value
            total = total + weight * value.float()
        values["loss"] = total
        return values

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:
        values = self.compute_losses(batch)
        size = len(batch.query_ids)
        self.log("train/loss", values["loss"], prog_bar=True, batch_size=size)
        if len(self.loss_functions) > 1:
            for name in self.loss_names:
                self.log(f"train/{name}", values[name], batch_size=size)
        return values["loss"]
