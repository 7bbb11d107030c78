"""Faults lose nothing: an unreachable store, a NaN loss, SIGTERM, a real MLflow server; determinism."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.experiment.ui import BASE_RUN_FILE, QRELS_FILE, RUN_FILE
from tests.helpers import (
    FAST_RUN,
    REPO,
    SMALL_SYNTHETIC,
    all_runs,
    free_port,
    nan_ranknet_at_call,
    subprocess_env,
)


def test_an_unreachable_server_fails_at_once_before_any_work(compose) -> None:
    from lossbench.experiment.tracking import TrackingError
    from pipeline.run import run

    start = time.perf_counter()
    with pytest.raises(TrackingError, match="does not answer.*fallback_uri"):
        run(compose(*FAST_RUN, f"tracking.uri=http://127.0.0.1:{free_port()}"))
    assert time.perf_counter() - start < 20


def test_the_fallback_store_takes_the_run(compose, tmp_path: Path) -> None:
    from pipeline.run import run

    fallback = f"sqlite:///{tmp_path / 'fallback.db'}"
    run(
        compose(
            *FAST_RUN,
            "eval.base=false",
            f"tracking.uri=http://127.0.0.1:{free_port()}",
            f"tracking.fallback_uri={fallback}",
        )
    )
    assert [r.info.status for r in all_runs(fallback)] == ["FINISHED"]


def test_a_nan_loss_stops_the_run_naming_the_step(compose, mlflow_uri: str, monkeypatch) -> None:
    from lossbench.training.callbacks import NonFiniteLossError
    from pipeline.run import run

    nan_ranknet_at_call(monkeypatch, 2)
    with pytest.raises(NonFiniteLossError, match=r"at step 1 \(train/loss's step\)"):
        run(compose(*FAST_RUN))
    (failed,) = all_runs(mlflow_uri)
    assert failed.info.status == "FAILED"
    assert "NonFiniteLossError" in failed.data.tags["error"]
    history = MlflowClient(mlflow_uri).get_metric_history(failed.info.run_id, "train/loss")
    # the good step before it stays logged, and the curve's next step is the one named
    assert [m.step for m in history] == [0]
    assert "test/base_ndcg_at_10" in failed.data.metrics


def test_same_config_and_seed_give_the_same_run(compose, mlflow_uri: str, tmp_path: Path) -> None:
    """Every logged metric at every step (but the stage times), every per-query value and every run
    file, byte for byte."""
    from pipeline.run import run

    overrides = [*FAST_RUN, "seed=7", "eval.val_every_n_steps=2"]
    first = run(compose(*overrides))
    second = run(compose(*overrides, "tracking.rerun=true"))
    assert first == second
    client = MlflowClient(mlflow_uri)
    runs = sorted(all_runs(mlflow_uri), key=lambda r: r.info.start_time)
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]

    def curves(run_id: str, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
        return {
            key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
            for key in keys
        }

    keys = sorted(k for k in runs[0].data.metrics if not k.startswith("time/"))
    assert keys == sorted(k for k in runs[1].data.metrics if not k.startswith("time/"))
    assert {"test/ndcg_at_10", "test/base_ndcg_at_10", "val/ndcg_at_10", "train/loss"} <= set(keys)
    assert curves(runs[0].info.run_id, keys) == curves(runs[1].info.run_id, keys)
    for name in (RUN_FILE, BASE_RUN_FILE, "per_query.csv", QRELS_FILE):
        files = [
            Path(client.download_artifacts(r.info.run_id, name, str(tmp_path / r.info.run_id)))
            for r in runs
        ]
        assert files[0].read_bytes() == files[1].read_bytes(), name


def pipeline_command(root: Path, cache: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.run",
        *FAST_RUN,
        "trainer.enable_progress_bar=false",
        f"paths.root={root}",
        f"paths.cache={cache}",
        f"hydra.run.dir={root / 'out'}",
        *SMALL_SYNTHETIC,
        *overrides,
    ]


def logged_train_loss(store: Path) -> bool:
    """Whether the sqlite store holds a ``train/loss`` value, read-only: opening it with MLflow while
    the job creates its tables would race the job's own table creation and fail it."""
    if not store.exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as connection:
            rows = connection.execute("SELECT 1 FROM metrics WHERE key = 'train/loss' LIMIT 1")
            return rows.fetchone() is not None
    except sqlite3.Error:  # no metrics table yet
        return False


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_not_running(tmp_path: Path, data_cache: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = pipeline_command(tmp_path, data_cache, "trainer.max_steps=100000", "eval.base=false")
    # stderr to a file: an unread pipe fills up (64 KiB of progress bars) and blocks the child
    errors = (tmp_path / "stderr.log").open("wb")
    process = subprocess.Popen(
        command, cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=errors
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(1)
            if logged_train_loss(Path(uri.removeprefix("sqlite:///"))):
                break
        else:
            tail = (tmp_path / "stderr.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"the run never started training; its stderr ends:\n{tail}")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
        errors.close()
    (run,) = all_runs(uri)
    assert run.info.status == "KILLED"
    assert process.returncode != 0


@pytest.mark.slow
def test_a_real_mlflow_server_over_http(tmp_path: Path, data_cache: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", str(tmp_path / "server-artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        from lossbench.experiment.tracking import TrackingError, check_server

        deadline = time.time() + 90
        while True:
            try:
                check_server(uri, timeout=2)
                break
            except TrackingError:
                if time.time() > deadline:
                    pytest.fail("mlflow server did not start")
                time.sleep(1)
        command = pipeline_command(tmp_path, data_cache, f"tracking.uri={uri}", "eval.base=false")
        subprocess.run(
            command, cwd=REPO, env=subprocess_env(), check=True, capture_output=True, timeout=300
        )
        (run,) = all_runs(uri)
        assert run.info.status == "FINISHED"
        assert "test/ndcg_at_10" in run.data.metrics
        artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)}
        assert {RUN_FILE, "per_query.csv", "config.yaml"} <= artifacts
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_parallel_joblib_jobs_share_one_store_and_none_is_lost(
    tmp_path: Path, data_cache: Path
) -> None:
    """Four jobs, two at a time in separate processes, all writing to one sqlite store, each
    tokenizing its training batches in a DataLoader worker (which must start inside loky)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    python, dash_m, module, *overrides = pipeline_command(tmp_path, data_cache, "eval.base=false")
    command = [
        python,
        dash_m,
        module,
        "-m",  # Hydra's --multirun: before the overrides
        *overrides,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "data.num_workers=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "loss=ranknet,infonce",
        "seed=0,1",
    ]
    done = subprocess.run(
        command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runs = all_runs(uri)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {(r.data.tags["loss"], r.data.tags["seed"]) for r in children} == {
        (loss, seed) for loss in ("ranknet", "infonce") for seed in ("0", "1")
    }
    assert all("test/ndcg_at_10" in r.data.metrics for r in children)
    assert len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1


@pytest.mark.slow
def test_a_killed_joblib_sweep_leaves_its_record_and_no_process(
    tmp_path: Path, data_cache: Path
) -> None:
    """SIGTERM to the sweep's process group (a time limit): the jobs running end KILLED, the parent
    run ends FAILED naming the jobs that never ran (not RUNNING), and no process of it is left."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    python, dash_m, module, *overrides = pipeline_command(
        tmp_path, data_cache, "eval.base=false", "trainer.max_steps=100000"
    )
    command = [
        *(python, dash_m, module, "-m", *overrides),
        *("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data.num_workers=1"),
        *(f"hydra.sweep.dir={tmp_path / 'sweep'}", "loss=ranknet,infonce", "seed=0,1"),
    ]
    errors = (tmp_path / "stderr.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,  # its own process group, as a scheduler's job is
    )
    try:
        deadline = time.time() + 180
        while not logged_train_loss(tmp_path / "mlflow.db"):
            if time.time() > deadline:
                tail = (tmp_path / "stderr.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"no job started training; the sweep's stderr ends:\n{tail}")
            time.sleep(1)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(1)
        else:
            pytest.fail("processes of the killed sweep are still alive 30 s after it exited")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        errors.close()
    runs = all_runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get("lossbench_role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.status == "FAILED"
    assert {r.info.status for r in children} == {"KILLED"}
    assert len(children) + int(parent.data.tags["missing_jobs"]) == 4
    assert process.returncode != 0


def sigterm_then_worker_error() -> None:
    """What ``kill`` of a process group does to a run reading batches: the main process gets SIGTERM
    and, as its DataLoader worker dies of the same signal, a RuntimeError in place of the interrupt."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises KeyboardInterrupt at once
    except KeyboardInterrupt:
        raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.") from None
    pytest.fail("SIGTERM was not turned into an interrupt")


def test_a_worker_killed_by_the_same_sigterm_ends_the_run_killed(tmp_path: Path) -> None:
    from lossbench.experiment.tracking import tracked_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(KeyboardInterrupt), tracked_run(uri, "lossbench", "killed"):
        sigterm_then_worker_error()
    (run,) = all_runs(uri)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"].startswith("interrupted (SIGTERM; DataLoader worker")


class FailingJob:
    """A sweep job that fails before its MLflow run opens, with its own error (a sweep-less test
    has no parent run, so run_sweep_job records nothing: ``primary`` is False)."""

    tracked = None
    primary = False
    uri = None

    def __init__(self, cfg: object) -> None:
        pass

    def run(self) -> float:
        raise RuntimeError("this job's own error")


class TerminatedJob(FailingJob):
    """A sweep job that a SIGTERM ends while its batches are read."""

    def run(self) -> float:
        from lossbench.experiment.termination import terminate_as_interrupt

        with terminate_as_interrupt():
            sigterm_then_worker_error()
        return 0.0


def test_a_sigterm_stops_the_sweep_instead_of_failing_one_job(compose) -> None:
    """A job whose error came with a SIGTERM is not 'one failing job': the sweep stops there; the
    next job starts afresh (its error is its own again)."""
    from lossbench.experiment.sweep_jobs import run_sweep_job

    with pytest.raises(KeyboardInterrupt, match="the sweep stops"):
        run_sweep_job(compose(), kind=TerminatedJob)
    assert math.isnan(run_sweep_job(compose(), kind=FailingJob))  # failed, and the sweep goes on
