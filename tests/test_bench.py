"""The benchmarks' bookkeeping (bench/): interleaved ratios, result files that name their command and
commit, RESULTS.md's tables regenerated from the committed results, and (slow) every script's quick
mode, the GPU script's path rehearsed on the CPU included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO


# ---- interleaved rounds and per-round ratios ------------------------------------------------------
def test_sides_run_interleaved_round_by_round() -> None:
    from bench.interleave import interleaved_rounds

    order: list[str] = []
    times = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])

    def side(name: str):  # noqa: ANN202
        def run() -> float:
            order.append(name)
            return next(times)

        return run

    seconds = interleaved_rounds({"A": side("A"), "B": side("B")}, rounds=3)
    assert order == ["A", "B", "A", "B", "A", "B"]
    assert seconds == {"A": [1.0, 3.0, 5.0], "B": [2.0, 4.0, 6.0]}


def test_ratio_is_the_median_of_per_round_ratios_not_a_ratio_of_medians() -> None:
    from bench.interleave import ratio_stats

    # per round: 1.2, 1.0, 3.0 -> median 1.2; the ratio of the medians would be 4 / 2 = 2.0
    stats = ratio_stats([1.2, 4.0, 30.0], [1.0, 4.0, 10.0])
    assert stats["per_round"] == pytest.approx([1.2, 1.0, 3.0])
    assert stats["median"] == pytest.approx(1.2)
    assert (stats["min"], stats["max"]) == pytest.approx((1.0, 3.0))
    assert stats["rounds"] == 3


def test_a_ratio_needs_the_same_rounds_on_both_sides() -> None:
    from bench.interleave import ratio_stats

    with pytest.raises(ValueError, match="as many rounds"):
        ratio_stats([1.0, 2.0], [1.0])


# ---- result files ---------------------------------------------------------------------------------
def test_a_result_names_its_command_commit_and_load_and_replaces_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.record as record

    monkeypatch.setattr(record, "QUICK_DIR", tmp_path)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    record.write_result("demo_cpu", {"results": {"minilm": {"a": 1}}}, True, ["--x", "1"])
    path = record.write_result("demo_cpu", {"results": {"bert": {"b": 2}}}, True, ["--x", "2"])
    document = json.loads(path.read_text())
    assert document["command"].endswith("--x 2")
    assert document["commit"] == head
    assert isinstance(document["dirty"], bool)
    assert {"load_average_1m_start", "load_average_1m_end"} <= set(document["machine"])
    assert document["results"] == {"bert": {"b": 2}}  # whole: never merged with the earlier file


def test_full_mode_results_are_not_ignored_by_git_and_quick_ones_are() -> None:
    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        return done.returncode == 0

    assert not ignored("bench/results/train_step_cpu.json")
    assert ignored("bench/results/quick/train_step_cpu.json")


# ---- RESULTS.md from the committed results --------------------------------------------------------
def test_results_md_tables_are_the_summary_of_the_committed_results() -> None:
    from bench.record import RESULTS_DIR, read_results
    from bench.summary import RESULTS_MD, regenerate

    text = RESULTS_MD.read_text(encoding="utf-8")
    assert regenerate(text, read_results(RESULTS_DIR)) == text, (
        "bench/RESULTS.md is stale: run `python -m bench.summary`"
    )


def test_every_committed_result_names_a_command_and_a_clean_commit() -> None:
    from bench.record import RESULTS_DIR, read_results

    documents = read_results(RESULTS_DIR)
    assert documents, "no committed results in bench/results/"
    for name, document in documents.items():
        assert document["command"].startswith("python -m bench."), name
        assert len(document.get("commit") or "") == 40, name
        assert document["dirty"] is False, f"{name} was measured on uncommitted code"
        assert document["quick"] is False, f"{name} is a --quick check, not a figure"


def test_a_block_without_result_files_says_so_and_prose_is_kept() -> None:
    from bench.summary import regenerate

    text = "prose\n<!-- summary:train_step_cuda -->\nold figure\n<!-- /summary:train_step_cuda -->\nend\n"
    out = regenerate(text, {})
    assert out.startswith("prose\n") and out.endswith("end\n")
    assert "old figure" not in out
    assert "no result file" in out


def test_train_step_pipeline_settings_are_the_composed_run_config(compose: Any) -> None:
    from bench.train_variants import pipeline_settings
    from lossbench.experiment.config import plain_dict

    cfg = compose()
    trainer, schedule = pipeline_settings()
    assert trainer == plain_dict(cfg.trainer)
    optimizer = plain_dict(cfg.schedule.optimizer)
    assert schedule["optimizer"] == {
        "lr": optimizer["lr"],
        "weight_decay": optimizer["weight_decay"],
    }
    assert schedule["warmup_steps"] == cfg.schedule.lr_schedule.warmup_steps
    assert schedule["final_factor"] == cfg.schedule.lr_schedule.final_factor


def test_ranx_first_call_compares_each_variant_with_lossbench_round_by_round() -> None:
    from bench.ranx_first_call import summarize

    def figures(first: float) -> dict[str, float]:
        return {"import_ranx": 2.0, "first_evaluate": first, "second_evaluate": 0.1}

    samples = {
        "lossbench": [figures(1.0), figures(2.0), figures(8.0)],
        "ranx_run": [figures(10.0), figures(30.0), figures(8.0)],
    }
    results = summarize(samples)
    assert results["lossbench"]["first_evaluate"]["median_s"] == pytest.approx(2.0)
    assert "first_evaluate_vs_lossbench" not in results["lossbench"]
    ratio = results["ranx_run"]["first_evaluate_vs_lossbench"]
    assert ratio["per_round"] == pytest.approx([10.0, 15.0, 1.0])
    assert ratio["median"] == pytest.approx(10.0)  # the ratio of the medians would be 10 / 2


# ---- the sweep's and the scaling benchmark's arithmetic -------------------------------------------
def test_a_sweep_must_pay_training_one_untrained_evaluation_and_each_final_search() -> None:
    from bench.sweep import account

    jobs = [
        {"stages_s": {"train": 100.0, "base_eval": 17.0, "index": 0.0, "search": 1.0}},
        {"stages_s": {"train": 110.0, "base_eval": 0.5, "index": 2.0, "search": 1.0}},
    ]
    summary = account(260.0, jobs)
    assert summary["must_pay_s"] == pytest.approx(100 + 110 + 17 + 0 + 1 + 2 + 1)
    assert summary["wall_over_must_pay"] == pytest.approx(260 / 231)
    assert summary["wall_over_train"] == pytest.approx(260 / 210)
    assert summary["met"] is True  # 260 <= 1.15 x 231 = 265.65
    assert account(270.0, jobs)["met"] is False


def test_the_synthetic_corpus_is_lazy_and_the_same_on_every_read() -> None:
    from bench.scaling import SyntheticCorpus, growth_exponent

    corpus = SyntheticCorpus(1_000_000, ["alpha", "beta", "gamma"])
    assert len(corpus) == 1_000_000
    assert corpus["d999999"] == corpus["d999999"] != corpus["d0"]
    assert next(iter(corpus)) == "d0"
    with pytest.raises(KeyError):
        corpus["d1000000"]  # noqa: B018
    assert growth_exponent([10, 100, 1000], [3.0, 30.0, 300.0]) == pytest.approx(1.0)
    assert growth_exponent([10, 100, 1000], [5.0, 5.0, 5.0]) == pytest.approx(0.0)


# ---- every script's quick mode (slow) --------------------------------------------------------------
def run_bench(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """Run ``args`` from the repository root with results and scratch under ``tmp_path``."""
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "LOSSBENCH_BENCH_DIR": str(tmp_path / "scratch"),
        "LOSSBENCH_BENCH_RESULTS": str(tmp_path / "results"),
        **(env or {}),
    }
    done = subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def quick_result(tmp_path: Path, name: str) -> dict[str, Any]:
    return json.loads((tmp_path / "results" / "quick" / f"{name}.json").read_text())


@pytest.mark.slow
def test_the_gpu_script_path_rehearsed_on_the_cpu(tmp_path: Path) -> None:
    rehearsal = {
        "GPU": "",
        "QUICK": "--quick",
        "ROUNDS": "2",
        "MINILM_STEPS": "--warmup 1 --steps 2",
        "BERT_STEPS": "--warmup 1 --steps 1",
        "ENCODE_DOCS": "256",
        "SMOKE_ARGS": "--allow-cpu --steps 4",
        "PARTS": "train encode compiled smoke search",
        "PYTHON": sys.executable,
        # the per-part limits are sized for the GPU; a 2-core CPU needs longer for the same path
        # (the smoke test alone: ~70 s with imports on a quiet machine, against 60 s)
        "COMPILED_LIMIT": "400",
        "SMOKE_LIMIT": "240",
    }
    run_bench(["bash", "bench/run_gpu.sh", str(tmp_path / "logs")], tmp_path, rehearsal)
    train = quick_result(tmp_path, "train_step_cpu_minilm")
    assert train["results"]["minilm"]["lossbench_pipeline"]["ratio_to_minimal"]["rounds"] == 2
    assert "lossbench_pipeline[gradient_clip_val=0]" in train["results"]["minilm"]
    compiled = quick_result(tmp_path, "train_step_cpu_minilm_compiled")
    assert "ratio_to_compiled" in compiled["results"]["minilm"]["lossbench_compiled"]
    assert (
        "ratio_to_bare"
        in quick_result(tmp_path, "encode_cpu_minilm_bert")["results"]["minilm"]["lossbench_w0"]
    )
    assert quick_result(tmp_path, "gpu_smoke")["passed"] is True
    assert quick_result(tmp_path, "search_cpu")["rounds"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    ["faiss_recall", "scaling", "sweep", "run_breakdown", "ranx_first_call", "maxsim"],
    ids=str,
)
def test_quick_mode_runs_and_summarizes(tmp_path: Path, script: str) -> None:
    extra = ["--runs", "1"] if script == "run_breakdown" else []
    run_bench([sys.executable, "-m", f"bench.{script}", "--quick", *extra], tmp_path)
    out = run_bench([sys.executable, "-m", "bench.summary", "--quick"], tmp_path)
    assert f"python -m bench.{script} --quick" in out
