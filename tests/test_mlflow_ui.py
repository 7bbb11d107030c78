"""What the MLflow UI shows: short run names, constants as params and a dataset input, descriptions,
source tags, the per-query table, and the comparison run nested under its sweep with its results as
params and metrics; ``pipeline.compare`` adds nothing else to the store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tests.helpers import SMALL_SYNTHETIC, all_runs, compare_config

LOSSES = ("ranknet", "in_batch_ce")
SWEEP = [f"loss={','.join(LOSSES)}", "seed=0,1"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, data_cache: Path):
    """A 2-loss x 2-seed sweep on the tiny model (``python -m pipeline.run -m`` in this process)."""
    from pipeline.run import main

    root = tmp_path_factory.mktemp("ui")
    argv = [
        "pipeline.run",
        "-m",
        *SWEEP,
        "model=tiny",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        "data.num_workers=0",
        f"paths.root={root}",
        f"paths.cache={data_cache}",
        f"hydra.sweep.dir={root / 'multirun'}",
        *SMALL_SYNTHETIC,
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        main()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    runs = all_runs(uri)
    parent = next(r for r in runs if r.data.tags.get("lossbench_role") == "sweep")
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return root, uri, MlflowClient(tracking_uri=uri), parent, jobs


# ---- names ----------------------------------------------------------------------------------------
def test_jobs_are_named_by_loss_and_seed_and_the_parent_by_what_it_sweeps(swept) -> None:
    root, _, _, parent, jobs = swept
    assert sorted(r.info.run_name for r in jobs) == sorted(
        f"{loss} · seed {seed}" for loss in LOSSES for seed in (0, 1)
    )
    assert parent.info.run_name == "loss ranknet, in_batch_ce × seed 0, 1"
    description = parent.data.tags["mlflow.note.content"]
    assert f"pipeline.compare sweep={parent.info.run_id}" in description
    assert "trainer.max_steps=2" in description  # constant: in the description, not the names
    for run in [parent, *jobs]:
        assert str(root) not in run.info.run_name and "tracking" not in run.info.run_name


def test_a_job_name_shows_only_what_its_sweep_varies() -> None:
    from lossbench.experiment.jobs import shown_overrides, sweep_name, swept_values

    overrides = [
        "loss=ranknet,infonce",
        "seed=0,1",
        "trainer.max_steps=40",
        "schedule.lr=range(1,3)",
        "tracking.uri=sqlite:////tmp/x.db",
        "paths.root=/tmp/x",
        "hydra/launcher=joblib",
    ]
    assert swept_values(overrides, {"loss.function.temperature": "interval(0.01, 1)"}) == {
        "loss.function.temperature": "interval(0.01, 1)",
        "loss": "ranknet,infonce",
        "seed": "0,1",
        "schedule.lr": "range(1,3)",
    }
    assert shown_overrides(overrides) == overrides[:4]
    config = OmegaConf.create({"hydra": {"overrides": {"task": overrides}, "sweeper": {}}})
    assert sweep_name(config) == "loss ranknet, infonce × seed 0, 1 × schedule.lr range(1, 3)"
    unswept = OmegaConf.create(
        {"hydra": {"overrides": {"task": [overrides[2], *overrides[4:]]}, "sweeper": {}}}
    )
    assert sweep_name(unswept) == "sweep trainer.max_steps=40"
    fixed = OmegaConf.create(  # the preset's params vary seed; the command line fixes it
        {"hydra": {"overrides": {"task": ["seed=0"]}, "sweeper": {"params": {"seed": "0,1,2"}}}}
    )
    assert swept_values(["seed=0"], {"seed": "0,1,2", "loss": "a,b"}) == {"loss": "a,b"}
    assert sweep_name(fixed) == "sweep seed=0"


def test_a_single_run_is_named_by_loss_and_seed(compose) -> None:
    from lossbench.experiment.jobs import job_name

    assert job_name(compose("loss=infonce", "seed=3")) == "infonce · seed 3"
    assert job_name(compose("tracking.run_name=mine")) == "mine"


# ---- params, metrics, dataset, description, source ------------------------------------------------
def test_constants_are_params_and_metrics_are_what_changes(swept) -> None:
    _, _, _, _, jobs = swept
    for run in jobs:
        params, metrics = run.data.params, run.data.metrics
        assert params["loss"] == run.data.tags["loss"]
        assert params["data/docs"] == "150" and params["data/test_queries"] == "16"
        assert params["index/docs"] == "150" and params["index/dim"] == "32"
        assert not [m for m in metrics if m.startswith(("data/", "index/"))]
        assert {m.split("/")[0] for m in metrics} <= {"test", "val", "train", "time"}
    values = {m: {r.data.metrics[m] for r in jobs} for m in jobs[0].data.metrics}
    assert len(values["test/ndcg_at_10"] | values["train/loss"]) > 1  # they differ between runs


def test_the_test_queries_are_the_runs_dataset_input(swept) -> None:
    import json

    _, _, _, _, jobs = swept
    digests = set()
    for run in jobs:
        (logged,) = run.inputs.dataset_inputs
        assert logged.dataset.name == "synthetic test"
        assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "evaluation"
        assert json.loads(logged.dataset.profile)["num_rows"] == 16
        digests.add(logged.dataset.digest)
    assert len(digests) == 1  # the same queries: one digest


def test_runs_describe_themselves_and_fill_the_source_columns(swept) -> None:
    from lossbench.experiment.tracking import git_commit
    from tests.helpers import REPO

    _, _, client, _, jobs = swept
    for run in jobs:
        tags = run.data.tags
        description = tags["mlflow.note.content"]
        assert f"**{tags['loss']}**" in description and "on **synthetic**" in description
        assert f"| ndcg@10 | {run.data.metrics['test/ndcg_at_10']:.4f} | " in description
        assert "untrained" in description
        assert tags["mlflow.source.name"] == "python -m pipeline.run"
        commit = git_commit(REPO)
        if commit != "unknown":
            assert tags["mlflow.source.git.commit"] == commit.removesuffix("-dirty")
    experiment = client.get_experiment(jobs[0].info.experiment_id)
    assert "Group by" in experiment.tags["mlflow.note.content"]
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


# ---- the per-query table and the run files --------------------------------------------------------
def test_per_query_results_are_an_mlflow_table(swept, tmp_path: Path) -> None:
    import pandas

    from lossbench.experiment.ui import QRELS_FILE, RUN_FILE

    _, _, client, _, jobs = swept
    run = jobs[0]
    assert '"path": "per_query.json", "type": "table"' in run.data.tags["mlflow.loggedArtifacts"]
    # the file MLflow's Evaluation view reads (client.load_table would ask the global tracking URI)
    local = client.download_artifacts(run.info.run_id, "per_query.json", str(tmp_path))
    table = pandas.read_json(local, orient="split")
    assert len(table) == 16 and {"query_id", "query", "ndcg@10"} <= set(table.columns)
    assert table["query"].str.len().min() > 0
    assert table["ndcg@10"].mean() == pytest.approx(run.data.metrics["test/ndcg_at_10"], abs=1e-6)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {RUN_FILE, QRELS_FILE, "per_query.csv", "config.yaml"} <= artifacts
    assert all(name.endswith((".txt", ".csv", ".json", ".yaml")) for name in artifacts)


# ---- the comparison run ---------------------------------------------------------------------------
def test_the_comparison_run_is_nested_under_its_sweep_with_its_results(
    swept, tmp_path: Path
) -> None:
    from pipeline.compare import compare

    _, uri, client, parent, jobs = swept
    sweep_id = parent.info.run_id
    compare(compare_config(f"sweep={sweep_id}", f"tracking.uri={uri}", f"output={tmp_path}"))
    (run,) = [
        r
        for r in all_runs(uri)
        if r.data.tags.get("lossbench_role") == "comparison"
        and r.data.tags.get("compared") == sweep_id
    ]
    assert run.data.tags["mlflow.parentRunId"] == sweep_id
    assert run.info.run_name == "compare in_batch_ce vs ranknet · seeds 0, 1"
    params, metrics = run.data.params, run.data.metrics
    assert params["baseline"] == "ranknet" and params["stat_test"] == "student"
    assert params["seeds"] == "0, 1" and params["correction"] == "holm"
    for loss in LOSSES:
        logged = [r.data.metrics["test/ndcg_at_10"] for r in jobs if r.data.tags["loss"] == loss]
        assert metrics[f"mean/{loss}/ndcg_at_10"] == pytest.approx(sum(logged) / 2, abs=1e-4)
    assert metrics["diff_vs_baseline/in_batch_ce/ndcg_at_10"] == pytest.approx(
        metrics["mean/in_batch_ce/ndcg_at_10"] - metrics["mean/ranknet/ndcg_at_10"]
    )
    assert 0.0 <= metrics["p_value/in_batch_ce/ndcg_at_10"] <= 1.0
    assert "p_value/ranknet/ndcg_at_10" not in metrics  # the baseline is not tested against itself
    assert "ranknet (baseline)" in run.data.tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "report.md", "metrics.png", "train_loss.png"} <= artifacts


def test_compare_by_experiment_nests_under_the_sweep_its_runs_share_and_adds_no_experiment(
    swept, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pipeline.compare`` with its default store (``./mlflow.db`` of the current folder) creates
    no experiment and no artifact folder there."""
    from pipeline.compare import compare

    root, uri, client, parent, _ = swept
    before = sorted(e.name for e in client.search_experiments())
    folders = sorted(p.name for p in root.iterdir())
    monkeypatch.chdir(root)
    compare(compare_config("sweep=lossbench", f"output={tmp_path}"))  # the default tracking.uri
    assert sorted(e.name for e in client.search_experiments()) == before
    # nothing but the cache of the BM25 reference row (paths.cache: <root>/.cache/bm25_reference)
    assert sorted({p.name for p in root.iterdir()} - {".cache"}) == sorted(
        set(folders) - {".cache"}
    )
    assert [p.name for p in (root / ".cache").iterdir()] == ["bm25_reference"]
    (run,) = [r for r in all_runs(uri) if r.data.tags.get("compared") == "lossbench"]
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id


# ---- make ui --------------------------------------------------------------------------------------
def test_the_ui_link_opens_the_runs_table_in_the_model_training_view(swept, capsys) -> None:
    from lossbench.experiment.ui import main

    _, uri, client, _, jobs = swept
    main(["--uri", uri, "--url", "http://127.0.0.1:5000"])
    experiment_id = jobs[0].info.experiment_id
    expected = (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    )
    assert expected in capsys.readouterr().out
    main(["--uri", f"sqlite:///{Path(uri.removeprefix('sqlite:///')).parent / 'absent.db'}"])
    assert "/#/experiments?workflowType=machine_learning" in capsys.readouterr().out
    assert not (Path(uri.removeprefix("sqlite:///")).parent / "absent.db").exists()
