"""BiEncoderModule: a bi-encoder with its losses, optimizer and LR schedule, trained by Lightning."""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from lossbench.data.batches import TrainBatch
from lossbench.data.token_cache import TokenCache
from lossbench.loss import LOSSES
from lossbench.loss.base import (
    InBatchLossFunction,
    LossFunction,
    RegularizationLossFunction,
    ScoringLossFunction,
)
from lossbench.models.backbone import load_tokenizer
from lossbench.models.config import BiEncoderConfig, DprConfig, config_from_dict
from lossbench.models.encoders import TextEncoder, build_encoder
from lossbench.training.distributed import InBatchScores, distributed_position, in_batch_inputs

LossSpec = LossFunction | str | type | tuple[Any, float]

SAVED_CONFIG = "lossbench_config.json"
"""The file that marks a folder written by :meth:`BiEncoderModule.save_pretrained`."""
SAVED_FORMAT = 1


def read_saved_config(folder: str | Path) -> BiEncoderConfig | None:
    """The config saved in ``folder`` by :meth:`BiEncoderModule.save_pretrained`, or None."""
    path = Path(folder) / SAVED_CONFIG
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("format") != SAVED_FORMAT:
        raise ValueError(f"{path}: unknown format {saved.get('format')!r}; expected {SAVED_FORMAT}")
    return config_from_dict(saved["config"])


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


class BiEncoderModule(L.LightningModule):
    """A bi-encoder (queries and docs encoded separately, scored by similarity) and its training.

    Args:
        model_name_or_path: a local model folder (or, with internet, a hub id) for weights and tokenizer,
            or a folder written by :meth:`save_pretrained` (its trained weights; its config unless
            ``config`` is given).
        config: a :class:`DprConfig` (the default) or :class:`SpladeConfig`.
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
        saved = read_saved_config(model_name_or_path)
        self.config = config or saved or DprConfig()
        self.model_name_or_path = model_name_or_path
        self.tokenizer = load_tokenizer(model_name_or_path)
        self.encoder, self.separate_doc_encoder = self._build_encoders(saved is not None)
        self.train()  # Hugging Face loads weights in eval mode; training wants dropout on
        self.loss_functions, self.loss_weights = normalize_losses(loss_functions or [])
        self.loss_names = loss_log_names(self.loss_functions)
        self._optimizer: tuple[type[torch.optim.Optimizer], dict[str, Any]] = (
            torch.optim.AdamW,
            {"lr": 1e-5},
        )
        self._lr_lambda: Callable[[int], float] | None = None
        self.compiled = False  # set by compile_encoders: training pads to fixed lengths then
        self._compiled_losses: Callable[[TrainBatch], dict[str, torch.Tensor]] | None = None
        # token ids of the texts encoded so far: a corpus's later encoding passes skip the tokenizer
        self.token_cache = TokenCache()
        self.last_losses: dict[str, torch.Tensor] = {}  # each loss of the last step, on its device

    def _build_encoders(self, from_saved: bool) -> tuple[TextEncoder, TextEncoder | None]:
        """The query encoder (shared with docs) and, with ``shared_encoder=False``, the doc encoder."""
        config, path = self.config, self.model_name_or_path
        if not from_saved:
            encoder = build_encoder(path, config)
            # the doc encoder starts as an exact copy: same architecture, same initialization
            return encoder, None if config.shared_encoder else copy.deepcopy(encoder)
        if config.random_init or config.backbone_overrides:
            raise ValueError(
                f"{path} holds a trained model: load it without random_init/backbone_overrides "
                "(BiEncoderModule.from_pretrained(folder) uses the config it was saved with)"
            )
        if config.shared_encoder:
            return build_encoder(path, config, Path(path)), None
        for part in ("query_encoder", "doc_encoder"):
            if not (Path(path) / part).is_dir():
                raise ValueError(
                    f"{path} has no {part}/ folder: it was saved with shared_encoder=true; "
                    "load it without config=... (or with shared_encoder=true)"
                )
        return (
            build_encoder(path, config, Path(path) / "query_encoder"),
            build_encoder(path, config, Path(path) / "doc_encoder"),
        )

    @property
    def query_encoder(self) -> TextEncoder:
        return self.encoder

    @property
    def doc_encoder(self) -> TextEncoder:
        return self.separate_doc_encoder if self.separate_doc_encoder is not None else self.encoder

    @property
    def backbone(self) -> nn.Module:
        """The (query) encoder's transformer."""
        return self.encoder.backbone

    # ---- saving and loading -------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the trained model to ``folder``: Hugging Face folder(s) and ``lossbench_config.json``.

        The backbone is a standard Hugging Face folder (``config.json``, ``model.safetensors``, the
        tokenizer); the layers after it (projection, MLM head) go to ``lossbench_head.safetensors``.
        With ``shared_encoder=False`` the two encoders go to ``query_encoder/`` and ``doc_encoder/``.
        Load it back with :meth:`from_pretrained`; the losses are not saved.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.separate_doc_encoder is None:
            self.encoder.save(folder)
        else:
            self.encoder.save(folder / "query_encoder")
            self.separate_doc_encoder.save(folder / "doc_encoder")
        self.tokenizer.save_pretrained(folder)
        config = self.config.to_dict()
        config.update(random_init=False, backbone_overrides={})  # baked into the saved weights
        saved = {"format": SAVED_FORMAT, "config": config, "trained_from": self.model_name_or_path}
        (folder / SAVED_CONFIG).write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        loss_functions: Sequence[LossSpec] | None = None,
        config: BiEncoderConfig | None = None,
    ) -> BiEncoderModule:
        """Load a model written by :meth:`save_pretrained` (to search with, or to train further)."""
        if read_saved_config(folder) is None:
            raise FileNotFoundError(
                f"{folder} has no {SAVED_CONFIG}: it was not written by "
                "BiEncoderModule.save_pretrained; for a plain Hugging Face model use "
                "BiEncoderModule(model_name_or_path=..., config=...)"
            )
        return cls(model_name_or_path=str(folder), config=config, loss_functions=loss_functions)

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

    # ---- encoding -----------------------------------------------------------------------------
    def encode(self, encoding: dict[str, torch.Tensor], kind: str = "query") -> torch.Tensor:
        """Texts' token ids ``(B, L)`` to vectors ``(B, dim)`` (``dim`` = vocabulary for SPLADE)."""
        if kind not in ("query", "doc"):
            raise ValueError(f"kind={kind!r}; valid: query, doc")
        encoder = self.query_encoder if kind == "query" else self.doc_encoder
        return encoder(encoding)  # (B, dim)

    def encode_queries(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(encoding, "query")

    def encode_docs(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(encoding, "doc")

    # ---- training -----------------------------------------------------------------------------
    def compute_losses(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Every loss of the batch by its log name, plus ``loss``: their weighted sum."""
        if not self.loss_functions:
            raise ValueError("BiEncoderModule has no loss_functions to train with")
        if self._compiled_losses is not None:
            return self._compiled_losses(batch)  # type: ignore[no-any-return]
        return self._losses_of_batch(batch)

    def _losses_of_batch(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        queries = self.encode_queries(batch.query_encoding)  # (Q, H)
        real_docs = self.encode_docs(batch.doc_encoding)  # (N, H)
        mask = batch.doc_mask  # (Q, D)
        num_queries, num_docs = mask.shape
        if real_docs.shape[0] == num_queries * num_docs:  # every query has D docs: no padding
            docs = real_docs  # (Q*D, H)
        else:  # scatter the real docs into their (query, slot) places; padding slots stay 0
            positions = mask.flatten().nonzero().squeeze(1)  # (N,)
            docs = real_docs.new_zeros(num_queries * num_docs, real_docs.shape[-1])
            docs = docs.index_copy(0, positions, real_docs)  # (Q*D, H)
        docs_per_query = docs.view(num_queries, num_docs, -1)  # (Q, D, H)
        scores = torch.einsum("qh,qdh->qd", queries, docs_per_query)  # (Q, D)
        in_batch: dict[bool, InBatchScores] = {}  # local, and gathered across devices
        values: dict[str, torch.Tensor] = {}
        total = scores.new_zeros((), dtype=torch.float32)
        for name, loss, weight in zip(
            self.loss_names, self.loss_functions, self.loss_weights, strict=True
        ):
            if isinstance(loss, ScoringLossFunction):
                value = loss(scores, batch.targets, mask)
            elif isinstance(loss, InBatchLossFunction):
                gather = loss.gather_across_devices and distributed_position()[1] > 1
                if gather not in in_batch:
                    in_batch[gather] = in_batch_inputs(
                        queries, docs_per_query, mask, batch.targets, gather
                    )
                value = in_batch[gather].apply(loss)
            elif isinstance(loss, RegularizationLossFunction):
                value = loss(queries, real_docs)
            else:  # pragma: no cover - normalize_losses admits LossFunction subclasses only
                raise TypeError(f"{type(loss).__name__} follows none of the loss contracts")
            values[name] = value
            total = total + weight * value.float()
        values["loss"] = total
        if self.config.sparse:  # average non-zeros per vector: how sparse the index will be
            values["query_nnz"] = (queries.detach() != 0).sum(-1).float().mean()
            values["doc_nnz"] = (real_docs.detach() != 0).sum(-1).float().mean()
        return values

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:
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
        for name in ("query_nnz", "doc_nnz"):
            if name in values:
                self.log(f"train/{name}", values[name], batch_size=size, sync_dist=sync)
        return values["loss"]
