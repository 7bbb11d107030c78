"""A 3-loss x 2-seed sweep on the tiny model: parent/child runs, a failing job, resuming, the comparison."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import SMALL_SYNTHETIC

LOSSES = ("ranknet", "in_batch_ce", "approx_ndcg")


def sweep(root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    """Run ``python -m pipeline.run -m ...`` in this process (so a test can make one loss fail)."""
    from pipeline.run import main

    argv = [
        "pipeline.run",
        "-m",
        f"loss={','.join(LOSSES)}",
        "seed=0,1",
        "model=tiny",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        "eval.base=false",
        "eval.val_every_n_steps=1",
        "data.num_workers=0",
        f"paths.root={root}",
        f"paths.cache={cache}",
        f"hydra.sweep.dir={root / 'multirun'}",
        *SMALL_SYNTHETIC,
        *extra,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    main()


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
    with pytest.MonkeyPatch.context() as patch:
        sweep(root, data_cache, patch)  # the same command again: resumes
    return root, client, first


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
    _, client, first = swept
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
    _, _, first = swept
    children = [r for r in first.values() if "mlflow.parentRunId" in r.data.tags]
    failed = [r for r in children if r.info.status == "FAILED"]
    assert {r.data.tags["loss"] for r in failed} == {"approx_ndcg"} and len(failed) == 2
    assert all("made to fail" in r.data.tags["error"] for r in failed)
    assert all(
        r.info.status == "FINISHED" for r in children if r.data.tags["loss"] != "approx_ndcg"
    )


def test_rerunning_the_sweep_skips_finished_jobs_and_resumes_under_the_same_parent(swept) -> None:
    _, client, first = swept
    parents, children = runs_by_role(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    new = [r for r in children if r.info.run_id not in first]
    assert sorted(r.data.tags["loss"] for r in new) == [
        "approx_ndcg",
        "approx_ndcg",
    ]  # only the failed ones
    assert all(r.info.status == "FINISHED" for r in new)
    assert (
        parents[0].data.tags["failed_jobs"] == "2"
    )  # the two failures of the first attempt stay on record


def test_the_comparison_report_matches_ranx_on_the_logged_run_files(swept, tmp_path: Path) -> None:
    from ranx import Qrels, Run, evaluate

    from lossbench.data.sources.formats import read_qrels, read_trec_run
    from lossbench.experiment.comparison import run_comparison
    from lossbench.experiment.ui import QRELS_FILE, RUN_FILE

    _, client, _ = swept
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
