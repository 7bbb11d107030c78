"""The trained model as a run's artifact: saved, logged to MLflow, loaded back bit-identical, and
evaluated alone (``pipeline.evaluate``) with the training run's exact ranking."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.helpers import FAST_RUN, compose_config

TEXTS = ["what makes a wing stall", "boundary layer transition at high speed", "heat transfer"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_cache: Path):
    """One finished training run (its Experiment, to compare with the model it trained)."""
    from lossbench.experiment.stages import Experiment

    root = tmp_path_factory.mktemp("trained")
    cfg = compose_config(root, data_cache, *FAST_RUN)
    experiment = Experiment(cfg)
    experiment.run()
    return cfg, experiment, root


def scores(module) -> torch.Tensor:  # noqa: ANN001
    """Every text of :data:`TEXTS` as a query against every one as a doc ``(Q, D)``, in eval mode."""
    module.eval()
    encoding = dict(
        module.tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    )
    with torch.no_grad():
        queries, docs = module.encode(encoding, "query"), module.encode(encoding, "doc")
    return queries @ docs.T  # (Q, D): the tiny model is a DPR model (dot product)


def test_the_run_logs_its_model_and_it_loads_back_bit_identical(trained, tmp_path: Path) -> None:
    from lossbench.models import BiEncoderModule

    cfg, experiment, root = trained
    client = MlflowClient(str(cfg.tracking.uri))
    run = client.get_run(experiment.tracked.run_id)
    model_uri = run.data.tags["model_uri"]
    assert model_uri == f"models:/{experiment.model_id}"
    model = client.get_logged_model(experiment.model_id)
    assert (model.name, model.source_run_id, model.status.to_proto()) == (
        "model",
        run.info.run_id,
        2,  # READY
    )
    assert model.tags["loss"] == "ranknet" and model.tags["model"] == "tiny"
    assert {m.key for m in model.metrics} >= {"test/ndcg_at_10", "test/map_at_100"}
    expected = scores(experiment.module.cpu())
    folder = root / "output" / "model"
    sources = [str(folder), f"runs:/{run.info.run_id}/model", model_uri]
    for source in sources:
        loaded = BiEncoderModule.from_pretrained(source, tracking_uri=str(cfg.tracking.uri))
        # the tiny model's random init and shape are baked into the saved weights
        assert loaded.config == replace(
            experiment.module.config, random_init=False, backbone_overrides={}
        )
        assert torch.equal(scores(loaded), expected), source


def test_save_model_false_saves_nothing(tmp_path: Path, data_cache: Path) -> None:
    from lossbench.experiment.stages import Experiment

    cfg = compose_config(tmp_path, data_cache, *FAST_RUN, "save_model=false", "eval.base=false")
    experiment = Experiment(cfg)
    experiment.run()
    client = MlflowClient(str(cfg.tracking.uri))
    assert "model_uri" not in client.get_run(experiment.tracked.run_id).data.tags
    assert not (tmp_path / "output" / "model").exists()
    assert experiment.model_id is None


def test_evaluate_reproduces_the_training_runs_test_stage(trained, tmp_path: Path) -> None:
    """pipeline.evaluate on the run's model (by URI, without model=tiny on its command line: the
    model brings its training config) logs the same test/* and the same ranking, byte for byte."""
    from pipeline.evaluate import evaluate

    cfg, experiment, root = trained
    client = MlflowClient(str(cfg.tracking.uri))
    run_id = experiment.tracked.run_id
    source = f"runs:/{run_id}/model"
    overrides = [f"tracking.uri={cfg.tracking.uri}", f"model.model_name_or_path={source}"]
    evaluate(compose_config(tmp_path, Path(cfg.paths.cache), *overrides))
    (evaluation,) = client.search_runs(
        [experiment.tracked.experiment_id], f"tags.source_run_id = '{run_id}'"
    )
    assert evaluation.info.status == "FINISHED"
    tags, trained_run = evaluation.data.tags, client.get_run(run_id)
    assert (tags["model_source"], tags["loss"], tags["model"]) == (source, "ranknet", "tiny")
    assert tags["mlflow.source.name"] == "python -m pipeline.evaluate"
    test_metrics = {k: v for k, v in trained_run.data.metrics.items() if k.startswith("test/")}
    test_metrics = {k: v for k, v in test_metrics.items() if not k.startswith("test/base_")}
    assert {k: v for k, v in evaluation.data.metrics.items() if k.startswith("test/")} == (
        test_metrics
    )
    assert "train/loss" not in evaluation.data.metrics
    for name in ("test.run.txt", "test.qrels.txt", "per_query.csv"):
        assert (tmp_path / "output" / name).read_bytes() == (root / "output" / name).read_bytes(), (
            name
        )
    artifacts = {a.path for a in client.list_artifacts(evaluation.info.run_id)}
    assert {"config.yaml", "test.run.txt", "test.qrels.txt", "per_query.csv"} <= artifacts


def test_a_run_that_ends_below_its_start_is_tagged_and_warned(trained) -> None:
    """FAST_RUN's 3 steps of the tiny model lower its test nDCG@10 (0.063 vs 0.070 untrained)."""
    cfg, experiment, _ = trained
    metrics = experiment.tracked.client.get_run(experiment.tracked.run_id).data.metrics
    trained_value, base_value = metrics["test/ndcg_at_10"], metrics["test/base_ndcg_at_10"]
    assert trained_value < base_value
    tags = experiment.tracked.client.get_run(experiment.tracked.run_id).data.tags
    assert tags["below_start"].startswith(
        f"training made the model worse: test ndcg@10 {trained_value:.4f} is below the "
        f"untrained model's {base_value:.4f}"
    )


def test_below_start_compares_the_objective_with_the_untrained_model() -> None:
    from lossbench.experiment.outcome import below_start

    assert below_start({"ndcg@10": 0.3}, {"ndcg@10": 0.2}, "ndcg@10") is None
    assert below_start({"ndcg@10": 0.2}, {"ndcg@10": 0.2}, "ndcg@10") is None  # level: no warning
    assert below_start({"ndcg@10": 0.2}, {}, "ndcg@10") is None  # no untrained evaluation
    warning = below_start({"ndcg@10": 0.1, "map@100": 0.5}, {"ndcg@10": 0.2}, "ndcg@10")
    assert warning is not None and "0.1000 is below the untrained model's 0.2000" in warning


def test_training_on_from_a_runs_model_starts_where_it_ended(trained, tmp_path: Path) -> None:
    """pipeline.run with model.model_name_or_path=runs:/<id>/model (and the default model group):
    the saved model, with its own config and name, is the starting point (test/base_* = its test/*)."""
    from pipeline.run import run

    cfg, experiment, _ = trained
    run_id = experiment.tracked.run_id
    overrides = [
        *FAST_RUN[1:],  # not model=tiny: the saved model says what it is
        "trainer.max_steps=1",
        "save_model=false",
        f"tracking.uri={cfg.tracking.uri}",
        f"model.model_name_or_path=runs:/{run_id}/model",
    ]
    run(compose_config(tmp_path, Path(cfg.paths.cache), *overrides))
    client = MlflowClient(str(cfg.tracking.uri))
    (continued,) = client.search_runs(
        [experiment.tracked.experiment_id],
        f"params.`model.model_name_or_path` = 'runs:/{run_id}/model' and params.save_model = 'False'",
    )
    assert continued.data.tags["model"] == "tiny"
    source = client.get_run(run_id).data.metrics
    for name, value in continued.data.metrics.items():
        if name.startswith("test/base_"):
            assert value == source[name.replace("test/base_", "test/")], name
