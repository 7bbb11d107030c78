"""Compile ranx's numba kernels once (``make setup`` runs this), so no run pays that JIT later.

numba caches the compiled kernels next to ranx's sources in the virtualenv; this evaluates a toy run
with every metric lossbench reports, which fills that cache.
"""

from __future__ import annotations

import time


def main() -> None:
    from lossbench.evaluation import DEFAULT_METRICS, evaluate_run

    start = time.perf_counter()
    print("compiling ranx's metric kernels (once per environment)...", flush=True)
    qrels = {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 1}}
    run = {"q1": {"d1": 0.9, "d2": 0.5, "d4": 0.1}, "q2": {"d3": 0.2, "d1": 0.7}}
    evaluate_run(qrels, run, DEFAULT_METRICS, engine="ranx")  # pipeline.compare's engine
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
