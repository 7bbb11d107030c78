"""ColBERT through pipeline.run: the approximate MaxSim index logs its sizes and its recall against
exact search; a DPR and a ColBERT run of the same loss are two systems of one comparison; bad
combinations fail before any MLflow run opens, one test per message."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.experiment.checks import ConfigurationError
from lossbench.models.backbone import load_tokenizer, write_tiny_model
from tests.helpers import FAST_RUN, all_runs, compose_config

COLBERT_RUN = [*FAST_RUN, "experiment=colbert", "model=tiny_colbert"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, data_cache: Path) -> tuple[Path, str]:
    """A ColBERT run on the approximate index and a DPR run of the same loss, in one store."""
    from pipeline.run import run

    root = tmp_path_factory.mktemp("colbert")
    colbert = compose_config(root, data_cache, *COLBERT_RUN, "index=maxsim_ann", "index.nlist=16")
    run(colbert)
    run(compose_config(root, data_cache, *FAST_RUN, "eval.base=false"))
    return root, str(colbert.tracking.uri)


def test_the_approximate_index_logs_its_sizes_and_its_recall_against_exact_search(store) -> None:
    _, uri = store
    (colbert,) = [r for r in all_runs(uri) if r.data.tags["model"] == "tiny_colbert"]
    assert colbert.info.status == "FINISHED"
    params, metrics = colbert.data.params, colbert.data.metrics
    # the sizes follow from the config and the corpus (params); what it misses is measured
    assert params["index/docs"] == "150"
    assert int(params["index/tokens"]) > 150 and float(params["index/bytes_per_doc"]) > 0
    assert params["index/nlist"] == "16" and params["index/nprobe"] == "8"
    assert 0.0 < metrics["index/recall_at_100_vs_exact"] <= 1.0
    assert "test/ndcg_at_10" in metrics and "test/base_ndcg_at_10" in metrics


def test_a_dpr_and_a_colbert_run_of_one_loss_are_two_systems(store, tmp_path: Path) -> None:
    from lossbench.experiment.comparison import run_comparison

    _, uri = store
    client = MlflowClient(tracking_uri=uri)
    comparison, _, _, _ = run_comparison(client, "lossbench", ["ndcg@10"], tmp_path / "report")
    assert len(comparison.means) == 2
    assert all(label.startswith("ranknet [") for label in comparison.means)


def without_mask_token(folder: Path) -> str:
    path = write_tiny_model(folder)
    tokenizer = load_tokenizer(path)
    tokenizer.mask_token = None
    tokenizer.save_pretrained(path)
    return path


BAD = {
    "sparse index": (
        ["index=sparse"],
        "model=tiny_colbert makes a vector per token (ColBERT), but SparseIndex is built for "
        "sparse vocabulary-sized vectors (SPLADE); choose index=maxsim or index=maxsim_ann",
    ),
    "dense model on a MaxSim index": (
        ["model=tiny"],
        "model=tiny makes dense vectors (DPR), but MaxSimIndex is built for a vector per token "
        "(ColBERT); choose index=exact or index=faiss_flat or index=faiss_ivf",
    ),
    "projection wider than the backbone": (
        ["model.config.embedding_dim=64"],
        "ColConfig.embedding_dim=64 is larger than the backbone's hidden size 32",
    ),
    "query augmentation without a mask token": (
        ["model.model_name_or_path={no_mask}"],
        "ColConfig.query_augmentation pads queries with the tokenizer's mask token, but the "
        "tokenizer (BertTokenizer) has none; set query_augmentation=false",
    ),
    "a regularizer for single vectors": (
        ["regularizer=l2"],
        "L2Regularization regularizes one vector per text, but ColConfig makes a vector per token",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_colbert_combinations_fail_before_any_run(
    case: str, compose, mlflow_uri: str, tmp_path: Path
) -> None:
    from pipeline.run import run

    overrides, message = BAD[case]
    if "{no_mask}" in overrides[0]:
        overrides = [overrides[0].format(no_mask=without_mask_token(tmp_path / "no_mask"))]
    with pytest.raises(ConfigurationError) as raised:
        run(compose(*COLBERT_RUN, "eval.base=false", *overrides))
    assert message in str(raised.value)
    assert all_runs(mlflow_uri) == []


def test_tiny_colbert_has_the_tiny_shape_and_the_preset_picks_the_exact_index(compose) -> None:
    from lossbench.models.backbone import TINY_BERT

    cfg = compose("experiment=colbert", "model=tiny_colbert")
    assert dict(cfg.model.config.backbone_overrides) == TINY_BERT
    assert cfg.model.config._target_ == "lossbench.models.ColConfig"
    assert cfg.index._target_ == "lossbench.retrieval.MaxSimIndex"
    assert compose("model=colbert_minilm").index._target_ == "lossbench.retrieval.ExactDenseIndex"
