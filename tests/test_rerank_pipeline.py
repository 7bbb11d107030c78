"""A cross-encoder run end to end on the tiny model: BM25's candidates re-ranked, both stages logged
and equal to ranx on their run files, the first stage a reference row of the comparison; and every
setting that cannot work refused before anything is logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.data.sources.formats import DataFormatError, read_trec_run
from lossbench.experiment.checks import ConfigurationError
from lossbench.experiment.ui import (
    BASE_RUN_FILE,
    DESCRIPTION_TAG,
    FIRST_STAGE_RUN_FILE,
    QRELS_FILE,
    RUN_FILE,
)
from tests.helpers import (
    FAST_RUN,
    all_runs,
    as_hydra_job,
    assert_logged_equals_references,
    compose_config,
)

RERANK_RUN = [*FAST_RUN, "model=tiny_cross", "trainer.max_steps=4", "eval.val_every_n_steps=2"]
METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_100", "map_at_100")


@pytest.fixture(scope="module")
def reranked(tmp_path_factory: pytest.TempPathFactory, data_cache: Path):
    """One re-ranking run shared by the tests of this module, and its files."""
    from pipeline.run import run

    root = tmp_path_factory.mktemp("rerank")
    cfg = compose_config(root, data_cache, *RERANK_RUN, "loss=infonce")
    objective = run(cfg)
    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    (mlflow_run,) = all_runs(str(cfg.tracking.uri))
    files = root / "files"
    files.mkdir()
    for name in (RUN_FILE, BASE_RUN_FILE, FIRST_STAGE_RUN_FILE, QRELS_FILE):
        client.download_artifacts(mlflow_run.info.run_id, name, str(files))
    return cfg, objective, client, mlflow_run, files


def logged_means(mlflow_run, prefix: str) -> dict[str, float]:  # noqa: ANN001
    """The run's logged test metrics under ``prefix`` (``test/first_stage_``), by ranx name."""
    from lossbench.evaluation import mlflow_metric_name

    names = ("ndcg@10", "mrr@10", "recall@100", "map@100")
    return {m: mlflow_run.data.metrics[f"{prefix}{mlflow_metric_name(m)}"] for m in names}


def test_both_stages_and_the_untrained_reranker_are_logged(reranked) -> None:
    _, objective, client, mlflow_run, _ = reranked
    assert mlflow_run.info.status == "FINISHED"
    metrics, tags = mlflow_run.data.metrics, mlflow_run.data.tags
    for name in METRICS:
        for prefix in ("test/", "test/base_", "test/first_stage_"):
            assert 0.0 <= metrics[f"{prefix}{name}"] <= 1.0, prefix + name
    assert metrics["test/ndcg_at_10"] == pytest.approx(objective)
    assert tags["first_stage"] == "bm25" and tags["model"] == "tiny_cross"
    validation = client.get_metric_history(mlflow_run.info.run_id, "val/ndcg_at_10")
    assert sorted(m.step for m in validation) == [0, 2, 3, 4]  # 3: the end of an epoch
    assert "time/first_stage_s" in metrics and "time/rerank_s" in metrics
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
    assert {
        RUN_FILE,
        BASE_RUN_FILE,
        FIRST_STAGE_RUN_FILE,
        "per_query.csv",
        "config.yaml",
    } <= artifacts


def test_first_stage_metrics_equal_ranx_and_trec_eval_on_its_run(reranked, data_cache) -> None:
    from lossbench.data import synthetic_collection
    from lossbench.retrieval.bm25 import BM25Index

    cfg, _, _, mlflow_run, files = reranked
    logged = logged_means(mlflow_run, "test/first_stage_")
    assert_logged_equals_references(logged, files / FIRST_STAGE_RUN_FILE, files / QRELS_FILE)
    settings = {k: v for k, v in cfg.dataset.collection.items() if k != "_target_"}
    collection = synthetic_collection(**settings)
    bm25 = BM25Index().add(collection.docs).search(collection.split_queries("test"), cfg.eval.k)
    first_stage = read_trec_run(files / FIRST_STAGE_RUN_FILE)
    assert first_stage.keys() == {q for q, docs in bm25.items() if docs}
    for qid, docs in first_stage.items():
        assert docs == pytest.approx(bm25[qid], abs=1e-5)


def test_the_reranked_runs_hold_the_candidates_and_their_metrics_equal_ranx_and_trec_eval(
    reranked,
) -> None:
    _, _, _, mlflow_run, files = reranked
    reranked_run = read_trec_run(files / RUN_FILE)
    first_stage = read_trec_run(files / FIRST_STAGE_RUN_FILE)
    assert {q: set(d) for q, d in reranked_run.items()} == {
        q: set(d) for q, d in first_stage.items()
    }
    logged = logged_means(mlflow_run, "test/")
    assert_logged_equals_references(logged, files / RUN_FILE, files / QRELS_FILE)
    base = logged_means(mlflow_run, "test/base_")
    assert_logged_equals_references(base, files / BASE_RUN_FILE, files / QRELS_FILE)
    # the same candidates: recall at the re-ranking depth is the first stage's
    assert logged["recall@100"] == pytest.approx(
        mlflow_run.data.metrics["test/first_stage_recall_at_100"], abs=1e-6
    )


def test_the_comparison_shows_the_first_stage_as_a_reference_row(reranked, tmp_path) -> None:
    from lossbench.experiment.comparison import run_comparison

    cfg, _, client, mlflow_run, _ = reranked
    comparison, _, _, _ = run_comparison(
        client, cfg.tracking.experiment, ["ndcg@10"], tmp_path / "report", baseline="infonce"
    )
    assert set(comparison.means) == {"infonce", "first stage: bm25"}
    assert comparison.means["first stage: bm25"]["ndcg@10"] == pytest.approx(
        mlflow_run.data.metrics["test/first_stage_ndcg_at_10"], abs=1e-6
    )
    assert "first stage: bm25" in (tmp_path / "report" / "report.md").read_text()


# ---- refused before anything is logged ------------------------------------------------------------
def refused(compose, mlflow_uri: str, error: type[Exception], match: str, *overrides: str) -> str:
    from pipeline.run import run

    with pytest.raises(error, match=match) as raised:
        run(compose(*FAST_RUN, "model=tiny_cross", *overrides))
    assert all_runs(mlflow_uri) == []
    return str(raised.value)


def test_an_in_batch_loss_is_refused_naming_the_losses_that_fit(compose, mlflow_uri) -> None:
    message = refused(
        compose,
        mlflow_uri,
        ConfigurationError,
        r"loss=in_batch_ce \(InBatchCrossEntropy\) needs in-batch scores .* which "
        r"model=tiny_cross \(CrossEncoderConfig\) does not compute",
        "loss=in_batch_ce",
    )
    fits = message.split("Options that fit: ")[1].split(", ")
    assert {"loss=ranknet", "loss=infonce", "loss=bce", "loss=kl_divergence"} <= set(fits)
    assert not {"loss=in_batch_ce", "loss=score_based_in_batch_ce", "loss=splade_flops"} & set(fits)


def test_an_embedding_regularizer_is_refused(compose, mlflow_uri) -> None:
    refused(
        compose,
        mlflow_uri,
        ConfigurationError,
        r"regularizer=flops \(FLOPSRegularization\) needs the query and doc embeddings.*"
        r"Options that fit: regularizer=none$",
        "regularizer=flops",
    )


def test_an_index_for_vectors_is_refused_for_a_cross_encoder(tmp_path, data_cache) -> None:
    from lossbench.experiment.model_checks import check_reranker_settings
    from lossbench.models import CrossEncoderConfig, DprConfig

    overrides = ("model=tiny_cross", "index=faiss_flat")
    cfg = compose_config(tmp_path, data_cache, *overrides, hydra_node=True)
    with (
        as_hydra_job(cfg),
        pytest.raises(
            ConfigurationError,
            match=r"index=faiss_flat configures an index for vectors, but model=tiny_cross is a "
            r"cross-encoder.*Drop index=faiss_flat; choose the candidates with first_stage=",
        ),
    ):
        check_reranker_settings(cfg, CrossEncoderConfig())
    default = compose_config(tmp_path, data_cache, "model=tiny_cross", hydra_node=True)
    with as_hydra_job(default):
        check_reranker_settings(default, CrossEncoderConfig())  # the default index: left alone
    preset = compose_config(
        tmp_path, data_cache, "experiment=splade", "model=tiny_cross", hydra_node=True
    )
    with as_hydra_job(preset), pytest.raises(ConfigurationError, match="index=sparse configures"):
        check_reranker_settings(preset, CrossEncoderConfig())
    bi = compose_config(tmp_path, data_cache, "model=tiny", "first_stage=run_file", hydra_node=True)
    with as_hydra_job(bi):
        logger = logging.getLogger("lossbench")
        seen: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
        logger.addHandler(handler)
        try:
            check_reranker_settings(bi, DprConfig())
        finally:
            logger.removeHandler(handler)
    assert seen == [
        "first_stage=run_file only chooses the validation candidates on a corpus of more than "
        "eval.val_candidates_above docs: model=tiny is a bi-encoder, it searches its own index "
        "(first_stage re-ranks for cross-encoders, e.g. model=cross_minilm)"
    ]


def test_a_run_file_first_stage_needs_its_path(compose, mlflow_uri) -> None:
    refused(
        compose, mlflow_uri, ValueError, "first_stage.path=/path/to/run", "first_stage=run_file"
    )


BAD_RUN_FILES = {
    "a missing run file": (
        None,
        FileNotFoundError,
        r"first_stage.path=.*missing.run: no such file",
    ),
    "a malformed line, named": (
        "test-0 Q0 d1 1 3.5 x\ntest-0 Q0 d2 2 high x\n",
        DataFormatError,
        r"bad.run:2: expected an integer rank and a numeric score",
    ),
    "a run of other queries": (
        "1001 Q0 d1 1 3.5 x\n1002 Q0 d2 1 2.5 x\n",
        ConfigurationError,
        r"run file bad.run gives none of the \d+ judged dev queries a candidate: its query ids "
        r"\(1001, 1002, ...\) are not the collection's \(dev-0, ",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUN_FILES))
def test_a_bad_run_file_is_refused_before_the_run_opens(
    compose, mlflow_uri, tmp_path, case: str
) -> None:
    content, error, match = BAD_RUN_FILES[case]
    path = tmp_path / ("missing.run" if content is None else "bad.run")
    if content is not None:
        path.write_text(content)
    refused(compose, mlflow_uri, error, match, "first_stage=run_file", f"first_stage.path={path}")


def test_a_short_run_file_reranks_what_it_has_with_warnings(
    compose, mlflow_uri, tmp_path, caplog
) -> None:
    """Some queries missing, fewer candidates than eval.k: the run goes on and says so."""
    from lossbench.data import synthetic_collection
    from lossbench.data.sources.formats import write_trec_run
    from lossbench.retrieval.bm25 import BM25Index
    from pipeline.run import run

    overrides = [*FAST_RUN, "model=tiny_cross", "trainer.max_steps=1", "eval.base=false"]
    cfg = compose(*overrides)

    settings = {k: v for k, v in cfg.dataset.collection.items() if k != "_target_"}
    collection = synthetic_collection(**settings)
    queries = {**collection.split_queries("dev"), **collection.split_queries("test")}
    queries.pop("test-1")
    bm25 = BM25Index().add(collection.docs).search(queries, 5)
    path = write_trec_run(bm25, tmp_path / "bm25-top5.run")
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        run(compose(*overrides, "first_stage=run_file", f"first_stage.path={path}"))
    warnings = [r.getMessage() for r in caplog.records if r.name == "lossbench"]
    without = sum(1 for q in collection.split_queries("test") if not bm25.get(q))  # test-1 too
    assert (
        f"run file bm25-top5.run gives {without} of the 16 judged test queries no candidate: they score 0 on every metric"
        in warnings
    )
    assert (
        "eval.k=100, but run file bm25-top5.run returns at most 5 candidates per dev query: "
        "those are re-ranked (recall@100 stays the first stage's)"
    ) in warnings
    (mlflow_run,) = all_runs(mlflow_uri)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["first_stage"] == "run file bm25-top5.run"


def test_a_saved_bi_encoder_is_a_first_stage(compose, mlflow_uri, tmp_path, tiny_module) -> None:
    from pipeline.run import run

    tiny_module.save_pretrained(tmp_path / "dpr")
    quick = ["trainer.max_steps=1", "eval.base=false", "eval.k=10"]
    run(
        compose(
            *FAST_RUN,
            "model=tiny_cross",
            *quick,
            "first_stage=model",
            f"first_stage.path={tmp_path / 'dpr'}",
        )
    )
    (mlflow_run,) = all_runs(mlflow_uri)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["first_stage"] == "bi-encoder dpr"
    assert mlflow_run.data.params["first_stage.retriever.batch_size"] == "None"
    assert 0.0 <= mlflow_run.data.metrics["test/first_stage_ndcg_at_10"] <= 1.0


def test_bce_trains_a_cross_encoder_from_triples(compose, mlflow_uri) -> None:
    """The baseline of cross-encoder comparisons reads triples (the other tests train from a run);
    the run's description says what it re-ranked."""
    import math

    from mlflow.tracking import MlflowClient

    from pipeline.run import run

    cfg = compose(*FAST_RUN, "model=tiny_cross", "loss=bce", "trainer.max_steps=2", "eval.k=10")
    assert cfg.loss.train_source == "triples"
    run(cfg)
    (mlflow_run,) = all_runs(mlflow_uri)
    assert mlflow_run.info.status == "FINISHED"
    history = MlflowClient(mlflow_uri).get_metric_history(mlflow_run.info.run_id, "train/loss")
    assert len(history) == 2 and all(math.isfinite(point.value) for point in history)
    assert "Re-ranks the top 10 of `bm25`." in mlflow_run.data.tags[DESCRIPTION_TAG]


def test_the_rerank_preset_sweeps_every_loss_that_fits(tmp_path, data_cache) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lossbench.experiment.jobs import group_options
    from lossbench.experiment.model_checks import fitting_options
    from lossbench.models import CrossEncoderConfig

    cfg = compose_config(tmp_path, data_cache, "experiment=compare_rerank_losses", hydra_node=True)
    assert cfg.model.name == "cross_minilm" and cfg.first_stage.name == "bm25"
    params = cfg.hydra.sweeper.params
    assert params.seed == "0,1,2" and cfg.hydra.mode.name == "MULTIRUN"
    glob = OverridesParser.create().parse_override(f"loss={params.loss}").value()
    swept = set(glob.filter(sorted(group_options("loss"))))
    fits = {name.split("=")[1] for name in fitting_options("loss", CrossEncoderConfig())}
    assert swept == fits and "ranknet" in swept and "in_batch_ce" not in swept
    assert {"bce", "pointwise_mse", "lambdaloss", "neural_ndcg", "plistmle"} <= swept


def test_the_saved_reranker_loads_by_uri_and_evaluates_to_the_same_ranking(
    reranked, tmp_path: Path
) -> None:
    """A re-ranker is saved like a bi-encoder: ``runs:/<id>/model`` loads it back, and
    ``pipeline.evaluate`` on it re-ranks the same first stage into the training run's test/*."""
    from lossbench.models import CrossEncoderModule
    from pipeline.evaluate import evaluate

    cfg, _, client, mlflow_run, files = reranked
    run_id = mlflow_run.info.run_id
    source = f"runs:/{run_id}/model"
    loaded = CrossEncoderModule.from_pretrained(source, tracking_uri=str(cfg.tracking.uri))
    assert loaded.config.reranks
    overrides = [f"tracking.uri={cfg.tracking.uri}", f"model.model_name_or_path={source}"]
    evaluate(compose_config(tmp_path, Path(cfg.paths.cache), *overrides))
    (evaluation,) = client.search_runs(
        [mlflow_run.info.experiment_id], f"tags.source_run_id = '{run_id}'"
    )
    assert evaluation.info.status == "FINISHED"
    assert evaluation.data.tags["model"] == "tiny_cross"
    for name in METRICS:
        assert evaluation.data.metrics[f"test/{name}"] == mlflow_run.data.metrics[f"test/{name}"]
    again = Path(client.download_artifacts(evaluation.info.run_id, RUN_FILE, str(tmp_path)))
    assert again.read_bytes() == (files / RUN_FILE).read_bytes()


def test_other_collections_are_refused_for_a_cross_encoder(compose, mlflow_uri) -> None:
    from pipeline.run import run

    with pytest.raises(ConfigurationError, match="eval.collections is not supported for a cross"):
        run(compose(*FAST_RUN, "model=tiny_cross", "eval.collections=[synthetic]"))
