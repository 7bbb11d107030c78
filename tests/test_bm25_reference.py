"""BM25 as the reference system: ``model=bm25`` runs (nothing trained, no loss) and the reference row
of every comparison report (from a ``model=bm25`` run, else computed once per collection and
cached, else a note saying why not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tests.helpers import (
    BM25_REFERENCE,
    FAST_RUN,
    bm25s_reference,
    compose_config,
    ranx_run_in_order_of_record,
    write_beir,
)

OTHER_SYNTHETIC = (
    "{dataset: synthetic, name: synthetic_b, collection: {seed: 7, num_docs: 120, "
    "num_train_queries: 8, num_dev_queries: 4, num_test_queries: 12}}"
)
METRICS = ["ndcg@10", "mrr@10", "recall@100", "map@100"]
BM25 = BM25_REFERENCE


def only_run(uri: str, experiment: str = "lossbench") -> Any:
    client = MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(found) == 1
    return found[0]


def test_a_bm25_run_logs_what_bm25s_scores_ranked_and_evaluated_by_ranx(
    tmp_path: Path, data_cache: Path
) -> None:
    from hydra.utils import instantiate
    from ranx import Qrels, evaluate

    from pipeline.run import run

    cfg = compose_config(tmp_path, data_cache, "model=bm25")
    objective = run(cfg)
    logged = only_run(str(cfg.tracking.uri))
    collection = instantiate(cfg.dataset.collection)
    queries = collection.split_queries("test")
    expected = bm25s_reference(dict(collection.docs), queries, int(cfg.eval.k))
    qrels = {q: dict(d) for q, d in collection.qrels["test"].items()}
    ranx_run = ranx_run_in_order_of_record({q: expected.get(q, {}) for q in queries})
    values = evaluate(Qrels(qrels), ranx_run, METRICS, make_comparable=True)
    for metric in METRICS:
        key = f"test/{metric.replace('@', '_at_')}"
        assert logged.data.metrics[key] == pytest.approx(values[metric], abs=1e-6), key
    assert objective == pytest.approx(values["ndcg@10"], abs=1e-6)


def test_a_bm25_run_trains_nothing_and_claims_no_loss(
    tmp_path: Path, data_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """loss=ranknet with GradCache (an in-batch-only option, refused for a training run) and a
    sparse index: nothing of it applies to BM25, so nothing is checked, built or recorded, and
    neither its printout nor its description speaks of a trained or untrained model."""
    from pipeline.run import run

    cfg = compose_config(
        tmp_path,
        data_cache,
        "model=bm25",
        "loss=ranknet",
        "grad_cache.chunk_size=4",
        "index=sparse",
    )
    run(cfg)
    logged = only_run(str(cfg.tracking.uri))
    tags, params = logged.data.tags, logged.data.params
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "bm25 · seed 0"
    assert (tags["loss"], tags["regularizer"], tags["model"]) == ("none", "none", "bm25")
    assert tags["lossbench_role"] == "reference"
    assert params["loss"] == "none" and params["model.config.retriever.k1"] == "0.9"
    assert not [
        p
        for p in params
        if p.startswith(("loss.function", "schedule.optimizer", "trainer.", "index."))
    ]
    assert not [m for m in logged.data.metrics if m.startswith(("test/base_", "train/", "val/"))]
    client = MlflowClient(str(cfg.tracking.uri))
    files = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"test.run.txt", "test.qrels.txt", "per_query.csv", "config.yaml"} <= files
    assert "model" not in files
    printed = capsys.readouterr().out
    ndcg = logged.data.metrics["test/ndcg_at_10"]
    assert f"metric           test\nndcg@10        {ndcg:.4f}\n" in printed
    description = tags["mlflow.note.content"]
    assert f"| ndcg@10 | {ndcg:.4f} |\n" in description
    assert "trained" not in printed.split("MLflow run")[0]
    assert "untrained" not in description and "| trained |" not in description


def test_bm25_runs_of_a_loss_sweep_are_one_system_and_each_job_a_run(
    tmp_path: Path, data_cache: Path
) -> None:
    from pipeline.run import run

    for loss in ("ranknet", "in_batch_ce"):
        run(compose_config(tmp_path, data_cache, "model=bm25", f"loss={loss}"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lossbench").experiment_id])
    assert len(runs) == 2 and len({r.data.tags["config_hash"] for r in runs}) == 2
    assert len({r.data.tags["system_hash"] for r in runs}) == 1
    assert {r.data.metrics["test/ndcg_at_10"] for r in runs} == {
        runs[0].data.metrics["test/ndcg_at_10"]
    }


@pytest.fixture(scope="module")
def losses_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny runs (ranknet, in_batch_ce) on a local BEIR folder, also tested on a second
    synthetic collection; returns the store's root and the folder."""
    from pipeline.run import run

    root = tmp_path_factory.mktemp("losses")
    folder = write_beir(
        root / "beir",
        {
            "train": [f"q{i}" for i in range(16)],
            "dev": ["q16", "q17", "q18", "q19"],
            "test": ["q20", "q21", "q22", "q23"],
        },
    )
    overrides = [*FAST_RUN, "trainer.max_steps=2", "eval.base=false", "save_model=false"]
    for loss in ("ranknet", "in_batch_ce"):
        cfg = compose_config(
            root,
            root / "cache",
            *overrides,
            "dataset=local",
            f"dataset.path={folder}",
            f"eval.collections=[{OTHER_SYNTHETIC}]",
            f"loss={loss}",
            small=False,
        )
        run(cfg)
    return root, folder


def compare(root: Path, cache: Path, reference: dict | None = BM25) -> Any:
    from lossbench.experiment.comparison import run_comparison

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    comparison, files, _, _ = run_comparison(
        client,
        "lossbench",
        ["ndcg@10", "map@100"],
        root / "report",
        reference=OmegaConf.create(reference) if reference else None,
        cache=cache,
    )
    return comparison, files


def test_every_table_has_a_bm25_row_computed_once_per_collection_and_outside_the_tests(
    losses_store: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lossbench.evaluation import evaluate_run
    from lossbench.experiment.report import comparison_metrics, markdown_table
    from lossbench.retrieval.bm25 import BM25Index
    from lossbench.retrieval.first_stage import BM25FirstStage
    from tests.helpers import tiny_collection

    root, _ = losses_store
    comparison, files = compare(root, tmp_path / "cache")
    label = "bm25 (reference)"
    docs, queries, qrels = tiny_collection()
    test_queries = {q: queries[q] for q in ("q20", "q21", "q22", "q23")}
    expected = evaluate_run(
        {q: qrels[q] for q in test_queries},
        BM25Index().add(docs).search(test_queries, 100),
        ["ndcg@10", "map@100"],
    ).means
    assert comparison.references.means[label] == pytest.approx(expected, abs=1e-6)
    assert label in comparison.collections["synthetic_b"].references.means
    assert label not in comparison.means and label not in comparison.p_values  # not tested
    assert len(list((tmp_path / "cache" / "bm25_reference").glob("*.run.txt"))) == 2
    table = markdown_table(comparison, "lossbench")
    assert table.count(f"| {label} |") == 2  # in-domain and synthetic_b (one other collection:
    assert "Mean over" not in table  # no mean table repeating its table)
    assert "Reference rows:" in table and "computed (k1=0.9" in table
    assert comparison_metrics(comparison)["reference/bm25_reference/ndcg_at_10"] == pytest.approx(
        expected["ndcg@10"]
    )
    assert "bm25 (reference)" in (root / "report" / "report.html").read_text()

    def fail(*args: Any) -> None:
        raise AssertionError("the reference was computed again")

    monkeypatch.setattr(BM25FirstStage, "search", fail)  # the second report reads the cache
    again, _ = compare(root, tmp_path / "cache")
    assert again.references.means == comparison.references.means
    assert all("cached in" in note for note in again.references.notes)
    assert all("computed (k1=0.9, b=0.4" in note for note in again.references.notes)  # with what


def test_a_reference_that_cannot_be_computed_is_reported_not_raised(
    losses_store: tuple[Path, Path], tmp_path: Path
) -> None:
    from lossbench.experiment.report import markdown_table

    root, folder = losses_store
    moved = folder.rename(tmp_path / "elsewhere")  # the corpus is not reachable any more
    try:
        comparison, _ = compare(root, tmp_path / "cache")
    finally:
        moved.rename(folder)
    assert not comparison.references.means
    assert "synthetic_b" in comparison.collections  # the other collection still has its row
    assert comparison.collections["synthetic_b"].references.means
    (note,) = comparison.references.notes
    assert "not computed" in note and "beir" in note
    assert note in markdown_table(comparison, "lossbench")
    assert comparison.means  # the losses are compared as ever


def test_a_bm25_run_among_the_compared_runs_is_the_reference_row(
    tmp_path: Path, data_cache: Path
) -> None:
    from pipeline.run import run

    run(
        compose_config(
            tmp_path,
            data_cache,
            *FAST_RUN,
            "trainer.max_steps=1",
            "eval.base=false",
            "save_model=false",
            f"eval.collections=[{OTHER_SYNTHETIC}]",
        )
    )
    run(compose_config(tmp_path, data_cache, "model=bm25", f"eval.collections=[{OTHER_SYNTHETIC}]"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lossbench").experiment_id])
    (bm25,) = [r for r in runs if r.data.tags["model"] == "bm25"]
    comparison, _ = compare(tmp_path, tmp_path / "cache")
    assert list(comparison.means) == ["ranknet"]  # a system of its own, not a loss
    row = comparison.references.means["bm25 (reference)"]
    assert row["ndcg@10"] == pytest.approx(bm25.data.metrics["test/ndcg_at_10"], abs=1e-6)
    assert row["map@100"] == pytest.approx(bm25.data.metrics["test/map_at_100"], abs=1e-6)
    other = comparison.collections["synthetic_b"].references.means["bm25 (reference)"]
    logged = bm25.data.metrics["test/synthetic_b/ndcg_at_10"]  # eval.collections work for it too
    assert other["ndcg@10"] == pytest.approx(logged, abs=1e-6)
    assert comparison.references.notes == [
        f"bm25 (reference) in-domain: run {bm25.info.run_id} (test.run.txt)"
    ]
    assert not (tmp_path / "cache" / "bm25_reference").exists()  # nothing computed


def test_a_bm25_index_keeps_jax_off_the_gpu() -> None:
    """bm25s initializes JAX at import where it is installed; on a GPU JAX would take 75% of the
    memory of every process that builds an index (the jobs of a parallel sweep ran out of it)."""
    import subprocess
    import sys

    script = (
        "import os; from lossbench.retrieval.bm25 import BM25Index; BM25Index(); "
        "print(os.environ.get('JAX_PLATFORMS'))"
    )
    src = str(Path(__file__).resolve().parent.parent / "src")
    for preset, expected in ((None, "cpu"), ("cuda", "cuda")):
        env = {"PYTHONPATH": src, **({"JAX_PLATFORMS": preset} if preset else {})}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == expected
