"""SIGTERM during a tracked run (``kill``, a scheduler's time limit): an interrupt, and remembered.

The run that was running ends KILLED instead of staying RUNNING forever, and a sweep stops instead of
going on to its next job (:func:`~lossbench.experiment.sweep_jobs.run_sweep_job`). A sweep's main
process turns SIGTERM into an interrupt too (:func:`stop_sweep_on_sigterm`): where its jobs run in
other processes (``hydra/launcher=joblib``) it waits on them, and SIGTERM's default would end it
before its exit handlers end the sweep's parent run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Termination:
    """Whether SIGTERM arrived during the current :func:`terminate_as_interrupt` block (or after it)."""

    received = False


def termination_received() -> bool:
    """Whether this process was sent SIGTERM since its current (or last) tracked run opened.

    A ``kill`` of a process group reaches the DataLoader workers too, and a worker's death can reach
    the main thread as a ``RuntimeError`` before (or instead of) the KeyboardInterrupt: this flag
    says the error was a termination all the same."""
    return _Termination.received


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (``kill``, a scheduler's time limit) into KeyboardInterrupt while the block runs,
    so the run is ended KILLED instead of staying RUNNING forever, and remember it
    (:func:`termination_received`). Main thread only; elsewhere a no-op."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        _Termination.received = True
        raise KeyboardInterrupt(f"signal {signum}")

    forget_termination()
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_sweep_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in this process (main thread only), so that a
    sweep stopped by ``kill`` unwinds and its exit handlers end its parent run FAILED, naming the
    jobs that never ran, instead of leaving it RUNNING."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}: the sweep stops")

    signal.signal(signal.SIGTERM, interrupt)


def forget_termination() -> None:
    """A new job starts: no SIGTERM has reached it yet."""
    _Termination.received = False
