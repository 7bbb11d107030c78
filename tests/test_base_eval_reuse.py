"""The untrained evaluation computed once and reused: the same metrics, a bit-identical run file, the
tags and the printed line; recomputed when a setting it depends on changes, and when its entry is
broken; never with ``eval.reuse_base=false``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.experiment.base_eval_cache import (
    ENTRY_FILE,
    RUN_FILE,
    BaseEvaluation,
    read_entry,
    write_entry,
)
from lossbench.experiment.ui import BASE_RUN_FILE
from tests.helpers import FAST_RUN, compose_config, run_pipeline

QUICK = [*FAST_RUN, "trainer.max_steps=1", "save_model=false", "checkpoint.every_n_steps=null"]


def run_job(root: Path, cache: Path, name: str, *overrides: str):  # noqa: ANN201
    """One quick pipeline run; returns its MLflow run, its untrained run file's bytes and what it
    printed."""
    cfg = compose_config(root, cache, *QUICK, f"paths.output={root / name}", *overrides)
    latest, printed = run_pipeline(cfg)
    return latest, (root / name / BASE_RUN_FILE).read_bytes(), printed


def base_metrics(run) -> dict[str, float]:  # noqa: ANN001
    return {k: v for k, v in run.data.metrics.items() if k.startswith("test/base_")}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A first run that computes, the same config again (tracking.rerun) that reuses."""
    root = tmp_path_factory.mktemp("reuse")
    cache = root / "cache"
    first = run_job(root, cache, "first")
    second = run_job(root, cache, "second", "tracking.rerun=true")
    return root, cache, first, second


def test_a_second_run_reuses_the_untrained_evaluation_and_says_so(two_runs) -> None:
    _, cache, (first, first_file, first_out), (second, second_file, second_out) = two_runs
    assert first.data.tags["base_eval"] == "computed"
    assert second.data.tags["base_eval"] == "reused"
    assert second.data.tags["base_eval_source"] == first.info.run_id
    assert second.data.tags["base_eval_key"] == first.data.tags["base_eval_key"]
    assert base_metrics(second) == base_metrics(first) and len(base_metrics(first)) == 4
    assert second_file == first_file  # bit-identical
    entry = cache / "base_eval" / first.data.tags["base_eval_key"]
    assert "untrained evaluation reused" not in first_out
    assert (
        f"untrained evaluation reused from {entry} (computed by run {first.info.run_id})"
        in second_out
    )
    assert "tokenized corpus reused from" in second_out


def test_the_step_0_validation_is_logged_as_computed(two_runs) -> None:
    root, _, (first, *_), (second, *_) = two_runs
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")

    def at_step_0(run) -> float:  # noqa: ANN001
        history = client.get_metric_history(run.info.run_id, "val/ndcg_at_10")
        return next(m.value for m in history if m.step == 0)

    assert at_step_0(second) == at_step_0(first)


def test_training_is_the_same_whether_it_was_computed_or_reused(two_runs) -> None:
    """Computing it draws from torch's random generator; the generators are restored after it,
    so a job trains the same way on a cache hit as on a miss."""
    root, _, (first, *_), (second, *_) = two_runs
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    losses = [
        [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")]
        for run in (first, second)
    ]
    assert losses[0] == losses[1] and losses[0]
    assert first.data.metrics["test/ndcg_at_10"] == second.data.metrics["test/ndcg_at_10"]


def test_the_corpus_tokens_are_built_once_then_reused(two_runs) -> None:
    _, cache, (first, *_), (second, *_) = two_runs
    assert first.data.tags["corpus_tokens"] == "built"
    assert second.data.tags["corpus_tokens"] == "reused"
    assert len(list((cache / "tokens").glob("*.tok"))) == 1


@pytest.mark.parametrize(
    "override",
    [
        "eval.k=50",
        pytest.param("seed=1", marks=pytest.mark.slow),
        pytest.param("model.config.pooling=max", marks=pytest.mark.slow),
        pytest.param("dataset.collection.num_test_queries=12", marks=pytest.mark.slow),
    ],
)
def test_a_setting_that_matters_recomputes(two_runs, override: str) -> None:
    """The search depth, the seed of a random-init model, the model's pooling, the test queries."""
    root, cache, (first, *_), _ = two_runs
    changed, *_ = run_job(root, cache, override.replace("=", "-"), override)
    assert changed.data.tags["base_eval"] == "computed"
    assert changed.data.tags["base_eval_key"] != first.data.tags["base_eval_key"]


def test_a_setting_that_does_not_matter_reuses(two_runs) -> None:
    """The loss, the schedule and the training steps do not change the untrained model's ranking;
    the run file carries this run's tag, the rest of each line is the first run's."""
    root, cache, (first, first_file, _), _ = two_runs
    other, other_file, _ = run_job(
        root, cache, "other-loss", "loss=infonce", "schedule=constant", "trainer.max_steps=2"
    )
    assert other.data.tags["base_eval"] == "reused"
    assert base_metrics(other) == base_metrics(first)
    strip = lambda data: [line.rsplit(b" ", 1)[0] for line in data.splitlines()]  # noqa: E731
    assert strip(other_file) == strip(first_file)
    assert other_file.splitlines()[0].endswith(b" lossbench-infonce")


CROSS = ("model=tiny_cross", "eval.k=10")


def test_a_cross_encoder_reuses_its_untrained_re_ranking(tmp_path: Path) -> None:
    """The untrained re-ranker's metrics, run file and step-0 validation, reused by a job with
    another loss."""
    cache = tmp_path / "cache"
    first, first_file, _ = run_job(tmp_path, cache, "first", *CROSS)
    second, second_file, printed = run_job(tmp_path, cache, "second", *CROSS, "loss=listnet")
    assert first.data.tags["base_eval"] == "computed"
    assert second.data.tags["base_eval"] == "reused"
    assert base_metrics(second) == base_metrics(first) and base_metrics(first)
    strip = lambda data: [line.rsplit(b" ", 1)[0] for line in data.splitlines()]  # noqa: E731
    assert strip(second_file) == strip(first_file)
    assert "untrained evaluation reused from" in printed


@pytest.mark.slow
def test_other_first_stage_candidates_recompute_a_cross_encoders(tmp_path: Path) -> None:
    """BM25 with another k1 proposes other candidates: another key, computed again."""
    cache = tmp_path / "cache"
    first, *_ = run_job(tmp_path, cache, "first", *CROSS)
    other, *_ = run_job(tmp_path, cache, "k1", *CROSS, "first_stage.retriever.k1=3.0")
    assert other.data.tags["base_eval"] == "computed"
    assert other.data.tags["base_eval_key"] != first.data.tags["base_eval_key"]


def test_reuse_off_computes_and_stores_nothing(tmp_path: Path, data_cache: Path) -> None:
    cache = tmp_path / "cache"
    run, *_ = run_job(tmp_path, cache, "off", "eval.reuse_base=false")
    assert run.data.tags["base_eval"] == "computed"
    assert not (cache / "base_eval").exists()


# ---- the cache entry itself ---------------------------------------------------------------------
def stored(tmp_path: Path) -> Path:
    run_file = tmp_path / "run.txt"
    run_file.write_text("q1 Q0 d1 1 2.5 lossbench-ranknet\nq1 Q0 d2 2 1.5 lossbench-ranknet\n")
    folder = tmp_path / "base_eval" / "k1"
    write_entry(folder, "k1", BaseEvaluation({"ndcg@10": 0.5}, {"ndcg@10": 0.25}, run_file, "r1"))
    return folder


def test_an_entry_reads_back_whole(tmp_path: Path) -> None:
    found = read_entry(stored(tmp_path), "k1", ["ndcg@10"], ["ndcg@10"])
    assert found is not None
    assert (found.test, found.val, found.source) == ({"ndcg@10": 0.5}, {"ndcg@10": 0.25}, "r1")
    assert not [p for p in (tmp_path / "base_eval").iterdir() if p.name != "k1"]  # no temporaries


@pytest.mark.parametrize("damage", ["run_file", "json", "metric", "key", "missing_run_file"])
def test_a_broken_entry_is_not_trusted(tmp_path: Path, damage: str) -> None:
    folder = stored(tmp_path)
    entry = json.loads((folder / ENTRY_FILE).read_text())
    if damage == "run_file":
        (folder / RUN_FILE).write_text("q1 Q0 d2 1 2.5 lossbench-ranknet\n")
    elif damage == "json":
        (folder / ENTRY_FILE).write_text(json.dumps(entry)[:-5])
    elif damage == "metric":
        del entry["test"]["ndcg@10"]
        (folder / ENTRY_FILE).write_text(json.dumps(entry))
    elif damage == "key":
        entry["key"] = "k2"
        (folder / ENTRY_FILE).write_text(json.dumps(entry))
    else:
        (folder / RUN_FILE).unlink()
    assert read_entry(folder, "k1", ["ndcg@10"], ["ndcg@10"]) is None


def test_a_broken_entry_is_replaced(tmp_path: Path) -> None:
    folder = stored(tmp_path)
    (folder / ENTRY_FILE).write_text("{")
    run_file = tmp_path / "new.txt"
    run_file.write_text("q1 Q0 d3 1 9.5 lossbench-ranknet\n")
    write_entry(folder, "k1", BaseEvaluation({"ndcg@10": 1.0}, {"ndcg@10": 1.0}, run_file, "r2"))
    found = read_entry(folder, "k1", ["ndcg@10"], ["ndcg@10"])
    assert found is not None and found.source == "r2"
