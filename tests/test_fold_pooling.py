"""pipeline.compare over cross-validation folds, on an MLflow store of logged runs (nothing
trained): in-domain each seed's run is the union of its folds' runs, every reference row is pooled
the same way, and on another collection the runs are (seed, fold) models. Every expected value is
ranx's (or bm25s's) on the logged files themselves, not the code under test."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tests.helpers import (
    BM25_REFERENCE,
    bm25s_reference,
    folded_collection,
    log_finished_run,
    ranx_run_in_order_of_record,
    tiny_collection,
)

LOSSES = ("ranknet", "in_batch_ce")
SEEDS = (0, 1)
FOLDS = (0, 1)  # of tests.helpers.folded_collection's 4
METRICS = ["ndcg@10", "map@100"]
OTHER = "other"  # the label of the other test collection (eval.collections)
OTHER_QUERIES = [f"o{j}" for j in range(5)]
BM25 = BM25_REFERENCE


def run_text(queries: list[str], seed: str) -> str:
    """A TREC run of 12 docs per query with distinct random scores."""
    rng = random.Random(seed)
    docs, _, _ = tiny_collection()
    lines = []
    for qid in queries:
        scores = sorted((rng.random() for _ in range(12)), reverse=True)
        for rank, (doc, score) in enumerate(
            zip(rng.sample(list(docs), 12), scores, strict=True), start=1
        ):
            lines.append(f"{qid} Q0 {doc} {rank} {score:.9f} fake\n")
    return "".join(lines)


def qrels_text(qrels: dict[str, dict[str, int]]) -> str:
    return "".join(f"{q} 0 {d} {g}\n" for q in sorted(qrels) for d, g in sorted(qrels[q].items()))


OTHER_QRELS = {
    q: {f"d{(3 * j + i) % 40}": 1 + (i == 0) for i in range(3)} for j, q in enumerate(OTHER_QUERIES)
}


def log_job(client: Any, experiment: str, loss: str, seed: int, fold: int, start: int) -> Any:
    """What a job of ``-m loss=... seed=... dataset.collection.fold=...`` leaves for compare."""
    qrels = folded_collection(fold).qrels["test"]
    config = {
        "seed": seed,
        "dataset": {
            "name": "folded",
            "collection": {"_target_": "tests.helpers.folded_collection", "fold": fold},
        },
        "eval": {"k": 100},
    }
    files = {
        "test.run.txt": run_text(sorted(qrels), f"{loss}-{seed}-{fold}"),
        "test.qrels.txt": qrels_text(qrels),
        "test_base.run.txt": run_text(sorted(qrels), f"untrained-{fold}"),  # one per fold
        "config.yaml": OmegaConf.to_yaml(OmegaConf.create(config)),
        f"collections/{OTHER}/test.run.txt": run_text(OTHER_QUERIES, f"{loss}-{seed}-{fold}-o"),
        f"collections/{OTHER}/test.qrels.txt": qrels_text(OTHER_QRELS),
    }
    tags = {
        "loss": loss,
        "model": "tiny",
        "dataset": "folded",
        "seed": str(seed),
        "fold": str(fold),
        "system_hash": f"system-{loss}",
        "setup_hash": f"setup-{loss}",
        "code_version": "c1",
        "base_eval_key": f"base-fold{fold}",  # the untrained model's key differs per fold
    }
    metrics = {"test/base_ndcg_at_10": 0.5}
    return log_finished_run(client, experiment, tags, files, metrics, start)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, int, int], Any]]:
    """2 losses x 2 seeds x 2 folds of runs; returns the store's folder and the runs by (loss,
    seed, fold)."""
    root = tmp_path_factory.mktemp("folds")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.create_experiment("cv", artifact_location=str(root / "artifacts"))
    runs = {}
    for start, (loss, seed, fold) in enumerate(
        (loss, seed, fold) for loss in LOSSES for seed in SEEDS for fold in FOLDS
    ):
        runs[loss, seed, fold] = log_job(client, experiment, loss, seed, fold, start)
    return root, runs


def compare(root: Path, cache: Path, reference: dict | None = None) -> Any:
    from lossbench.experiment.comparison import run_comparison

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    comparison, *_ = run_comparison(
        client,
        "cv",
        METRICS,
        root / "report",
        baseline="ranknet",
        reference=OmegaConf.create(reference) if reference else None,
        cache=cache,
    )
    return comparison


def artifact(client: Any, run: Any, name: str, folder: Path) -> str:
    target = folder / run.info.run_id
    target.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run.info.run_id, name, str(target))).read_text()


def concatenated(root: Path, runs: list[Any], name: str, folder: Path) -> Path:
    """The runs' files ``name`` one after the other, as one file."""
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    path = folder / f"{len(list(folder.glob('*')))}-{Path(name).name}"
    path.write_text("".join(artifact(client, run, name, folder / "files") for run in runs))
    return path


def ranx_values(run_file: Path, qrels_file: Path, per_query: bool = False) -> dict[str, Any]:
    from ranx import Qrels, Run, evaluate

    qrels, run = Qrels.from_file(str(qrels_file)), Run.from_file(str(run_file))
    return evaluate(qrels, run, METRICS, make_comparable=True, return_mean=not per_query)


def test_in_domain_each_seed_is_the_union_of_its_folds_evaluated_as_one(
    store: tuple[Path, dict], tmp_path: Path
) -> None:
    from lossbench.experiment.report import markdown_table

    root, runs = store
    comparison = compare(root, tmp_path / "cache")
    assert comparison.seeds == [0, 1] and sorted(comparison.means) == sorted(LOSSES)
    per_query = {}
    for loss in LOSSES:
        for seed in SEEDS:
            fold_runs = [runs[loss, seed, fold] for fold in FOLDS]
            run_file = concatenated(root, fold_runs, "test.run.txt", tmp_path)
            qrels_file = concatenated(root, fold_runs, "test.qrels.txt", tmp_path)
            expected = ranx_values(run_file, qrels_file)
            for metric in METRICS:
                assert comparison.per_seed[loss][metric][seed] == pytest.approx(expected[metric])
            per_query[loss, seed] = ranx_values(run_file, qrels_file, per_query=True)["ndcg@10"]
        mean = sum(comparison.per_seed[loss]["ndcg@10"]) / len(SEEDS)
        assert comparison.means[loss]["ndcg@10"] == pytest.approx(mean)
    # the paired test pairs the same query of the same seed: W/T/L counted on ranx's per-query
    # values (the qrels files list the queries in the same order for every run of a seed)
    wins = sum(int((per_query["in_batch_ce", s] > per_query["ranknet", s]).sum()) for s in SEEDS)
    losses = sum(int((per_query["in_batch_ce", s] < per_query["ranknet", s]).sum()) for s in SEEDS)
    won, tied, lost = comparison.win_tie_loss["in_batch_ce"]["ndcg@10"]
    assert (won, lost) == (wins, losses) and won + tied + lost == 2 * 12  # seeds x pooled queries
    table = markdown_table(comparison, "cv")
    note = "pooled over folds 0, 1 of folded: 12 test queries, each tested by the model trained"
    assert note in table and table.index(note) < table.index("## Zero-shot on other")
    assert note in (root / "report" / "report.html").read_text()


def test_on_another_collection_the_runs_are_seed_fold_models(
    store: tuple[Path, dict], tmp_path: Path
) -> None:
    import statistics

    from lossbench.experiment.report import markdown_table

    root, runs = store
    comparison = compare(root, tmp_path / "cache")
    compared = comparison.collections[OTHER]
    assert compared.seeds == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for loss in LOSSES:
        values = []
        for seed in SEEDS:
            for fold in FOLDS:
                name = f"collections/{OTHER}/test.run.txt"
                run_file = concatenated(root, [runs[loss, seed, fold]], name, tmp_path)
                qrels_file = tmp_path / "other.qrels.txt"
                qrels_file.write_text(qrels_text(OTHER_QRELS))
                values.append(ranx_values(run_file, qrels_file)["ndcg@10"])
        assert compared.per_seed[loss]["ndcg@10"] == pytest.approx(values)
        assert compared.means[loss]["ndcg@10"] == pytest.approx(statistics.mean(values))
        assert compared.stds[loss]["ndcg@10"] == pytest.approx(statistics.stdev(values))
    won, tied, lost = compared.win_tie_loss["in_batch_ce"]["ndcg@10"]
    assert won + tied + lost == 4 * len(OTHER_QUERIES)  # (seed, fold) x query pairs
    zero_shot = markdown_table(comparison, "cv").split("## Zero-shot")[1]
    assert "mean ± std over (seed, fold) models (4: seeds 0, 1 x folds 0, 1)" in zero_shot


def test_the_untrained_and_bm25_rows_are_pooled_over_the_folds(
    store: tuple[Path, dict], tmp_path: Path
) -> None:
    from ranx import Qrels, evaluate

    root, runs = store
    cache = tmp_path / "cache"
    comparison = compare(root, cache, BM25)
    fold_runs = [runs["ranknet", 0, fold] for fold in FOLDS]
    qrels_file = concatenated(root, fold_runs, "test.qrels.txt", tmp_path)
    untrained = ranx_values(
        concatenated(root, fold_runs, "test_base.run.txt", tmp_path), qrels_file
    )
    row = comparison.references.means["tiny untrained (reference)"]  # one row: base keys per fold
    assert row == pytest.approx(untrained)
    # BM25: bm25s over every fold's test queries, evaluated by ranx on every fold's qrels
    docs, queries, _ = tiny_collection()
    tested = {q: queries[q] for fold in FOLDS for q in folded_collection(fold).qrels["test"]}
    assert len(tested) == 12
    expected = evaluate(
        Qrels.from_file(str(qrels_file)),
        ranx_run_in_order_of_record(bm25s_reference(docs, tested, len(docs))),  # top 100 of 40
        METRICS,
        make_comparable=True,
    )
    assert comparison.references.means["bm25 (reference)"] == pytest.approx(expected, abs=1e-6)
    assert len(list((cache / "bm25_reference").glob("*.run.txt"))) == 2  # one per fold
    (note,) = [n for n in comparison.references.notes if n.startswith("bm25 (reference) in-")]
    files = {p.name for p in (cache / "bm25_reference").glob("*.run.txt")}
    settings, _, listed = note.partition(f" on each fold's test queries, cached in {cache}/")
    assert "pooled over folds 0, 1: computed (k1=0.9" in settings  # the settings once
    assert set(listed.removeprefix("bm25_reference: ").split(", ")) == files  # each fold's file
    assert "bm25 (reference)" not in comparison.p_values  # outside the tests


def test_a_missing_fold_of_a_seed_is_refused_naming_it(
    store: tuple[Path, dict], tmp_path: Path
) -> None:
    import shutil

    from lossbench.experiment.pooling import FoldsError

    root, runs = store
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # the store's artifacts stay where they are: only runs are read
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    client.delete_run(runs["in_batch_ce", 1, 0].info.run_id)
    with pytest.raises(FoldsError, match="in_batch_ce seed 1: fold 0. Rerun the missing jobs"):
        compare(copy, tmp_path / "cache")
