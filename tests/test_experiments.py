"""The SPLADE and distillation presets end to end on the tiny models: sparse index, the FLOPS weight
following its delay/warmup curve step by step in MLflow, non-zeros logged, distillation logged."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.experiment.ui import QRELS_FILE, RUN_FILE
from tests.helpers import assert_logged_equals_references, compose_config

SPLADE_RUN = [
    "experiment=splade",
    "model=tiny_splade",
    "trainer.max_steps=5",
    "regularizer_schedule.callback.num_delay_steps=1",
    "regularizer_schedule.callback.num_warmup_steps=2",
    "data.train_batch_size=4",
    "data.num_workers=0",
    "eval.base=false",
    "eval.val_every_n_steps=null",
]


def only_run(cfg) -> tuple[MlflowClient, object]:  # noqa: ANN001
    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments)
    return client, run


@pytest.fixture(scope="module")
def splade_run(tmp_path_factory: pytest.TempPathFactory, data_cache: Path):
    from pipeline.run import run

    root = tmp_path_factory.mktemp("splade")
    cfg = compose_config(root, data_cache, *SPLADE_RUN)
    run(cfg)
    return (cfg, *only_run(cfg))


def test_no_option_picks_another_groups_option(compose) -> None:
    """A SPLADE model leaves the index alone and loss=splade_flops the regularizer (the checks name
    the option that fits); the splade preset picks both."""
    assert compose("model=tiny_splade").index._target_ == "lossbench.retrieval.ExactDenseIndex"
    assert compose("model=splade_minilm").index._target_ == "lossbench.retrieval.ExactDenseIndex"
    assert compose("loss=splade_flops").regularizer.name == "none"
    preset = compose("experiment=splade")
    assert preset.index._target_ == "lossbench.retrieval.SparseIndex"
    assert preset.regularizer.name == "flops"


def test_the_tiny_models_share_one_shape(compose) -> None:
    from lossbench.models.backbone import TINY_BERT

    for model in ("tiny", "tiny_splade"):
        assert dict(compose(f"model={model}").model.config.backbone_overrides) == TINY_BERT
    assert compose("model=tiny_splade").model.config._target_ == "lossbench.models.SpladeConfig"


def test_the_splade_preset_is_the_guides_recipe(compose) -> None:
    cfg = compose("experiment=splade")
    assert cfg.model.config._target_ == "lossbench.models.SpladeConfig"
    assert cfg.loss.function._target_ == "lossbench.loss.InBatchCrossEntropy"
    assert cfg.regularizer.function.query_weight == 8e-4
    assert cfg.regularizer.function.doc_weight == 6e-4
    callback = cfg.regularizer_schedule.callback
    assert list(callback["keys"]) == [
        "loss_functions.1.query_weight",
        "loss_functions.1.doc_weight",
    ]
    # the guide's proportions: delay half of training, warm up over a fifth
    assert (callback.num_delay_steps, callback.num_warmup_steps) == (50, 20)
    assert cfg.trainer.max_steps == 100
    assert cfg.schedule.name == "constant" and cfg.schedule.optimizer.lr == 1e-4
    tiny = compose("experiment=splade", "model=tiny_splade", "schedule.optimizer.lr=3e-3")
    assert tiny.model.name == "tiny_splade" and tiny.schedule.optimizer.lr == 3e-3


def test_a_regularizer_schedule_without_a_regularizer_fails_before_any_run(
    compose, mlflow_uri: str
) -> None:
    from lossbench.experiment.checks import ConfigurationError
    from pipeline.run import run

    with pytest.raises(ConfigurationError, match="regularizer=flops"):
        run(compose("model=tiny", "regularizer_schedule=constant_warmup"))
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_the_index_check_asks_the_model_and_the_index() -> None:
    """Contracts, not class names: a model config says it is sparse, an index says what it takes."""
    from lossbench.experiment.checks import ConfigurationError, check_index
    from lossbench.models import DprConfig, SpladeConfig
    from lossbench.retrieval import ExactDenseIndex, FaissFlatIndex, SparseIndex

    check_index(SpladeConfig(), SparseIndex())
    check_index(DprConfig(), ExactDenseIndex())
    check_index(DprConfig(), FaissFlatIndex())
    with pytest.raises(ConfigurationError, match="choose index=sparse$"):
        check_index(SpladeConfig(), ExactDenseIndex())
    with pytest.raises(ConfigurationError, match="choose index=exact or index=faiss_flat"):
        check_index(DprConfig(), SparseIndex())


def test_splade_run_logs_the_flops_weight_along_its_curve(splade_run) -> None:
    cfg, client, mlflow_run = splade_run
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["regularizer_schedule"] == "constant_warmup"
    # delay 1, warmup 2: lambda(n) = 0, 0, 0.5, 1, 1 for steps 0..4
    expected = {0: 0.0, 1: 0.0, 2: 0.5, 3: 1.0, 4: 1.0}
    for key, weight in (("query_weight", 8e-4), ("doc_weight", 6e-4)):
        history = client.get_metric_history(
            mlflow_run.info.run_id, f"schedule/loss_functions.1.{key}"
        )
        logged = {m.step: m.value for m in history}
        # exact up to float32, in which Lightning logs
        assert logged == pytest.approx({n: weight * f for n, f in expected.items()}, rel=1e-6)


def test_splade_run_logs_non_zeros_and_the_sparse_index(splade_run) -> None:
    _, client, mlflow_run = splade_run
    metrics, params = mlflow_run.data.metrics, mlflow_run.data.params
    vocab = 30522
    for name in ("train/query_nnz", "train/doc_nnz"):
        history = client.get_metric_history(mlflow_run.info.run_id, name)
        assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]
        assert all(0 < m.value <= vocab for m in history)
    # the corpus and the model fix docs and dim (params); the trained model's sparsity is measured
    assert params["index/docs"] == "150" and params["index/dim"] == str(vocab)
    assert 0 < metrics["index/avg_doc_nnz"] <= vocab
    assert metrics["index/avg_posting_length"] == pytest.approx(
        metrics["index/nnz"] / metrics["index/terms"]
    )
    assert 0.0 <= metrics["test/ndcg_at_10"] <= 1.0


def test_a_sparse_runs_metrics_are_what_ranx_and_trec_eval_read_in_its_run_file(
    splade_run, tmp_path: Path
) -> None:
    from lossbench.evaluation import mlflow_metric_name

    cfg, client, mlflow_run = splade_run
    run_id = mlflow_run.info.run_id
    run_file = Path(client.download_artifacts(run_id, RUN_FILE, str(tmp_path)))
    qrels_file = Path(client.download_artifacts(run_id, QRELS_FILE, str(tmp_path)))
    logged = {m: mlflow_run.data.metrics[mlflow_metric_name(m, "test")] for m in cfg.eval.metrics}
    assert_logged_equals_references(logged, run_file, qrels_file)


def test_distillation_preset_trains_on_the_teacher_run_and_logs_to_mlflow(
    tmp_path: Path, data_cache: Path
) -> None:
    from pipeline.run import run

    cfg = compose_config(
        tmp_path,
        data_cache,
        "experiment=distillation",
        "model=tiny",
        "trainer.max_steps=3",
        "data.num_workers=0",
        "eval.base=false",
        "eval.val_every_n_steps=null",
    )
    assert cfg.loss.train_source == "run"
    objective = run(cfg)
    client, mlflow_run = only_run(cfg)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["loss"] == "kl_divergence"
    assert mlflow_run.data.params["dataset.run_sampling.sample_size"] == "8"
    losses = client.get_metric_history(mlflow_run.info.run_id, "train/loss")
    assert sorted(m.step for m in losses) == [0, 1, 2]
    assert mlflow_run.data.metrics["test/ndcg_at_10"] == pytest.approx(objective)
    assert mlflow_run.data.params["index/dim"] == "32"  # the tiny dense model


def test_the_cranfield_preset_sweeps_every_loss_that_trains_without_a_teacher(
    tmp_path, data_cache
) -> None:
    """Cranfield has judgements but no teacher run: the preset compares every bi-encoder loss that
    trains from triples (none is left out), 3 seeds, zero-shot on the synthetic collection."""
    from lossbench.experiment.jobs import group_options
    from lossbench.experiment.model_checks import fitting_options
    from lossbench.models import DprConfig

    cfg = compose_config(
        tmp_path, data_cache, "experiment=compare_losses_cranfield", small=False, hydra_node=True
    )
    assert cfg.dataset.name == "cranfield" and not cfg.dataset.teacher_scores
    assert cfg.hydra.sweeper.params.seed == "0,1,2" and cfg.hydra.mode.name == "MULTIRUN"
    swept = set(cfg.hydra.sweeper.params.loss.split(","))
    fits = {name.split("=")[1] for name in fitting_options("loss", DprConfig())}
    from_triples = {
        name for name, option in group_options("loss").items() if option.train_source == "triples"
    }
    sparse_only = {"splade_flops"}  # RankNet plus SPLADE's regularizer; compare_losses skips it too
    assert (
        swept == (fits & from_triples) - sparse_only
        and "ranknet" in swept
        and "kl_divergence" not in swept
    )
    assert list(cfg.eval.collections) == ["synthetic"]


def test_the_cranfield_cross_validation_preset_runs_every_fold_seed_by_seed(
    tmp_path, data_cache
) -> None:
    """The same losses and seeds as the one-split preset on every fold, seed the outermost loop:
    a sweep stopped early has still compared every loss on every fold."""
    from lossbench.data.splits import number_of_folds

    one_split = compose_config(
        tmp_path, data_cache, "experiment=compare_losses_cranfield", small=False, hydra_node=True
    )
    cv = compose_config(
        tmp_path, data_cache, "experiment=compare_losses_cranfield_cv", small=False, hydra_node=True
    )
    params = cv.hydra.sweeper.params
    assert list(params) == ["seed", "dataset.collection.fold", "loss"]
    assert params.seed == one_split.hydra.sweeper.params.seed
    assert params.loss == one_split.hydra.sweeper.params.loss
    collection = cv.dataset.collection
    folds = number_of_folds(225, collection.test_percent)  # Cranfield's 225 judged queries
    assert params["dataset.collection.fold"] == ",".join(str(f) for f in range(folds))
    assert cv.tracking.experiment != one_split.tracking.experiment
    assert list(cv.eval.collections) == ["synthetic"] and not cv.save_model
