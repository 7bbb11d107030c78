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

The table gives the median over rounds of each figure (seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "bench.ranx_first_call", "--child", variant],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return

    from bench.common import result_name, table, write_result

    rounds = 1 if args.quick else args.rounds
    measure("lossbench")  # fills any cache a changed source left stale; not counted
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            samples[variant].append(measure(variant))
    rows = []
    for variant, runs in samples.items():
        row: dict[str, Any] = {"variant": variant}
        for figure in ("import_ranx", "first_evaluate", "second_evaluate"):
            row[figure] = statistics.median(r[figure] for r in runs)
        rows.append(row)
    print(table(rows, ["variant", "import_ranx", "first_evaluate", "second_evaluate"]))
    import torch

    name = result_name("ranx_first_call", args.quick, torch.device("cpu"))
    path = write_result(name, {"rounds": rounds, "median_s": rows, "samples_s": samples})
    print(f"\n{path}")


if __name__ == "__main__":
    main()
