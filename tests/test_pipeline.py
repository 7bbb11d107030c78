"""One end-to-end run on the tiny model: what it logs to MLflow matches its run file evaluated with ranx."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.data.sources.formats import read_trec_run
from lossbench.experiment.ui import QRELS_FILE, RUN_FILE
from tests.helpers import FAST_RUN, compose_config

FAST_RUN_HERE = [*FAST_RUN, "trainer.max_steps=4", "eval.val_every_n_steps=2"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, data_cache: Path):
    """One run shared by the tests of this module (a run costs seconds, not milliseconds)."""
    from pipeline.run import run

    root = tmp_path_factory.mktemp("run")
    cfg = compose_config(root, data_cache, *FAST_RUN_HERE)
    objective = run(cfg)
    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    (experiment,) = [e for e in client.search_experiments() if e.name == cfg.tracking.experiment]
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    return cfg, objective, client, mlflow_run, root / "output"


def test_run_finishes_and_logs_test_metrics(finished_run) -> None:
    cfg, objective, _, mlflow_run, _ = finished_run
    assert mlflow_run.info.status == "FINISHED"
    metrics = mlflow_run.data.metrics
    for name in ("ndcg_at_10", "mrr_at_10", "recall_at_100", "map_at_100"):
        assert 0.0 <= metrics[f"test/{name}"] <= 1.0
        assert f"test/base_{name}" in metrics
    assert metrics["test/ndcg_at_10"] == pytest.approx(objective)
    assert "train/loss" in metrics and "val/ndcg_at_10" in metrics


def test_curves_are_logged_per_step(finished_run) -> None:
    _, _, client, mlflow_run, _ = finished_run
    losses = client.get_metric_history(mlflow_run.info.run_id, "train/loss")
    assert sorted(m.step for m in losses) == [0, 1, 2, 3]
    validation = client.get_metric_history(mlflow_run.info.run_id, "val/ndcg_at_10")
    assert sorted(m.step for m in validation) == [0, 2, 4]  # step 0: the untrained model


def test_params_tags_and_artifacts(finished_run) -> None:
    cfg, _, client, mlflow_run, _ = finished_run
    params, tags = mlflow_run.data.params, mlflow_run.data.tags
    assert params["loss.function._target_"] == "lossbench.loss.RankNet"
    assert params["trainer.max_steps"] == "4"
    assert params["seed"] == "0"
    for key, value in {
        "loss": "ranknet",
        "model": "tiny",
        "dataset": "synthetic",
        "seed": "0",
    }.items():
        assert tags[key] == value
    assert tags["schedule"] == cfg.schedule.name
    assert tags["git_commit"]
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
    assert {"config.yaml", RUN_FILE, QRELS_FILE, "per_query.csv"} <= artifacts


def test_logged_metrics_match_the_run_file_evaluated_with_ranx(
    finished_run, tmp_path: Path
) -> None:
    from ranx import Qrels, Run, evaluate

    from lossbench.data import synthetic_collection

    cfg, _, client, mlflow_run, _ = finished_run
    local = Path(client.download_artifacts(mlflow_run.info.run_id, RUN_FILE, str(tmp_path)))
    run_from_file = read_trec_run(local)
    collection = synthetic_collection(
        **{k: v for k, v in cfg.dataset.collection.items() if k != "_target_"}
    )
    qrels = collection.qrels["test"]
    assert set(run_from_file) == set(qrels)
    assert all(len(docs) == cfg.eval.k for docs in run_from_file.values())
    expected = evaluate(
        Qrels(qrels), Run(run_from_file), ["ndcg@10", "recall@100"], make_comparable=True
    )
    metrics = mlflow_run.data.metrics
    assert metrics["test/ndcg_at_10"] == pytest.approx(expected["ndcg@10"], abs=1e-4)
    assert metrics["test/recall_at_100"] == pytest.approx(expected["recall@100"], abs=1e-4)


def test_per_query_csv_averages_to_the_logged_mean(finished_run, tmp_path: Path) -> None:
    _, _, client, mlflow_run, _ = finished_run
    local = Path(client.download_artifacts(mlflow_run.info.run_id, "per_query.csv", str(tmp_path)))
    with local.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16  # every judged test query of the small collection
    mean = sum(float(row["ndcg@10"]) for row in rows) / len(rows)
    assert mean == pytest.approx(mlflow_run.data.metrics["test/ndcg_at_10"], abs=1e-4)


def test_an_error_during_training_marks_the_run_failed(
    compose, mlflow_uri: str, monkeypatch
) -> None:
    from lossbench.models.module import BiEncoderModule
    from pipeline.run import run

    def explode(self, batch, batch_idx):  # noqa: ANN001, ANN202
        raise RuntimeError("simulated failure in training_step")

    monkeypatch.setattr(BiEncoderModule, "training_step", explode)
    with pytest.raises(RuntimeError, match="simulated failure"):
        run(compose(*FAST_RUN_HERE))
    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "simulated failure" in runs[0].data.tags["error"]
    assert "test/base_ndcg_at_10" in runs[0].data.metrics  # what was logged before the error stays


def test_a_bad_config_fails_before_any_run_is_logged(compose, mlflow_uri: str) -> None:
    from pipeline.run import run

    with pytest.raises(Exception, match="chunk_size"):
        run(compose(*FAST_RUN_HERE, "index.chunk_size=0"))
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_a_grad_cache_run_with_false_negative_filtering_finishes_and_logs_the_drops(
    tmp_path: Path, data_cache: Path
) -> None:
    from pipeline.run import run

    cfg = compose_config(
        tmp_path,
        data_cache,
        *FAST_RUN,
        "loss=in_batch_ce",
        "grad_cache.chunk_size=2",
        "data.train_batch_size=4",
        "loss.function.false_negative_margin=0.5",
    )
    run(cfg)
    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    (experiment,) = [e for e in client.search_experiments() if e.name == cfg.tracking.experiment]
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["grad_cache.chunk_size"] == "2"
    dropped = client.get_metric_history(mlflow_run.info.run_id, "train/false_negatives_dropped")
    assert sorted(m.step for m in dropped) == [0, 1, 2]
    assert all(0 <= m.value <= 4 * 7 for m in dropped)  # 4 queries, 8 docs: 7 competitors each
