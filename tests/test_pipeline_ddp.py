"""``python -m pipeline.run trainer=ddp`` on 2 CPU processes, and the refusal of ``-m`` with DDP."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.experiment.ui import RUN_FILE
from tests.helpers import REPO, SMALL_SYNTHETIC, subprocess_env

BATCH_SIZE = 8


def test_a_sweep_of_ddp_jobs_stops_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.run import main

    argv = [
        "pipeline.run",
        "-m",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "model=tiny",
        "seed=0,1",
        f"paths.root={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        main()
    message = capsys.readouterr().err
    assert "-m with trainer.strategy=ddp on 2 devices does not work" in message
    assert "hydra/launcher=submitit_slurm hydra.launcher.tasks_per_node" in message
    assert not (tmp_path / "mlflow.db").exists()  # no sweep parent run, no job


@pytest.mark.slow
def test_two_process_ddp_run_logs_one_finished_mlflow_run(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pipeline.run",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.max_steps=4",
        "trainer.enable_progress_bar=false",
        "model=tiny",
        "loss=in_batch_ce",
        "loss.function.gather_across_devices=true",
        f"data.train_batch_size={BATCH_SIZE}",
        "data.num_workers=0",
        "eval.val_every_n_steps=2",
        f"paths.root={tmp_path}",
        f"paths.cache={tmp_path / 'cache'}",
        f"paths.output={tmp_path / 'output'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_root={tmp_path / 'artifacts'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        *SMALL_SYNTHETIC,
    ]
    env = {**subprocess_env(), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Starting with 2 processes" in done.stdout + done.stderr

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1  # rank 1 created no run
    (run,) = runs
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert 0.0 <= metrics["test/ndcg_at_10"] <= 1.0 and "test/base_ndcg_at_10" in metrics
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in losses) == [0, 1, 2, 3]  # logged once per step: by rank 0
    validation = client.get_metric_history(run.info.run_id, "val/ndcg_at_10")
    assert {0, 2, 4} <= {m.step for m in validation}
    # the untrained tiny model scores almost uniformly, so the first in-batch loss is about
    # log(candidates): 2 ranks x BATCH_SIZE queries x 2 docs gathered, not one rank's half
    first = min(losses, key=lambda m: m.step).value
    assert abs(first - math.log(2 * BATCH_SIZE * 2)) < abs(first - math.log(BATCH_SIZE * 2))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", RUN_FILE, "per_query.csv"} <= artifacts
    assert sorted(p.name for p in (tmp_path / "hydra").iterdir()) == [".hydra"]  # rank 0's only
