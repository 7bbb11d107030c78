"""A Lightning logger that writes a run's per-step metrics into its MLflow run, in batches, and loses
none of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from lossbench.experiment.tracking import BATCH_LIMIT, TrackedRun

log = logging.getLogger("lossbench")


class MetricsNotWrittenError(RuntimeError):
    """Some of a run's per-step metrics could not be written to MLflow; the message says how many."""


class MlflowRunLogger(Logger):
    """A Lightning logger that writes metrics into an MLflow run opened elsewhere.

    Unlike Lightning's ``MLFlowLogger`` it never ends the run: the pipeline still has to index,
    search and evaluate after training, and it owns the run's final status.

    Per-step metrics are buffered, each with the time it was logged, and written in ``log_batch``
    calls every ``flush_every_steps`` steps or ``flush_every_s`` seconds, whichever comes first (a
    write per step would cost a small model on a GPU a noticeable share of its step), and always
    when training ends, fails or is interrupted (Lightning calls :meth:`finalize` on each of those).

    Nothing is dropped: values leave the buffer only once MLflow took them, so a failed write (the
    store briefly unreachable) keeps them for the next flush. When training ends, a write that still
    fails after ``retries`` more tries fails the run, saying how many steps were lost
    (:class:`MetricsNotWrittenError`); when training already failed, it is logged instead, so the
    training error stays the one the run reports.
    """

    def __init__(
        self,
        run: TrackedRun,
        flush_every_steps: int = 50,
        flush_every_s: float = 15.0,
        retries: int = 2,
        retry_after_s: float = 1.0,
    ) -> None:
        super().__init__()
        self._run = run
        self.flush_every_steps = flush_every_steps
        self.flush_every_s = flush_every_s
        self.retries = retries
        self.retry_after_s = retry_after_s
        self._pending: list[Any] = []  # MLflow Metric objects, oldest first
        self._pending_calls = 0
        self._last_error: Exception | None = None
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

    @property
    def pending_steps(self) -> int:
        """How many steps have values not yet written to MLflow."""
        return len({metric.step for metric in self._pending})

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are logged once by the pipeline from the resolved config."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items() if k != "epoch"}
        if values:
            now = int(time.time() * 1000)  # the time it was logged, not the time it is written
            self._pending.extend(self._run.metric_items(values, step, now))
            self._pending_calls += 1
        due = time.monotonic() - self._last_flush >= self.flush_every_s
        if self._pending_calls >= self.flush_every_steps or due:
            self.flush()

    @rank_zero_only
    def flush(self) -> bool:
        """Write the buffered metrics now (one batch per 100 values); True when none is left.

        A failed write keeps what it could not write (and logs a warning); it never raises.
        """
        self._last_flush = time.monotonic()
        while self._pending:
            batch = self._pending[:BATCH_LIMIT]
            try:
                self._run.log_items(batch)
            except Exception as error:  # noqa: BLE001 -- kept, retried at the next flush
                self._last_error = error
                log.warning(
                    "could not write %d metric values (%d steps) to MLflow, kept for the next "
                    "flush: %s: %s",
                    len(self._pending),
                    self.pending_steps,
                    type(error).__name__,
                    error,
                )
                return False
            del self._pending[: len(batch)]
        self._pending_calls = 0
        return True

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Training ended (``success``), failed or was interrupted: write what is left, retrying."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_after_s * attempt)
            if self.flush():
                return
        message = (
            f"{self.pending_steps} steps of training metrics ({len(self._pending)} values) could "
            f"not be written to MLflow after {self.retries + 1} tries: "
            f"{type(self._last_error).__name__}: {self._last_error}"
        )
        if status == "success":
            raise MetricsNotWrittenError(message)
        log.error("%s (training itself failed; its error follows)", message)
