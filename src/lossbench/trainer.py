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
    * no checkpoints unless asked for, no model summary, no sanity validation.

    Any other keyword is a Lightning ``Trainer`` argument.
    """

    def __init__(self, *args: Any, precision: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("logger", False)
        kwargs.setdefault("enable_checkpointing", False)
        kwargs.setdefault("enable_model_summary", False)
        kwargs.setdefault("num_sanity_val_steps", 0)
        super().__init__(*args, precision=precision or default_precision(), **kwargs)  # type: ignore[arg-type]
