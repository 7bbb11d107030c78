"""Compile ranx's metric kernels and lossbench's array builder once (``make setup`` runs this).

numba caches compiled kernels next to their sources (ranx's in the virtualenv, lossbench's in
``src/lossbench/evaluation/__pycache__``); evaluating a toy run with every metric lossbench reports
fills those caches, so a run loads them instead of compiling (``bench/ranx_first_call.py``); ranx's
own ``Qrels``/``Run`` path, which ``pipeline.compare``'s significance tests take, is compiled too.
"""

from __future__ import annotations

import time


def main() -> None:
    from ranx import Qrels, Run, evaluate

    from lossbench.evaluation import DEFAULT_METRICS, evaluate_run

    start = time.perf_counter()
    print("compiling ranx's metric kernels (once per environment)...", flush=True)
    qrels = {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 1}}
    run = {"q1": {"d1": 0.9, "d2": 0.5, "d4": 0.1}, "q2": {"d3": 0.2, "d1": 0.7}}
    evaluate_run(qrels, run, DEFAULT_METRICS)  # a run's evaluations
    evaluate(Qrels(qrels), Run(run), list(DEFAULT_METRICS))  # pipeline.compare's ranx.compare
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
