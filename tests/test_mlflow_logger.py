"""The per-step MLflow logger loses nothing: buffered steps survive a failed write, each value keeps
the time it was logged, and a logging failure never hides the training error."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from lossbench.experiment.mlflow_logger import MetricsNotWrittenError, MlflowRunLogger


class FlakyStore:
    """Wraps an MLflow client: ``log_batch`` with metrics fails while ``failing`` is set."""

    def __init__(self, client) -> None:  # noqa: ANN001
        self.client = client
        self.failing = False
        self.calls = 0

    def log_batch(self, run_id: str, metrics=(), **kwargs) -> None:  # noqa: ANN001
        self.calls += 1
        if self.failing and metrics:
            raise ConnectionError("the store is unreachable")
        self.client.log_batch(run_id, metrics=metrics, **kwargs)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.client, name)


@pytest.fixture
def tracked(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    from lossbench.experiment.tracking import TrackedRun

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("logger")
    run = client.create_run(experiment)
    return TrackedRun(FlakyStore(client), run.info.run_id, experiment, uri)


def history(tracked, key: str = "train/loss") -> list:  # noqa: ANN001
    return sorted(tracked.client.get_metric_history(tracked.run_id, key), key=lambda m: m.step)


def test_steps_are_buffered_and_written_in_one_batch_and_at_the_end(tracked) -> None:  # noqa: ANN001
    logger = MlflowRunLogger(tracked, flush_every_steps=3, flush_every_s=3600)
    for step in range(4):
        logger.log_metrics({"train/loss": float(step), "epoch": 0.0}, step)
    assert [m.step for m in history(tracked)] == [0, 1, 2]  # one write for three steps
    assert history(tracked, "epoch") == []  # Lightning's epoch counter is not a metric
    logger.finalize("failed")  # an error or Ctrl-C: what is buffered is still written
    assert [m.step for m in history(tracked)] == [0, 1, 2, 3]


def test_a_failed_write_keeps_its_steps_for_the_next_flush(tracked, caplog) -> None:  # noqa: ANN001
    logger = MlflowRunLogger(tracked, flush_every_steps=2, flush_every_s=3600)
    tracked.client.failing = True
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        for step in range(3):
            logger.log_metrics({"train/loss": float(step)}, step)
    assert history(tracked) == [] and logger.pending_steps == 3
    assert "could not write 3 metric values (3 steps) to MLflow, kept" in caplog.text
    tracked.client.failing = False
    logger.log_metrics({"train/loss": 3.0}, 3)  # the next flush writes them all, once
    assert [(m.step, m.value) for m in history(tracked)] == [(s, float(s)) for s in range(4)]
    assert logger.pending_steps == 0


def test_every_value_keeps_the_time_it_was_logged(tracked) -> None:  # noqa: ANN001
    logger = MlflowRunLogger(tracked, flush_every_steps=100, flush_every_s=3600)
    windows = []
    for step in range(3):
        before = int(time.time() * 1000)
        logger.log_metrics({"train/loss": float(step)}, step)
        windows.append((before, int(time.time() * 1000)))
        time.sleep(0.05)
    time.sleep(0.3)
    logger.finalize("success")
    for metric, (before, after) in zip(history(tracked), windows, strict=True):
        assert before <= metric.timestamp <= after


def test_a_store_that_stays_down_fails_the_run_saying_how_many_steps_were_lost(tracked) -> None:  # noqa: ANN001
    logger = MlflowRunLogger(tracked, flush_every_steps=100, retries=2, retry_after_s=0.01)
    for step in range(3):
        logger.log_metrics({"train/loss": float(step), "train/lr": 0.1}, step)
    tracked.client.failing = True
    calls = tracked.client.calls
    with pytest.raises(
        MetricsNotWrittenError,
        match=r"^3 steps of training metrics \(6 values\) could not be written to MLflow after 3 tries: ConnectionError",
    ):
        logger.finalize("success")
    assert tracked.client.calls - calls == 3  # retried at the end


def test_the_training_error_stays_the_one_reported(tracked, caplog) -> None:  # noqa: ANN001
    """Lightning calls finalize('failed') while it handles a training error: a write failing then is
    logged, never raised in place of that error."""
    import lightning as L
    import torch

    class Broken(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
            self.log("train/loss", self.layer(batch[0]).sum())
            if batch_idx == 2:
                tracked.client.failing = True
                raise RuntimeError("the training error")
            return self.layer(batch[0]).sum()

        def configure_optimizers(self):  # noqa: ANN201
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.ones(8, 2)), batch_size=1
    )
    logger = MlflowRunLogger(tracked, flush_every_steps=100, retry_after_s=0.01)
    trainer = L.Trainer(
        max_steps=5, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    with (
        caplog.at_level(logging.ERROR, logger="lossbench"),
        pytest.raises(RuntimeError, match="^the training error$"),
    ):
        trainer.fit(Broken(), data)
    assert "2 steps of training metrics" in caplog.text and "its error follows" in caplog.text
