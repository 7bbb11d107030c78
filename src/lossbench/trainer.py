"""LightningIRTrainer: Lightning's Trainer with the defaults a retrieval run wants."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch


class _DropAdvertisements(logging.Filter):
    """Lightning advertises a cloud logger at every fit; lossbench logs to MLflow, so drop that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdvertisements())


def default_precision() -> str:
    """bf16 mixed precision on a GPU that supports it, full fp32 on the CPU."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class LightningIRTrainer(L.Trainer):
    """A ``lightning.Trainer`` whose defaults suit lossbench.

    * ``precision=None`` picks bf16 autocast on a GPU and fp32 on the CPU;
    * no logger unless one is given (the pipeline passes its MLflow logger), so nothing writes a
      ``lightning_logs`` folder behind the user's back;
    * no checkpoints unless asked for, no model summary, no sanity validation;
    * ``log_every_n_steps=None`` logs every step on the CPU and every 10th on a GPU: logging a
      step's loss waits for the GPU to finish it, which costs a small model ~10% of its speed.

    Any other keyword is a Lightning ``Trainer`` argument.
    """

    def __init__(
        self, *args: Any, precision: Any = None, log_every_n_steps: int | None = None, **kwargs: Any
    ) -> None:
        if log_every_n_steps is None:
            on_gpu = kwargs.get("accelerator", "auto") in ("auto", "gpu", "cuda")
            log_every_n_steps = 10 if on_gpu and torch.cuda.is_available() else 1
        kwargs["log_every_n_steps"] = log_every_n_steps
        kwargs.setdefault("logger", False)
        kwargs.setdefault("enable_checkpointing", False)
        kwargs.setdefault("enable_model_summary", False)
        kwargs.setdefault("num_sanity_val_steps", 0)
        super().__init__(*args, precision=precision or default_precision(), **kwargs)  # type: ignore[arg-type]
