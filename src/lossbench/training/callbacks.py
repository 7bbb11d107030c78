"""Training callbacks: stopping at the first non-finite loss."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and the losses."""


def logged_step(trainer: L.Trainer) -> int:
    """The step under which Lightning logs the metrics of the batch that just ended (``train/loss``
    in MLflow): the number of optimizer steps before this batch's. ``trainer.global_step`` already
    counts this batch's optimizer step at ``on_train_batch_end``, one more."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    stepped = getattr(loop, "_batches_that_stepped", None)  # Lightning's own logging step
    return int(stepped) if stepped is not None else max(0, trainer.global_step - 1)


class FiniteLossGuard(L.Callback):
    """Stop training at the first step whose loss is NaN or infinite, naming the step (as the
    ``train/loss`` curve shows it in MLflow) and each loss.

    Reading a loss on the CPU waits for the GPU, so the guard does not read it every step: it keeps a
    flag on the loss's device (the first non-finite step) and reads that flag on the steps where
    Lightning logs anyway (``trainer.log_every_n_steps``), before every checkpoint is written, and
    when training ends. On the CPU, where reading costs nothing, it checks every step. A checkpoint
    therefore never holds weights trained on a non-finite loss, and nothing logged so far is lost.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._first_bad_step: torch.Tensor | None = None  # on the loss's device; -1: none yet
        self._values_at_bad_step: dict[str, torch.Tensor] = {}

    def _interval(self, trainer: L.Trainer, loss: torch.Tensor) -> int:
        if self.check_every_n_steps is not None:
            return max(1, self.check_every_n_steps)
        every = getattr(trainer, "log_every_n_steps", 1)  # set by the logger connector
        return 1 if loss.device.type == "cpu" else max(1, int(every))

    def on_train_batch_end(
        self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach()
        if self._first_bad_step is None or self._first_bad_step.device != loss.device:
            self._first_bad_step = torch.full((), -1, dtype=torch.long, device=loss.device)
        first_bad_here = ~torch.isfinite(loss).all() & (self._first_bad_step < 0)
        self._first_bad_step = torch.where(
            first_bad_here, logged_step(trainer), self._first_bad_step
        )
        # each loss's value at the first bad step, kept on the device (no wait for the GPU)
        values = {"loss": loss, **getattr(module, "last_losses", {})}
        for name, value in values.items():
            kept = self._values_at_bad_step.get(name, torch.zeros_like(value))
            self._values_at_bad_step[name] = torch.where(first_bad_here, value.detach(), kept)
        if trainer.global_step % self._interval(trainer, loss) == 0:
            self.check()

    def check(self) -> None:
        """Raise :class:`NonFiniteLossError` if any step so far had a non-finite loss."""
        if self._first_bad_step is None or int(self._first_bad_step) < 0:
            return
        values = {name: float(value) for name, value in self._values_at_bad_step.items()}
        total = values.pop("loss", float("nan"))
        detail = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
        raise NonFiniteLossError(
            f"training loss is {total:.4g} at step {int(self._first_bad_step)} (train/loss's step)"
            + (f" ({detail})" if detail else "")
            + "; lower the learning rate, check the loss's inputs, or clip gradients (trainer.gradient_clip_val)"
        )

    def on_save_checkpoint(self, trainer: L.Trainer, module: Any, checkpoint: Any) -> None:
        self.check()

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        self.check()
