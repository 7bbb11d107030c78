"""Learning-rate schedules: ``step -> factor`` callables for ``torch.optim.lr_scheduler.LambdaLR``.

Each is a small picklable class (so DataLoader workers and checkpoints can carry it) whose factor
multiplies the optimizer's base learning rate.
"""

from __future__ import annotations

import math


class ConstantWithWarmup:
    """``step / warmup_steps`` during warmup, then 1."""

    def __init__(self, warmup_steps: int = 0) -> None:
        if warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        self.warmup_steps = warmup_steps

    def warmup(self, step: int) -> float | None:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return None

    def __call__(self, step: int) -> float:
        factor = self.warmup(step)
        return 1.0 if factor is None else factor


class LinearWarmupDecay(ConstantWithWarmup):
    """Linear warmup to 1, then linear decay to ``final_factor`` at ``total_steps``."""

    def __init__(self, warmup_steps: int, total_steps: int, final_factor: float = 0.0) -> None:
        super().__init__(warmup_steps)
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.total_steps = total_steps
        self.final_factor = final_factor

    def progress(self, step: int) -> float:
        span = self.total_steps - self.warmup_steps
        if span <= 0:  # the warmup takes the whole run
            return 1.0
        return min(max(step - self.warmup_steps, 0) / span, 1.0)

    def __call__(self, step: int) -> float:
        factor = self.warmup(step)
        if factor is not None:
            return factor
        return 1.0 - (1.0 - self.final_factor) * self.progress(step)


class CosineWithWarmup(LinearWarmupDecay):
    """Linear warmup to 1, then a half cosine down to ``final_factor`` at ``total_steps``."""

    def __call__(self, step: int) -> float:
        factor = self.warmup(step)
        if factor is not None:
            return factor
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))
        return self.final_factor + (1.0 - self.final_factor) * cosine
