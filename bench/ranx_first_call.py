"""What a run pays for ranx in a fresh process: the import, and the first evaluation.

    python -m bench.ranx_first_call             # 5 rounds of every variant, interleaved
    python -m bench.ranx_first_call --quick     # 1 round: check that it works

Each measurement is a new Python process (numba's compiled code lives per process; its disk cache,
which ``make setup`` fills through ``lossbench.experiment.warmup``, is what a new process can load).
The process first imports what ``pipeline.run`` imports before it evaluates (MLflow, Lightning,
transformers, the run's stages; not timed), so ``import_ranx`` is what ranx adds to a run. Then it
evaluates a run the size of the embedded data's test split (100 queries x 100 docs, with ties, the
four default metrics) twice, timing each call. Variants, one process each, interleaved per round:

* ``lossbench``: :func:`lossbench.evaluation.evaluate_run` as a run calls it (arrays built by a
  numba function loaded from the disk cache);
* ``typed_list``: the same, with the arrays' typed list built by ``numba.typed.List(...)`` from
  Python (numba compiles the list's code in every process: what the cached builder saves);
* ``ranx_run``: ranx's own path, ``ranx.evaluate(Qrels(...), Run(...))`` (its typed dictionaries).

Rounds run the variants in that order (one process each), ``--rounds`` times (5). The result,
``bench/results/ranx_first_call_cpu.json``, gives each figure's median and range over the rounds
(seconds), and each variant's first evaluation over ``lossbench``'s of the same round.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.child import child_env
from bench.interleave import MIN_ROUNDS, ratio_stats, seconds_stats

VARIANTS = ("lossbench", "typed_list", "ranx_run")
METRICS = ["ndcg@10", "mrr@10", "recall@100", "map@100"]
REPO = Path(__file__).resolve().parent.parent


def synthetic_case() -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """100 judged queries, 100 retrieved docs each out of 1,200, a tenth of them tied at 0."""
    import random

    rng = random.Random(0)
    docs = [f"doc{i}" for i in range(1200)]
    qrels, run = {}, {}
    for q in range(100):
        qrels[f"q{q}"] = {d: rng.randint(1, 3) for d in rng.sample(docs, 5)}
        retrieved = rng.sample(docs, 100)
        run[f"q{q}"] = {d: (rng.random() if i < 90 else 0.0) for i, d in enumerate(retrieved)}
    return qrels, run


def child(variant: str) -> dict[str, float]:
    """Run in the measured process: import like a run, then time ranx's import and two evaluations."""
    import lightning  # noqa: F401
    import mlflow  # noqa: F401
    import transformers  # noqa: F401

    import lossbench.experiment.stages  # noqa: F401
    import lossbench.experiment.tracking  # noqa: F401

    qrels, run = synthetic_case()
    figures: dict[str, float] = {}
    start = time.perf_counter()
    import ranx  # noqa: F401

    figures["import_ranx"] = time.perf_counter() - start

    if variant == "typed_list":
        import numpy as np
        from numba.typed import List

        from lossbench.evaluation import arrays

        def python_list(rows: Any, offsets: Any) -> Any:
            pieces = zip(offsets[:-1], offsets[1:], strict=True)
            return List([np.ascontiguousarray(rows[a:b]) for a, b in pieces])

        arrays._split_rows = python_list  # type: ignore[assignment]
    for call in ("first_evaluate", "second_evaluate"):
        start = time.perf_counter()
        if variant == "ranx_run":
            from ranx import Qrels, Run, evaluate

            evaluate(Qrels(qrels), Run(run), METRICS, make_comparable=True)
        else:
            from lossbench.evaluation import evaluate_run

            evaluate_run(qrels, run, METRICS)
        figures[call] = time.perf_counter() - start
    return figures


def measure(variant: str) -> dict[str, float]:
    """One fresh process of ``variant``."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.ranx_first_call", "--child", variant],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


FIGURES = ("import_ranx", "first_evaluate", "second_evaluate")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round: check that it works")
    parser.add_argument("--rounds", type=int, help="rounds of every variant (5; 1 with --quick)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else MIN_ROUNDS
    return args


def summarize(samples: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Each variant's figures (median and range over the rounds), and its first evaluation per
    round over the ``lossbench`` variant's of the same round."""
    results: dict[str, dict[str, Any]] = {}
    for variant, runs in samples.items():
        row: dict[str, Any] = {f: seconds_stats([r[f] for r in runs]) for f in FIGURES}
        if variant != "lossbench":
            row["first_evaluate_vs_lossbench"] = ratio_stats(
                [r["first_evaluate"] for r in runs],
                [r["first_evaluate"] for r in samples["lossbench"]],
            )
        results[variant] = row
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return

    from bench.common import table
    from bench.record import write_result

    measure("lossbench")  # fills any cache a changed source left stale; not counted
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for number in range(1, args.rounds + 1):
        for variant in VARIANTS:
            samples[variant].append(measure(variant))
            figures = ", ".join(f"{k} {v:.3f} s" for k, v in samples[variant][-1].items())
            print(f"round {number} {variant}: {figures}", flush=True)
    results = summarize(samples)
    rows = [
        {"variant": variant, **{f: row[f]["median_s"] for f in FIGURES}}
        for variant, row in results.items()
    ]
    print(table(rows, ["variant", *FIGURES]))
    path = write_result(
        "ranx_first_call_cpu",
        {
            "rounds": args.rounds,
            "metrics": METRICS,
            "case": {"queries": 100, "docs_per_query": 100, "collection_docs": 1200},
            "results": results,
            "samples_s": samples,
        },
        quick=args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
