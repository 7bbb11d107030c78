"""A 3-loss x 2-seed sweep on the tiny model: parent/child runs, a failing job, resuming, the comparison."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from lossbench.experiment.sweeps import exit_status
from tests.helpers import SMALL_SYNTHETIC

LOSSES = ("ranknet", "in_batch_ce", "approx_ndcg")


def sweep(root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    """Run ``python -m pipeline.run -m ...`` in this process (so a test can make one loss fail)."""
    loss_and_seed = (f"loss={','.join(LOSSES)}", "seed=0,1")
    multirun(root, cache, monkeypatch, *loss_and_seed, *extra, max_steps=2, val_every="1")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, data_cache: Path):
    from lossbench.loss import ApproxNDCG

    root = tmp_path_factory.mktemp("sweep")
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    with pytest.MonkeyPatch.context() as patch:

        def broken(self, scores, targets, mask=None):  # noqa: ANN001, ANN202
            raise RuntimeError("approx_ndcg made to fail")

        patch.setattr(ApproxNDCG, "__call__", broken)
        sweep(root, data_cache, patch)
    first = {
        r.info.run_id: r
        for r in client.search_runs([client.get_experiment_by_name("lossbench").experiment_id])
    }
    first_exit = exit_status()
    with pytest.MonkeyPatch.context() as patch:
        sweep(root, data_cache, patch)  # the same command again: resumes
    return root, client, first, (first_exit, exit_status())


def runs_by_role(client: MlflowClient) -> tuple[list, list]:
    experiment = client.get_experiment_by_name("lossbench")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("lossbench_role") == "sweep"]
    children = [
        r
        for r in runs
        if "mlflow.parentRunId" in r.data.tags and r.data.tags.get("lossbench_role") is None
    ]
    return parents, children


def test_one_parent_run_with_a_child_per_job(swept) -> None:
    _, client, first, _ = swept
    first_parents = [r for r in first.values() if r.data.tags.get("lossbench_role") == "sweep"]
    assert len(first_parents) == 1
    first_children = [r for r in first.values() if "mlflow.parentRunId" in r.data.tags]
    assert len(first_children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in first_children} == {
        first_parents[0].info.run_id
    }
    assert {(r.data.tags["loss"], r.data.tags["seed"]) for r in first_children} == {
        (loss, seed) for loss in LOSSES for seed in ("0", "1")
    }


def test_a_failing_job_is_failed_with_its_error_and_the_others_finish(swept) -> None:
    _, _, first, _ = swept
    children = [r for r in first.values() if "mlflow.parentRunId" in r.data.tags]
    failed = [r for r in children if r.info.status == "FAILED"]
    assert {r.data.tags["loss"] for r in failed} == {"approx_ndcg"} and len(failed) == 2
    assert all("made to fail" in r.data.tags["error"] for r in failed)
    assert all(
        r.info.status == "FINISHED" for r in children if r.data.tags["loss"] != "approx_ndcg"
    )


def test_a_sweep_with_a_failed_job_ends_failed_and_exits_non_zero(swept) -> None:
    _, _, first, (first_exit, second_exit) = swept
    (parent,) = [r for r in first.values() if r.data.tags.get("lossbench_role") == "sweep"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["failed_jobs"] == "2" and parent.data.tags["missing_jobs"] == "0"
    assert parent.data.tags["jobs"] == "6"
    assert first_exit == 1
    assert second_exit == 0  # the rerun finished the two failed jobs


def test_rerunning_the_sweep_skips_finished_jobs_and_resumes_under_the_same_parent(swept) -> None:
    _, client, first, _ = swept
    parents, children = runs_by_role(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # every job finished now
    new = [r for r in children if r.info.run_id not in first]
    assert sorted(r.data.tags["loss"] for r in new) == [
        "approx_ndcg",
        "approx_ndcg",
    ]  # only the failed ones
    assert all(r.info.status == "FINISHED" for r in new)
    tags = parents[0].data.tags
    assert tags["failed_jobs"] == "0"
    assert tags["failed_runs"] == "2"  # the two failures of the first attempt stay on record


def test_the_comparison_report_matches_ranx_on_the_logged_run_files(swept, tmp_path: Path) -> None:
    from ranx import Qrels, Run, evaluate

    from lossbench.data.sources.formats import read_qrels, read_trec_run
    from lossbench.experiment.comparison import run_comparison
    from lossbench.experiment.ui import QRELS_FILE, RUN_FILE

    _, client, _, _ = swept
    (parent,) = runs_by_role(client)[0]
    comparison, files, parent_id, _ = run_comparison(
        client,
        parent.info.run_id,
        ["ndcg@10", "recall@100"],
        tmp_path / "report",
        baseline="ranknet",
    )
    assert parent_id == parent.info.run_id
    assert set(comparison.means) == set(LOSSES) and comparison.seeds == [0, 1]
    assert {p.name for p in files} >= {
        "report.md",
        "report.html",
        "metrics.png",
        "val_ndcg.png",
        "train_loss.png",
    }
    _, children = runs_by_role(client)
    for loss in LOSSES:
        values = []
        for run in [
            r for r in children if r.data.tags["loss"] == loss and r.info.status == "FINISHED"
        ]:
            folder = tmp_path / run.info.run_id
            folder.mkdir()
            run_file = read_trec_run(
                Path(client.download_artifacts(run.info.run_id, RUN_FILE, str(folder)))
            )
            qrels = read_qrels(
                Path(client.download_artifacts(run.info.run_id, QRELS_FILE, str(folder)))
            )
            values.append(evaluate(Qrels(qrels), Run(run_file), "ndcg@10", make_comparable=True))
        assert len(values) == 2
        assert comparison.means[loss]["ndcg@10"] == pytest.approx(sum(values) / 2, abs=1e-6)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "ranknet (baseline)" in report and "W/T/L" in report


def small_sweep(root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> None:
    """``python -m pipeline.run -m <overrides>`` of two tiny 1-step jobs, in this process."""
    multirun(root, cache, monkeypatch, *overrides, max_steps=1, val_every="null")


def multirun(
    root: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    *overrides: str,
    max_steps: int,
    val_every: str,
) -> None:
    """``python -m pipeline.run -m <overrides>`` on the small synthetic collection with the tiny
    model, stores under ``root`` and ``cache``, in this process."""
    from pipeline.run import main

    argv = [
        "pipeline.run",
        "-m",
        "model=tiny",
        f"trainer.max_steps={max_steps}",
        "trainer.enable_progress_bar=false",
        "eval.base=false",
        f"eval.val_every_n_steps={val_every}",
        "data.num_workers=0",
        f"paths.root={root}",
        f"paths.cache={cache}",
        f"hydra.sweep.dir={root / 'multirun'}",
        *SMALL_SYNTHETIC,
        *overrides,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    main()


def sweep_runs(root: Path) -> tuple[object, list]:
    from tests.helpers import all_runs

    runs = all_runs(f"sqlite:///{root / 'mlflow.db'}")
    (parent,) = [r for r in runs if r.data.tags.get("lossbench_role") == "sweep"]
    return parent, [r for r in runs if r is not parent]


@pytest.fixture(scope="module")
def check_failures(tmp_path_factory: pytest.TempPathFactory, data_cache: Path):
    """A 2-seed sweep whose precision@3 jobs fail their checks (precision@3 is not among
    eval.metrics), before their runs would open: 2 jobs finish, 2 fail."""
    root = tmp_path_factory.mktemp("check-failures")
    with pytest.MonkeyPatch.context() as patch:
        small_sweep(root, data_cache, patch, "eval.objective=ndcg@10,precision@3", "seed=0,1")
    return root, exit_status()


@pytest.fixture
def failed_sweep(check_failures: tuple[Path, int]) -> tuple[MlflowClient, Any, list]:
    """That sweep's store (a client), parent run and job runs."""
    root, _ = check_failures
    parent, children = sweep_runs(root)
    return MlflowClient(f"sqlite:///{root / 'mlflow.db'}"), parent, children


def test_a_job_failing_its_checks_is_a_failed_child_named_after_its_overrides(
    check_failures,
) -> None:
    root, status = check_failures
    assert status == 1
    parent, children = sweep_runs(root)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["failed_jobs"] == "2" and parent.data.tags["missing_jobs"] == "0"
    failed = [r for r in children if "precision@3" in r.data.tags["sweep_job"]]
    assert {r.info.status for r in children if r not in failed} == {"FINISHED"}
    assert {r.info.status for r in failed} == {"FAILED"} and len(failed) == 2
    for run in failed:
        assert run.info.run_name == run.data.tags["sweep_job"]
        assert "eval.objective=precision@3" in run.info.run_name
        assert "eval.objective='precision@3' is not computed" in run.data.tags["error"]
        assert run.data.tags["loss"] == "ranknet"
    assert {r.data.tags["seed"] for r in failed} == {"0", "1"}
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert "error.txt" in {a.path for a in client.list_artifacts(failed[0].info.run_id)}


def test_the_comparison_lists_the_failed_jobs_and_the_code_version(
    failed_sweep, tmp_path: Path
) -> None:
    from lossbench.experiment.comparison import run_comparison
    from lossbench.experiment.identity import code_version

    client, parent, _ = failed_sweep
    comparison, *_ = run_comparison(client, parent.info.run_id, ["ndcg@10"], tmp_path / "r")
    assert list(comparison.code_versions) == [code_version()]
    assert comparison.code_versions[code_version()].startswith("2 runs, git ")
    assert len(comparison.failed_jobs) == 2 and comparison.missing_jobs == []
    report = (tmp_path / "r" / "report.md").read_text()
    assert "Failed jobs:" in report and "eval.objective=precision@3" in report
    assert f"Code versions:\n- {code_version()}: 2 runs" in report


def test_the_comparison_refuses_runs_of_different_code_unless_told(
    failed_sweep, tmp_path: Path
) -> None:
    from lossbench.experiment.comparison import run_comparison
    from lossbench.experiment.pooling import MixedCodeError

    client, parent, children = failed_sweep
    finished = [r for r in children if r.info.status == "FINISHED"]
    original = finished[1].data.tags["code_version"]
    client.set_tag(finished[1].info.run_id, "code_version", "0123456789abcdef")
    try:
        with pytest.raises(
            MixedCodeError, match=r"ranknet: 0123456789abcdef \(1 run, git .*allow_mixed_code=true"
        ):
            run_comparison(client, parent.info.run_id, ["ndcg@10"], tmp_path / "refused")
        comparison, *_ = run_comparison(
            client, parent.info.run_id, ["ndcg@10"], tmp_path / "mixed", allow_mixed_code=True
        )
    finally:
        client.set_tag(finished[1].info.run_id, "code_version", original)
    assert set(comparison.code_versions) == {original, "0123456789abcdef"}
    assert comparison.seeds == [0, 1]  # both runs pooled into the one system


def test_a_job_that_does_not_compose_stops_the_sweep_before_any_job_runs_on_record(
    tmp_path: Path, data_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hydra composes every job before it launches one: a bad value stops the whole sweep. It is
    on record: a FAILED child for that job, the parent FAILED, the job that never ran listed."""
    with pytest.raises(SystemExit) as stopped:
        small_sweep(tmp_path, data_cache, monkeypatch, "data.train_batch_size=16,abc")
    assert stopped.value.code == 1
    parent, children = sweep_runs(tmp_path)
    assert parent.info.status == "FAILED"
    assert "1 of 2 jobs do not compose" in parent.data.tags["error"]
    assert parent.data.tags["failed_jobs"] == "1" and parent.data.tags["missing_jobs"] == "1"
    (failed,) = children
    assert failed.info.status == "FAILED"
    assert failed.data.tags["sweep_job"].endswith("data.train_batch_size=abc")
    assert "data.train_batch_size" in failed.data.tags["error"]


@pytest.mark.slow  # a subprocess that imports everything and runs a tiny job: ~1 min
def test_the_command_exits_non_zero_after_running_the_other_jobs(tmp_path: Path) -> None:
    from tests.helpers import cli

    result = cli(
        "eval.objective=precision@3,ndcg@10",
        "model=tiny",
        "trainer.max_steps=1",
        "eval.base=false",
        "data.num_workers=0",
        *SMALL_SYNTHETIC,
        root=tmp_path,
        multirun=True,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    parent, children = sweep_runs(tmp_path)
    assert parent.info.status == "FAILED"
    assert sorted(r.info.status for r in children) == ["FAILED", "FINISHED"]
    assert "1 FAILED: " in result.stdout
