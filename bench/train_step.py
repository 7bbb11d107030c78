"""Training step: a minimal hand-written step vs lossbench's full Trainer step, interleaved.

    python -m bench.train_step            # CPU: MiniLM, 16 queries x 4 docs, 12 / 40 tokens, 5 rounds
    python -m bench.train_step --quick    # tiny shapes, 2 rounds: checks that it works
    python -m bench.train_step --gpu      # GPU shapes: both models, 32 x 8, 32 / 180 tokens, bf16

Sides (:mod:`bench.train_variants`; each built from scratch, warmed up, then timed over ``--steps``
steps), run once per round in this order, for ``--rounds`` rounds (A B C A B C ...):

* ``minimal``: pre-tokenized ids already on the device, CLS pooling, dot product, cross-entropy over
  each query's candidates, AdamW (fused on a GPU), bf16 autocast on a GPU.
* ``minimal_compiled`` (``--compile``, default on a GPU): the same step with ``torch.compile``.
* ``lossbench_pipeline``: ``LightningIRTrainer.fit`` of a ``BiEncoderModule`` (same backbone,
  CLS pooling, InfoNCE = the same cross-entropy) on a ``TupleDataset`` through
  ``LightningIRDataModule`` (tokenizing in its workers), with what ``pipeline.run`` adds on every
  step: the trainer settings of ``conf/trainer/default.yaml`` (progress bar, gradient clipping,
  logging every step on the CPU and every 10th on a GPU), the pipeline's own logger
  (``MlflowRunLogger`` on a real sqlite MLflow store; recorded as ``mlflow_logger`` and skipped,
  saying so, where mlflow is not installed), ``FiniteLossGuard``, the linear warmup/decay LR schedule
  of ``conf/schedule/linear_warmup.yaml`` and the workers ``data.num_workers: null`` picks.
  ``--ablate KEY=VALUE`` adds a side of it with one Trainer argument changed.
* ``lossbench_lean``: the same module and data module with no logger, no progress bar, no gradient
  clipping, ``--num-workers`` workers: what the step costs without the pipeline's extras.
* ``lossbench_compiled`` (with ``--compile``): ``lossbench_lean`` after
  ``BiEncoderModule.compile_encoders()`` (what ``compile=true`` does); compared with
  ``minimal_compiled`` of the same round.

Each lossbench side's ratio is, round by round, its seconds per step over the minimal step's of
the same round; the figure is the median of those ratios with their min and max, beside the raw
seconds of both sides (:mod:`bench.interleave`). ``data_path`` (the DataLoader alone, and one
batch's collate in this process) and MLflow's ``log_metrics`` per call are timed once at the end.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from bench.common import (
    MODELS,
    WORK_DIR,
    add_int_options,
    device_parser,
    fill_defaults,
    start_device,
    table,
)
from bench.interleave import (
    MIN_ROUNDS,
    interleaved_rounds,
    ratio_stats,
    ratio_text,
    seconds_stats,
)
from bench.record import write_result
from bench.train_variants import (
    mlflow_available,
    time_data_path,
    time_lossbench,
    time_minimal,
    time_mlflow_logging,
)


# ---- the benchmark -------------------------------------------------------------------------------
def gpu_workers() -> int:
    from lossbench.training.hardware import gpu_workers as workers

    return workers()


def parse_override(item: str) -> tuple[str, Any]:
    """``gradient_clip_val=0`` -> ``("gradient_clip_val", 0)`` (the value read as YAML)."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--trainer {item!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = device_parser(__doc__, "the H100 shapes (both models, 32x8, 32/180)", models=True)
    add_int_options(
        parser,
        {
            "--queries": "queries per step (16; 32 --gpu; 4 quick)",
            "--docs": "docs per query (4; 8 --gpu; 2 quick)",
            "--query-length": "query tokens (12; 32 with --gpu)",
            "--doc-length": "doc tokens (40; 180 --gpu; 16 quick)",
            "--warmup": "untimed steps first (2; 10 with --gpu; 1 quick)",
            "--steps": "timed steps (8; 50 with --gpu; 2 quick)",
            "--num-workers": "workers of lossbench_lean and data_path (1; up to 12 with --gpu)",
            "--rounds": f"interleaved rounds of every side ({MIN_ROUNDS}; 2 with --quick)",
            "--threads": "torch CPU threads (default: torch's; 1 is steadier on a busy machine)",
        },
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the torch.compile'd minimal step (default: on a GPU)",
    )
    parser.add_argument(
        "--label",
        default="",
        help="suffix of the result's name (train_step_<device>_<label>.json): one file per invocation",
    )
    parser.add_argument(
        "--trainer",
        dest="trainer_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Trainer argument of lossbench_pipeline (ablations: gradient_clip_val=0)",
    )
    parser.add_argument(
        "--ablate",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also time lossbench_pipeline with this one Trainer argument changed, as its own row "
        "(repeatable: --ablate gradient_clip_val=0 --ablate enable_progress_bar=false)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["lossbench_pipeline", "lossbench_lean", "lossbench_compiled", "data_path"],
        choices=["lossbench_pipeline", "lossbench_lean", "lossbench_compiled", "data_path"],
        help="lossbench variants to time (minimal always runs)",
    )
    args = parser.parse_args(argv)
    args.trainer_overrides = dict(parse_override(item) for item in args.trainer_overrides)
    args.ablations = [parse_override(item) for item in args.ablate]
    gpu = args.gpu
    defaults = {
        "models": list(MODELS) if gpu else ["minilm"],
        "queries": 32 if gpu else (4 if args.quick else 16),
        "docs": 8 if gpu else (2 if args.quick else 4),
        "query_length": 32 if gpu else 12,
        "doc_length": 180 if gpu else (16 if args.quick else 40),
        "warmup": 1 if args.quick else (10 if gpu else 2),
        "steps": 2 if args.quick else (50 if gpu else 8),
        "num_workers": gpu_workers() if gpu else 1,
        "compile": gpu,
        "rounds": 2 if args.quick else MIN_ROUNDS,
    }
    return fill_defaults(args, defaults)


def sides_of(args: argparse.Namespace) -> dict[str, tuple[str, dict[str, Any]]]:
    """Side label -> (variant, Trainer overrides), in the order each round runs them."""
    sides: dict[str, tuple[str, dict[str, Any]]] = {"minimal": ("minimal", {})}
    if args.compile:
        sides["minimal_compiled"] = ("minimal_compiled", {})
    if "lossbench_pipeline" in args.variants:
        sides["lossbench_pipeline"] = ("lossbench_pipeline", args.trainer_overrides)
        for key, value in args.ablations:
            label = f"lossbench_pipeline[{key}={value}]"
            sides[label] = ("lossbench_pipeline", {**args.trainer_overrides, key: value})
    if "lossbench_lean" in args.variants:
        sides["lossbench_lean"] = ("lossbench_lean", {})
    if args.compile and "lossbench_compiled" in args.variants:
        sides["lossbench_compiled"] = ("lossbench_compiled", {})
    return sides


def time_model(model: str, args: argparse.Namespace, target: torch.device) -> dict[str, Any]:
    """Every side of ``model``, interleaved over ``args.rounds`` rounds; ratios per round."""
    details: dict[str, list[dict[str, Any]]] = {}

    def side(label: str, variant: str, overrides: dict[str, Any]) -> Callable[[], float]:
        def run() -> float:
            if variant.startswith("minimal"):
                result = time_minimal(model, args, target, compiled=variant == "minimal_compiled")
            else:
                result = time_lossbench(model, args, target, variant, args.num_workers, overrides)
            details.setdefault(label, []).append(result)
            return float(result["step_s"])

        return run

    callables = {label: side(label, *spec) for label, spec in sides_of(args).items()}

    def report(number: int, label: str, seconds: float) -> None:
        print(f"[{model}] round {number}/{args.rounds} {label}: {seconds:.4f} s/step", flush=True)

    seconds = interleaved_rounds(callables, args.rounds, report)
    rows: dict[str, Any] = {}
    for label, per_round in seconds.items():
        runs = details[label]
        row: dict[str, Any] = {
            **seconds_stats(per_round),
            "max_gap_s": max((r["max_gap_s"] for r in runs if "max_gap_s" in r), default=None),
            "peak_mem_mib": max((r["peak_mem_mib"] or 0 for r in runs), default=0) or None,
        }
        for key in ("num_workers", "mlflow_logger"):
            if key in runs[0]:
                row[key] = runs[0][key]
        if label != "minimal":
            row["ratio_to_minimal"] = ratio_stats(per_round, seconds["minimal"])
        if "minimal_compiled" in seconds and label not in ("minimal", "minimal_compiled"):
            row["ratio_to_compiled"] = ratio_stats(per_round, seconds["minimal_compiled"])
        rows[label] = row
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    target = start_device(args)
    if target.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    shape = f"{args.queries}q x {args.docs}d, {args.query_length}/{args.doc_length} tok"
    print(
        f"training step on {target.type}: {shape}, warmup {args.warmup}, {args.steps} timed steps,"
        f" {args.rounds} interleaved rounds"
    )
    results: dict[str, Any] = {}
    data_path: dict[str, Any] = {}
    for model in args.models:
        results[model] = time_model(model, args, target)
        if "data_path" in args.variants:
            print(f"[{model}] data path ...", flush=True)
            data_path[model] = time_data_path(model, args, args.num_workers)
        print(table(flat_rows({model: results[model]}), SHORT_COLUMNS), flush=True)
        save(args, target, results, data_path, None)  # a cut-off run keeps the models it finished
    mlflow_ms = None
    if "lossbench_pipeline" in args.variants and mlflow_available():
        print("MLflow log_metrics per call ...", flush=True)
        mlflow_ms = time_mlflow_logging(10 if args.quick else 50)
    print()
    print(table(flat_rows(results), SHORT_COLUMNS))
    print(
        "ratio: per round, the side's s/step over the minimal step's of the same round; "
        "median [min-max] of the rounds"
    )
    print(f"wrote {save(args, target, results, data_path, mlflow_ms)}")


SHORT_COLUMNS = ["model", "variant", "median_s", "x minimal", "x compiled", "max_gap_s"]


def flat_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One printable row per model and side."""
    rows = []
    for model, sides in results.items():
        for label, row in sides.items():
            rows.append(
                {
                    "model": model,
                    "variant": label,
                    "median_s": row["median_s"],
                    "x minimal": ratio_text(row.get("ratio_to_minimal")),
                    "x compiled": ratio_text(row.get("ratio_to_compiled")),
                    "max_gap_s": row.get("max_gap_s"),
                }
            )
    return rows


def save(
    args: argparse.Namespace,
    target: torch.device,
    results: dict[str, Any],
    data_path: dict[str, Any],
    mlflow_ms: float | None,
) -> Any:
    name = f"train_step_{target.type}" + (f"_{args.label}" if args.label else "")
    return write_result(
        name,
        {
            "shape": {
                k: getattr(args, k)
                for k in ("queries", "docs", "query_length", "doc_length", "warmup", "steps")
            },
            "rounds": args.rounds,
            "precision": "bf16-mixed" if target.type == "cuda" else "fp32",
            "results": results,
            "data_path": data_path,
            "mlflow_log_metrics_ms": mlflow_ms,
            "goal": {"max_ratio_to_minimal": 1.15},
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
