"""A Lightning logger that writes a run's per-step metrics into its MLflow run, in batches."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from lossbench.experiment.tracking import TrackedRun


class MlflowRunLogger(Logger):
    """A Lightning logger that writes metrics into an MLflow run opened elsewhere.

    Unlike Lightning's ``MLFlowLogger`` it never ends the run: the pipeline still has to index,
    search and evaluate after training, and it owns the run's final status.

    Per-step metrics are buffered and written in one ``log_batch`` every ``flush_every_steps`` steps
    or ``flush_every_s`` seconds, whichever comes first (a write per step would cost a small model
    on a GPU a noticeable share of its step), and always when training ends, fails or is interrupted
    (Lightning calls :meth:`finalize` on every one of those paths).
    """

    def __init__(
        self, run: TrackedRun, flush_every_steps: int = 50, flush_every_s: float = 15.0
    ) -> None:
        super().__init__()
        self._run = run
        self.flush_every_steps = flush_every_steps
        self.flush_every_s = flush_every_s
        self._pending: list[tuple[Mapping[str, float], int | None]] = []
        self._last_flush = time.monotonic()

    @property
    def name(self) -> str:
        return self._run.experiment_id

    @property
    def version(self) -> str:
        return self._run.run_id

    @property
    @rank_zero_experiment
    def experiment(self) -> TrackedRun:
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are logged once by the pipeline from the resolved config."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items() if k != "epoch"}
        if values:
            self._pending.append((values, step))
        due = time.monotonic() - self._last_flush >= self.flush_every_s
        if len(self._pending) >= self.flush_every_steps or due:
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        """Write the buffered metrics now (one batch per 100 values)."""
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        self._run.log_metric_steps(pending)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
