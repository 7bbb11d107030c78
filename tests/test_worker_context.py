"""DataLoader workers start inside a joblib job (hydra/launcher=joblib runs each job in loky)."""

from __future__ import annotations

import multiprocessing

import pytest
from joblib.externals.loky import get_reusable_executor
from torch.utils.data import DataLoader

from lossbench.data.worker_context import worker_context


def batches_with_one_worker() -> tuple[str | None, list[list[int]]]:
    """What a job's DataLoader with one worker process yields, and the context it started with."""
    context = worker_context(1)
    loader = DataLoader(
        list(range(4)), batch_size=2, num_workers=1, multiprocessing_context=context
    )
    return context, [batch.tolist() for batch in loader]


def test_workers_start_inside_a_loky_process() -> None:
    """A loky process's start method is "loky", which a DataLoader's workers cannot start with."""
    loky_process = get_reusable_executor(max_workers=1)
    assert loky_process.submit(batches_with_one_worker).result() == ("fork", [[0, 1], [2, 3]])


def test_a_standard_start_method_is_left_to_the_dataloader() -> None:
    assert multiprocessing.get_start_method(allow_none=True) in (
        None,
        *multiprocessing.get_all_start_methods(),
    )
    assert worker_context(2) is None
    assert batches_with_one_worker() == (None, [[0, 1], [2, 3]])


def test_no_workers_need_no_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "loky")
    assert worker_context(0) is None
    assert worker_context(1) == "fork"
