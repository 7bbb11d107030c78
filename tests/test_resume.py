"""Checkpoints every n steps, and ``resume=true``: a failed run continues into the same MLflow run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.helpers import FAST_RUN, nan_ranknet_at_call

FAST_RUN_HERE = [
    *FAST_RUN,
    "trainer.max_steps=8",
    "checkpoint.every_n_steps=2",
    "trainer.enable_progress_bar=false",
]


def only_run(uri: str, experiment: str = "lossbench"):  # noqa: ANN201
    """The one run of ``experiment`` (fails when there are several)."""
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def steps_of(uri: str, run_id: str, metric: str) -> list[int]:
    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, metric)
    return sorted(m.step for m in history)


def checkpoint_steps(run) -> list[int]:  # noqa: ANN001
    from lossbench.training.checkpoints import list_checkpoints

    return [step for step, _ in list_checkpoints(run.data.tags["checkpoint_dir"])]


def fail_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the training step raise once ``step`` optimizer steps are done."""
    from lossbench.models.module import BiEncoderModule

    real = BiEncoderModule.training_step

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN202
        if self.trainer.global_step == step:
            raise RuntimeError(f"simulated crash after step {step}")
        return real(self, batch, batch_idx)

    monkeypatch.setattr(BiEncoderModule, "training_step", training_step)


def test_checkpoints_are_written_every_n_steps_and_the_last_ones_kept(
    compose, mlflow_uri: str
) -> None:
    from pipeline.run import run

    keep = ["checkpoint.keep=2", "checkpoint.keep_finished=true"]
    run(compose(*FAST_RUN_HERE, "trainer.max_steps=6", *keep, "eval.base=false"))
    finished = only_run(mlflow_uri)
    folder = Path(finished.data.tags["checkpoint_dir"])
    assert folder.parent.name == "checkpoints" and folder.name == finished.info.run_id
    assert checkpoint_steps(finished) == [4, 6]  # step 2 was written, then dropped (keep=2)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000004.ckpt", "step-000006.ckpt"]
    saved = torch.load(folder / "step-000004.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 4
    assert saved["optimizer_states"] and saved["lr_schedulers"]
    assert finished.data.metrics["time/checkpoint_s"] > 0
    # where in the data each was: 96 triples / 16 = 6 batches, so step 6 ends the first epoch
    assert finished.data.params["data/triples"] == "96"
    last = torch.load(folder / "step-000006.ckpt", map_location="cpu", weights_only=True)
    positions = [c["callbacks"]["StepCheckpoint"]["data_position"] for c in (saved, last)]
    assert positions == [{"epoch": 0, "batches": 4}, {"epoch": 1, "batches": 0}]


def test_a_finished_run_deletes_its_checkpoints(compose, mlflow_uri: str) -> None:
    from pipeline.run import run

    run(compose(*FAST_RUN_HERE, "trainer.max_steps=2", "eval.base=false"))
    finished = only_run(mlflow_uri)
    assert finished.data.metrics["time/checkpoint_s"] > 0  # one was written at step 2
    assert not Path(finished.data.tags["checkpoint_dir"]).exists()


def test_no_checkpoints_when_every_n_steps_is_null(tmp_path: Path) -> None:
    from lossbench.training.checkpoints import checkpoint_callbacks

    class Tracked:
        run_id = "abc123"
        tags: dict[str, str] = {}

        def set_tags(self, tags: dict[str, str]) -> None:
            self.tags.update(tags)

    tracked = Tracked()
    assert checkpoint_callbacks({"every_n_steps": None}, tmp_path, tracked) == []
    assert tracked.tags == {}
    (saver,) = checkpoint_callbacks({"every_n_steps": 5, "keep": 2}, tmp_path, tracked)
    assert (saver.every_n_steps, saver.keep) == (5, 2)
    assert tracked.tags == {"checkpoint_dir": str(tmp_path.resolve() / "checkpoints" / "abc123")}
    assert not saver.folder.exists()  # made at the first save


def test_a_crashed_run_resumes_into_the_same_run_as_if_it_never_stopped(
    compose, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.run import run

    fail_at_step(monkeypatch, 5)
    with pytest.raises(RuntimeError, match="simulated crash after step 5"):
        run(compose(*FAST_RUN_HERE))
    failed = only_run(mlflow_uri)
    assert failed.info.status == "FAILED"
    assert steps_of(mlflow_uri, failed.info.run_id, "train/loss") == [0, 1, 2, 3, 4]
    assert checkpoint_steps(failed) == [4]  # the last multiple of 2 before the crash

    monkeypatch.undo()
    objective = run(compose(*FAST_RUN_HERE, "resume=true"))
    resumed = only_run(mlflow_uri)  # no second run: the same one, reopened
    run_id = resumed.info.run_id
    assert run_id == failed.info.run_id
    assert resumed.info.status == "FINISHED"
    assert steps_of(mlflow_uri, run_id, "train/loss") == list(range(8))  # each step once
    assert not Path(resumed.data.tags["checkpoint_dir"]).exists()  # FINISHED: nothing to resume
    assert resumed.data.metrics["test/ndcg_at_10"] == pytest.approx(objective)
    for logged_before in ("test/base_ndcg_at_10", "val/ndcg_at_10"):
        assert steps_of(mlflow_uri, run_id, logged_before).count(0) == 1
    tags = resumed.data.tags
    assert tags["resumed_from_step"] == "4" and tags["resumed_after"] == "FAILED"
    assert "error" not in tags and "simulated crash" in tags["error_before_resume"]
    assert resumed.data.params["resume"] == "False"  # params stay as first logged

    # the same losses, step by step, and the same result as a run that was never interrupted
    reference = ["tracking.experiment=reference"]
    assert run(compose(*FAST_RUN_HERE, *reference)) == pytest.approx(objective, abs=1e-6)
    reference_id = only_run(mlflow_uri, "reference").info.run_id
    client = MlflowClient(mlflow_uri)

    def losses(rid: str) -> list[float]:
        return [
            m.value
            for m in sorted(client.get_metric_history(rid, "train/loss"), key=lambda m: m.step)
        ]

    assert losses(run_id) == pytest.approx(losses(reference_id), abs=1e-6)


def test_resume_with_nothing_to_resume_says_what_it_looked_for(
    compose, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lossbench.experiment.resume import ResumeError
    from pipeline.run import run

    with pytest.raises(ResumeError, match=r"nothing to resume.*config_hash=.*without resume=true"):
        run(compose(*FAST_RUN_HERE, "resume=true"))
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []

    # a run that failed before its first checkpoint cannot be resumed either, and is named
    fail_at_step(monkeypatch, 1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose(*FAST_RUN_HERE, "eval.base=false"))
    monkeypatch.undo()
    failed = only_run(mlflow_uri)
    with pytest.raises(ResumeError, match=f"{failed.info.run_id} \\(FAILED, no checkpoint in"):
        run(compose(*FAST_RUN_HERE, "eval.base=false", "resume=true"))
    assert only_run(mlflow_uri).info.status == "FAILED"  # left as it was, not RUNNING

    with pytest.raises(ResumeError, match="contradict"):
        run(compose(*FAST_RUN_HERE, "eval.base=false", "resume=true", "tracking.rerun=true"))


def test_resume_of_a_finished_run_says_so_and_trains_nothing(
    compose, mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.run import run

    first = run(compose(*FAST_RUN_HERE, "trainer.max_steps=2", "eval.base=false"))
    again = run(compose(*FAST_RUN_HERE, "trainer.max_steps=2", "eval.base=false", "resume=true"))
    assert again == first
    assert "already FINISHED" in capsys.readouterr().out
    assert only_run(mlflow_uri).info.status == "FINISHED"


def test_a_nan_stop_keeps_the_last_good_checkpoint(
    compose, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lossbench.training.callbacks import NonFiniteLossError
    from pipeline.run import run

    nan_ranknet_at_call(monkeypatch, 4)
    with pytest.raises(NonFiniteLossError, match="at step 3 "):  # the 4th step: train/loss's 3
        run(compose(*FAST_RUN_HERE, "eval.base=false"))
    failed = only_run(mlflow_uri)
    assert failed.info.status == "FAILED"
    # step 4 is a multiple of 2, but its weights went NaN: step 2 stays the checkpoint
    assert checkpoint_steps(failed) == [2]
    folder = Path(failed.data.tags["checkpoint_dir"])
    saved = torch.load(folder / "step-000002.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(w).all() for w in saved["state_dict"].values())


def test_resume_and_checkpoint_settings_leave_the_config_hash_alone(compose) -> None:
    from lossbench.experiment.identity import config_hash

    plain = config_hash(compose(*FAST_RUN_HERE))
    assert plain == config_hash(
        compose(*FAST_RUN_HERE, "resume=true", "checkpoint.every_n_steps=5")
    )
    assert plain != config_hash(compose(*FAST_RUN_HERE, "trainer.max_steps=9"))


def test_a_checkpoint_with_nan_weights_is_not_written(tmp_path: Path) -> None:
    from lossbench.training.checkpoints import StepCheckpoint

    class NoTrainer:
        def save_checkpoint(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing may be saved")

    module = torch.nn.Linear(2, 2)
    with torch.no_grad():
        module.weight[0, 0] = float("nan")
    saver = StepCheckpoint(tmp_path, every_n_steps=1)
    assert saver.save(NoTrainer(), module, step=3) is None  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_worker_skips_follow_the_round_robin_of_batches() -> None:
    from lossbench.training.checkpoints import worker_skips

    assert worker_skips(5, batch_size=4, num_workers=0) == [20]
    assert worker_skips(5, batch_size=4, num_workers=2) == [12, 8]  # batches 0,2,4 and 1,3
    assert worker_skips(1, batch_size=3, num_workers=3) == [3, 0, 0]


def test_a_tuple_dataset_skips_ahead_once(compose) -> None:
    from hydra.utils import instantiate

    from lossbench.data import TupleDataset

    collection = instantiate(compose().dataset.collection)
    dataset = TupleDataset(collection, seed=3)
    full = [s.query_id for s in dataset]
    dataset.set_epoch(0)
    dataset.skip_next_pass([5])
    assert [s.query_id for s in dataset] == full[5:]
    assert len(list(dataset)) == len(full)  # only the next pass skips


@pytest.mark.parametrize(
    ("override", "message"),
    [("checkpoint.every_n_steps=0", "every_n_steps=0"), ("checkpoint.keep=0", "keep=0")],
)
def test_bad_checkpoint_settings_fail_before_any_run(
    compose, mlflow_uri: str, override: str, message: str
) -> None:
    from pipeline.run import run

    with pytest.raises(ValueError, match=message):
        run(compose(*FAST_RUN_HERE, override))
    assert not Path(mlflow_uri.removeprefix("sqlite:///")).exists()


def test_resume_leaves_the_sweep_hash_alone() -> None:
    from omegaconf import OmegaConf

    from lossbench.experiment.sweeps import sweep_hash

    def sweep(*overrides: str):  # noqa: ANN202
        return OmegaConf.create({"hydra": {"overrides": {"task": list(overrides)}, "sweeper": {}}})

    plain = sweep_hash(sweep("loss=ranknet,listnet", "seed=0,1"))
    assert plain == sweep_hash(sweep("loss=ranknet,listnet", "seed=0,1", "resume=true"))
    assert plain != sweep_hash(sweep("loss=ranknet,listnet", "seed=0,1,2"))
