"""Which way DataLoader workers start, so that they start inside a joblib job too.

Hydra's joblib launcher runs each job in a loky process, where the global start method is loky's
own ("loky"): a DataLoader left to the default then fails to start its workers with a pickle error
("Got pickle error when attempting to start a worker Process"), every job of the sweep fails,
and a spawned worker cannot even find the "loky" context. Where the start method is one of the
standard library's, the DataLoader keeps it (None); elsewhere its workers are forked where the
platform can fork, else spawned.
"""

from __future__ import annotations

import multiprocessing


def worker_context(num_workers: int) -> str | None:
    """The ``multiprocessing_context`` for a DataLoader with ``num_workers`` workers."""
    if num_workers == 0:
        return None
    standard = multiprocessing.get_all_start_methods()
    if multiprocessing.get_start_method(allow_none=True) in (None, *standard):
        return None
    return "fork" if "fork" in standard else "spawn"
