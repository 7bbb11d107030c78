"""LightningIRTrainer: Lightning's Trainer with the defaults a retrieval run wants."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar


class _DropAdvertisements(logging.Filter):
    """Lightning advertises a cloud logger at every fit; lossbench logs to MLflow, so drop that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdvertisements())
# Lightning prints through its own handler ("INFO: ..."); under Hydra, whose handler sits on the root
# logger, the same line would also propagate there and print a second time ("[HYDRA] ...").
logging.getLogger("lightning").propagate = False


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
      step's loss waits for the GPU to finish it, which slows a small model measurably
      (``bench/RESULTS.md``);
    * a plain progress bar (it also prints into log files, where a rich bar stays blank until the
      end), redrawn every step on the CPU and every 10th step on a GPU, where drawing it every step
      costs more Python time than a small model's step leaves.

    Any other keyword is a Lightning ``Trainer`` argument.
    """

    def __init__(
        self, *args: Any, precision: Any = None, log_every_n_steps: int | None = None, **kwargs: Any
    ) -> None:
        on_gpu = kwargs.get("accelerator", "auto") in ("auto", "gpu", "cuda")
        on_gpu = on_gpu and torch.cuda.is_available()
        if log_every_n_steps is None:
            log_every_n_steps = 10 if on_gpu else 1
        kwargs["log_every_n_steps"] = log_every_n_steps
        if kwargs.get("enable_progress_bar", True):
            callbacks = list(kwargs.get("callbacks") or [])
            if not any(isinstance(callback, ProgressBar) for callback in callbacks):
                callbacks.append(TQDMProgressBar(refresh_rate=10 if on_gpu else 1))
                kwargs["callbacks"] = callbacks
        kwargs.setdefault("logger", False)
        kwargs.setdefault("enable_checkpointing", False)
        kwargs.setdefault("enable_model_summary", False)
        kwargs.setdefault("num_sanity_val_steps", 0)
        super().__init__(*args, precision=precision or default_precision(), **kwargs)  # type: ignore[arg-type]
