"""A sweep of several losses: its wall time against the work its jobs must pay (issue #16).

    python -m bench.sweep                          # 3 losses on the embedded default -> sweep_cpu.json
    python -m bench.sweep --label after            # the same sweep, kept as sweep_cpu_after.json
    python -m bench.sweep --quick                  # model=tiny, 4 steps, 2 losses: a check
    python -m bench.sweep --losses ranknet listnet -- hydra/launcher=joblib hydra.launcher.n_jobs=2
    python -m bench.sweep --root /tmp/s --label second   # reuse a store and cache: a later sweep

Runs ``python -m pipeline.run -m loss=<a>,<b>,...`` as a user would (one process, Hydra's launcher,
one MLflow parent run and a child run per job), with every file under ``--root`` (a new folder under
``$LOSSBENCH_BENCH_DIR`` unless given; removed afterwards unless given or ``--keep``), and times it
from outside. Then reads each job's ``time/<stage>_s`` metrics back from the MLflow store.

What a sweep must pay (the issue's goal: wall <= 1.15 x this):

* every job's training, ``time/train_s`` (``fit``: steps, validations, checkpoints; the last
  validation's index is the final index when it holds the final weights);
* ONE untrained evaluation, ``time/base_eval_s`` (identical for every job at the same model, data
  and seed): the largest of the jobs' (the one that computed it, once sharing exists);
* every job's final index and search, ``time/index_s + time/search_s``.

Everything else (start-up and imports, config checks, the collection, the model's construction,
the untrained evaluation of the other jobs, metrics, files, MLflow) is the sweep's overhead.
Extra Hydra overrides after ``--`` go to the sweep (a launcher, a sharing option), so the
measurement after a change is this same command with ``--label after``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.child import child_env
from bench.record import REPO, WORK_DIR, write_result

LOSSES = ("ranknet", "listnet", "in_batch_ce")
"""Default losses: a pairwise loss on triples, a listwise one on the teacher run, an in-batch one."""
QUICK_OVERRIDES = ("model=tiny", "trainer.max_steps=4", "data.num_workers=0")
GOAL = 1.15
REUSE_TAGS = ("base_eval", "base_eval_source", "corpus_tokens")
"""The tags a job sets on what it computed or reused (``lossbench.experiment.reuse``)."""
PAID_STAGES = ("train", "index", "search")
"""Stages every job must pay (beside one untrained evaluation, ``base_eval``)."""


def sweep_command(losses: list[str], root: Path, experiment: str, extra: list[str]) -> list[str]:
    """``python -m pipeline.run -m loss=a,b,...`` with every file under ``root``."""
    return [
        sys.executable,
        "-m",
        "pipeline.run",
        "-m",
        f"loss={','.join(losses)}",
        f"paths.root={root}",
        f"tracking.experiment={experiment}",
        f"hydra.sweep.dir={root}/multirun/{experiment}",
        *extra,
    ]


def run_sweep(command: list[str], log_path: Path) -> float:
    """Run the sweep (its output to ``log_path``); returns its wall seconds."""
    start = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run(command, env=child_env(), cwd=REPO, stdout=log, stderr=log)
    wall = time.perf_counter() - start
    if done.returncode:
        tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-20:])
        raise SystemExit(f"the sweep failed ({done.returncode}); {log_path} ends with:\n{tail}")
    return wall


def job_times(uri: str, experiment: str) -> list[dict[str, Any]]:
    """Each finished job of ``experiment``: its loss, seed, status, stage seconds and reuse tags."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no MLflow experiment {experiment!r} in {uri}: did the sweep log?")
    jobs = []
    for run in client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"]):
        metrics, tags = run.data.metrics, run.data.tags
        if "time/train_s" not in metrics:  # the sweep's parent run
            continue
        jobs.append(
            {
                "loss": tags.get("loss"),
                "seed": tags.get("seed"),
                "status": run.info.status,
                "stages_s": {
                    name.removeprefix("time/").removesuffix("_s"): value
                    for name, value in metrics.items()
                    if name.startswith("time/")
                },
                # what a job says it reused (the untrained evaluation, the tokenized corpus)
                "reuse_tags": {k: tags[k] for k in REUSE_TAGS if k in tags},
            }
        )
    return jobs


def account(wall_s: float, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The sweep's wall time against what it must pay (see the module docstring)."""
    stage = [job["stages_s"] for job in jobs]
    train = sum(s.get("train", 0.0) for s in stage)
    index_search = sum(s.get("index", 0.0) + s.get("search", 0.0) for s in stage)
    base_evals = [s.get("base_eval", 0.0) for s in stage]
    one_base = max(base_evals, default=0.0)
    must_pay = train + one_base + index_search
    staged = sum(sum(v for k, v in s.items() if k != "checkpoint") for s in stage)
    return {
        "wall_s": wall_s,
        "jobs": len(jobs),
        "train_s": train,
        "one_base_eval_s": one_base,
        "all_base_evals_s": sum(base_evals),
        "final_index_search_s": index_search,
        "must_pay_s": must_pay,
        "wall_over_must_pay": wall_s / must_pay if must_pay else None,
        "wall_over_train": wall_s / train if train else None,
        "overhead_s": wall_s - must_pay,
        # outside every job's stages: start-up, imports, Hydra, MLflow runs, files, summaries
        "outside_stages_s": wall_s - staged,
        "goal": GOAL,
        "met": bool(must_pay) and wall_s <= GOAL * must_pay,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"adds {' '.join(QUICK_OVERRIDES)}")
    parser.add_argument("--losses", nargs="+", help=f"default: {' '.join(LOSSES)} (quick: 2)")
    parser.add_argument(
        "--label", default="", help="the result's name: sweep_cpu_<label>.json (before, after)"
    )
    parser.add_argument(
        "--root", type=Path, help="paths.root of the sweep (store, cache); default: a new folder"
    )
    parser.add_argument("--keep", action="store_true", help="keep the new root folder")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the sweep (after --)")
    args = parser.parse_args(argv)
    if args.losses is None:
        args.losses = list(LOSSES[:2] if args.quick else LOSSES)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    fresh = args.root is None
    root = Path(tempfile.mkdtemp(prefix="sweep-", dir=WORK_DIR)) if fresh else args.root
    root.mkdir(parents=True, exist_ok=True)
    experiment = f"bench_sweep_{uuid.uuid4().hex[:10]}"
    overrides = [*(QUICK_OVERRIDES if args.quick else ()), *args.overrides]
    command = sweep_command(args.losses, root, experiment, overrides)
    print(f"sweep of {len(args.losses)} losses under {root}: {' '.join(command[2:])}", flush=True)
    log_path = root / f"{experiment}.log"
    try:
        wall = run_sweep(command, log_path)
        jobs = job_times(f"sqlite:///{root}/mlflow.db", experiment)
    finally:
        if fresh and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    summary = account(wall, jobs)
    print_summary(summary, jobs)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = write_result(
        f"sweep_{device}" + (f"_{args.label}" if args.label else ""),
        {
            "label": args.label or "current",
            "losses": args.losses,
            "overrides": overrides,
            "fresh_root": fresh,
            "sweep_command": " ".join(["python", *command[1:]]).replace(str(root), "<root>"),
            "summary": summary,
            "jobs": jobs,
        },
        quick=args.quick,
    )
    print(f"wrote {path}")


def print_summary(summary: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
    from bench.common import table

    names = ["prepare", "data", "model", "base_eval", "train", "index", "search", "evaluate"]
    rows = [{"loss": job["loss"], **{n: job["stages_s"].get(n) for n in names}} for job in jobs]
    print(table(rows, ["loss", *names]))
    print(
        f"wall {summary['wall_s']:.1f} s; must pay {summary['must_pay_s']:.1f} s (training "
        f"{summary['train_s']:.1f} + one untrained evaluation {summary['one_base_eval_s']:.1f} + "
        f"final index/search {summary['final_index_search_s']:.1f}): "
        f"{summary['wall_over_must_pay']:.3f} x (goal <= {GOAL}: "
        f"{'met' if summary['met'] else 'NOT met'}); wall / training "
        f"{summary['wall_over_train']:.3f} x"
    )


if __name__ == "__main__":
    main()
