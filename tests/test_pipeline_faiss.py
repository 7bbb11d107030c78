"""A run on index=faiss_ivf: it trains, searches the IVF index and logs its recall@100 against exact search."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.helpers import compose_config

# 150 synthetic docs: 8 lists of ~19 docs (min_points_per_list lowered so nlist stays 8), 1 probed
FAISS_RUN = [
    "model=tiny",
    "trainer.max_steps=2",
    "data.num_workers=0",
    "index=faiss_ivf",
    "index.nlist=8",
    "index.nprobe=1",
    "index.min_points_per_list=10",
    "eval.base=false",  # one corpus encoding less
]


def test_an_ivf_run_logs_its_recall_against_exact_search(tmp_path: Path, data_cache: Path) -> None:
    from pipeline.run import run

    cfg = compose_config(tmp_path, data_cache, *FAISS_RUN)
    run(cfg)
    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    (experiment,) = [e for e in client.search_experiments() if e.name == cfg.tracking.experiment]
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    metrics = mlflow_run.data.metrics
    assert mlflow_run.info.status == "FINISHED"
    assert 0.0 < metrics["index/recall_at_100_vs_exact"] <= 1.0
    params = mlflow_run.data.params
    assert params["index/nlist"] == "8" and params["index/nprobe"] == "1"
    assert params["index/docs"] == "150"
    assert "time/recall_vs_exact_s" in metrics
    assert 0.0 <= metrics["test/ndcg_at_10"] <= 1.0
    assert mlflow_run.data.params["index._target_"] == "lossbench.retrieval.FaissIVFIndex"
