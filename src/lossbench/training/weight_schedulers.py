"""Weight schedulers: Lightning callbacks that change numbers of the module (loss weights) per step.

A scheduler holds ``keys``, dotted attribute paths on the LightningModule in which an integer indexes
a list (``loss_functions.1.query_weight`` is ``module.loss_functions[1].query_weight``). At the start
of training it records each key's original value ``v0``; before every optimizer step ``n``
(``trainer.global_step``) it sets the key to ``lambda(n) * v0``; at the end of training (or when
training fails) it restores ``v0``. The current values are logged as ``schedule/<key>`` curves.

With ``delay`` = ``num_delay_steps`` and ``warmup`` = ``num_warmup_steps``::

    lambda(n) = 0                                  n < delay
              = ramp((n - delay) / warmup)         delay <= n < delay + warmup
              = after(n)                           n >= delay + warmup

``ramp(x) = x`` (linear warmup) or ``x^2`` (quadratic); ``after(n) = 1`` (constant) or a linear decay
from 1 at ``delay + warmup`` to ``final_value`` at ``num_training_steps`` (linear).

SPLADE (Formal et al., SIGIR 2021) warms the FLOPS weights up this way: sparsity pressure from the
first step would collapse the vectors before the ranking loss has shaped them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any

import lightning as L

__all__ = [
    "GenericConstantSchedulerWithLinearWarmup",
    "GenericConstantSchedulerWithQuadraticWarmup",
    "GenericLinearSchedulerWithLinearWarmup",
    "GenericScheduler",
    "get_key",
    "set_key",
]


def _step_into(obj: Any, part: str, key: str) -> Any:
    """``obj[int(part)]`` for a list, ``obj[part]`` for a mapping, else ``getattr(obj, part)``."""
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        if not part.lstrip("-").isdigit():
            raise KeyError(f"{key!r}: {part!r} must be a list index (an integer)")
        index = int(part)
        if not -len(obj) <= index < len(obj):
            raise KeyError(
                f"{key!r}: index {index} is out of range for a list of {len(obj)} item(s)"
            )
        return obj[index]
    if isinstance(obj, Mapping):
        if part not in obj:
            raise KeyError(f"{key!r}: no entry {part!r}; entries: {', '.join(map(str, obj))}")
        return obj[part]
    if not hasattr(obj, part):
        raise KeyError(f"{key!r}: {type(obj).__name__} has no attribute {part!r}")
    return getattr(obj, part)


def get_key(root: Any, key: str) -> Any:
    """The value at dotted path ``key`` under ``root`` (``loss_functions.1.query_weight``)."""
    obj = root
    for part in key.split("."):
        obj = _step_into(obj, part, key)
    return obj


def set_key(root: Any, key: str, value: Any) -> None:
    """Set the value at dotted path ``key`` under ``root``."""
    *path, last = key.split(".")
    parent = root
    for part in path:
        parent = _step_into(parent, part, key)
    _step_into(parent, last, key)  # the same checks (and errors) as reading it
    if isinstance(parent, MutableSequence):
        parent[int(last)] = value
    elif isinstance(parent, Sequence) and not isinstance(parent, str):
        raise TypeError(f"{key!r}: cannot set an item of a {type(parent).__name__} (immutable)")
    elif isinstance(parent, MutableMapping):
        parent[last] = value
    else:
        setattr(parent, last, value)


class GenericScheduler(L.Callback):
    """Base class: scales each key by :meth:`value_lambda` of the global step.

    Args:
        keys: dotted paths of float attributes on the LightningModule.
        num_warmup_steps: steps of the warmup ramp (after the delay).
        num_delay_steps: steps at value 0 before the warmup starts.
        log_values: log ``schedule/<key>`` at every step (through ``pl_module.log``, i.e. the
            trainer's logger).
    """

    def __init__(
        self,
        keys: Sequence[str],
        num_warmup_steps: int,
        num_delay_steps: int = 0,
        log_values: bool = True,
    ) -> None:
        if isinstance(keys, str):
            keys = [keys]
        if not keys:
            raise ValueError(
                "keys is empty: name at least one attribute, e.g. 'loss_functions.1.doc_weight'"
            )
        if num_warmup_steps < 0 or num_delay_steps < 0:
            raise ValueError(
                f"num_warmup_steps={num_warmup_steps} and num_delay_steps={num_delay_steps} "
                "must be >= 0"
            )
        self.keys = [str(key) for key in keys]
        self.num_warmup_steps = int(num_warmup_steps)
        self.num_delay_steps = int(num_delay_steps)
        self.log_values = log_values
        self.originals: dict[str, float] = {}

    # ---- the schedule -------------------------------------------------------------------------
    def ramp(self, fraction: float) -> float:
        """The warmup's shape on ``[0, 1)``."""
        return fraction

    def after_warmup(self, step: int) -> float:
        """``lambda`` once the warmup is over."""
        return 1.0

    def value_lambda(self, step: int) -> float:
        """The factor applied to every key's original value at global step ``step``."""
        if step < self.num_delay_steps:
            return 0.0
        if step < self.num_delay_steps + self.num_warmup_steps:
            return self.ramp((step - self.num_delay_steps) / self.num_warmup_steps)
        return self.after_warmup(step)

    # ---- keys ---------------------------------------------------------------------------------
    def check_keys(self, module: Any) -> dict[str, float]:
        """Every key's current value; a ``ValueError`` naming the key unless each is a number."""
        values = {}
        for key in self.keys:
            try:
                value = get_key(module, key)
            except KeyError as error:
                raise ValueError(
                    f"{type(self).__name__}: cannot schedule {error.args[0]} "
                    f"(keys are dotted attribute paths on {type(module).__name__}; integers index lists)"
                ) from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"{type(self).__name__}: {key!r} is {value!r}, not a number; only float "
                    "attributes (such as a regularizer's query_weight) can be scheduled"
                )
            values[key] = float(value)
        return values

    def apply(self, module: Any, step: int) -> dict[str, float]:
        """Set every key to ``value_lambda(step) * original``; returns the new values."""
        factor = self.value_lambda(step)
        current = {key: factor * original for key, original in self.originals.items()}
        for key, value in current.items():
            set_key(module, key, value)
        return current

    def restore(self, module: Any) -> None:
        for key, original in self.originals.items():
            set_key(module, key, original)
        self.originals = {}

    # ---- Lightning hooks ----------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.originals = self.check_keys(pl_module)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        current = self.apply(pl_module, trainer.global_step)
        if self.log_values:
            for key, value in current.items():
                pl_module.log(f"schedule/{key}", value, on_step=True, on_epoch=False, batch_size=1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.restore(pl_module)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self.originals:
            self.restore(pl_module)

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if k not in ("originals", "log_values")
        )
        return f"{type(self).__name__}({args})"


class GenericConstantSchedulerWithLinearWarmup(GenericScheduler):
    """0 during the delay, a linear ramp to the original value over the warmup, then constant.

    ``lambda(n) = 0`` for ``n < delay``; ``(n - delay) / warmup`` for ``n < delay + warmup``; 1 after.

    Example (the guide's SPLADE recipe)::

        GenericConstantSchedulerWithLinearWarmup(
            keys=["loss_functions.1.query_weight", "loss_functions.1.doc_weight"],
            num_warmup_steps=20_000,
            num_delay_steps=50_000,
        )
    """


class GenericConstantSchedulerWithQuadraticWarmup(GenericScheduler):
    """Like :class:`GenericConstantSchedulerWithLinearWarmup` with a quadratic ramp:
    ``lambda(n) = ((n - delay) / warmup)^2`` during the warmup (SPLADE's original FLOPS warmup)."""

    def ramp(self, fraction: float) -> float:
        return fraction * fraction


class GenericLinearSchedulerWithLinearWarmup(GenericScheduler):
    """A linear warmup to the original value, then a linear decay to ``final_value`` times it.

    ``lambda(n)`` as the constant scheduler up to ``delay + warmup``, then
    ``1 - (1 - final_value) * (n - delay - warmup) / (num_training_steps - delay - warmup)``, held at
    ``final_value`` from ``num_training_steps`` on.

    Args:
        keys: dotted paths of float attributes on the LightningModule.
        num_warmup_steps: steps of the linear warmup.
        num_training_steps: the step at which the decay reaches ``final_value``.
        final_value: the factor at the end of the decay (0 by default).
        num_delay_steps: steps at 0 before the warmup.
    """

    def __init__(
        self,
        keys: Sequence[str],
        num_warmup_steps: int,
        num_training_steps: int,
        final_value: float = 0.0,
        num_delay_steps: int = 0,
        log_values: bool = True,
    ) -> None:
        super().__init__(keys, num_warmup_steps, num_delay_steps, log_values)
        if num_training_steps < num_delay_steps + num_warmup_steps:
            raise ValueError(
                f"num_training_steps={num_training_steps} ends before the warmup does "
                f"(num_delay_steps + num_warmup_steps = {num_delay_steps + num_warmup_steps})"
            )
        self.num_training_steps = int(num_training_steps)
        self.final_value = float(final_value)

    def after_warmup(self, step: int) -> float:
        start = self.num_delay_steps + self.num_warmup_steps
        span = self.num_training_steps - start
        progress = 1.0 if span == 0 else min((step - start) / span, 1.0)
        return 1.0 - (1.0 - self.final_value) * progress
