"""GradCache (``grad_cache.chunk_size``): its step time against the plain step at the same batch, and
its peak memory as the batch grows, both in one invocation.

    python -m bench.grad_cache            # CPU: MiniLM, in-batch CE, 16 queries x 2 docs, 16 / 64 tokens
    python -m bench.grad_cache --quick    # small shapes: check that it works
    python -m bench.grad_cache --gpu      # GPU shapes: 128 queries x 2 docs, 32 / 180 tokens, bf16

Measured (on the GPU when there is one, else the CPU):

* ``time``: one optimizer step of ``BiEncoderModule`` with ``InBatchCrossEntropy`` on a pre-built
  ``TrainBatch`` (``compute_losses``, ``backward``, AdamW step), plain (``uncached``) and with
  GradCache (``cached``, ``--chunk`` texts per chunk), dropout on as in training. Same module, same
  batch; rounds alternate the two sides (``--rounds``, each side ``--steps`` steps after a warm-up
  step; one torch thread on the CPU, ``--threads``) and each round's ratio ``cached / uncached``
  uses the uncached steps just before and after it; the reported ``step_ratio`` is the median over rounds (goal <= 1.4: GradCache encodes every
  text twice, once without a graph).
* ``memory``: the peak memory of one step's losses and backward pass (after a warm-up step, so
  that gradients and optimizer state are allocated before) at growing batch sizes
  (``--memory-batches``), plain and cached with the same chunk. On a GPU: peak bytes allocated by
  tensors (``torch.cuda.max_memory_allocated``) above the memory before the step. On the CPU: peak
  resident memory above the RSS before the step, each measurement in a fresh process with glibc's
  mmap threshold fixed at 64 KiB (``MALLOC_MMAP_THRESHOLD_``), so that freed activations go back to
  the system at once instead of staying in the heap: RSS then follows the live tensors. Goal: the
  cached peak grows with the chunk, not the batch (``cached_growth`` much below
  ``uncached_growth``: the peak's increase from the smallest to the largest batch).

Writes ``bench/results/grad_cache_<device>[_quick].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from bench.common import (
    RssSampler,
    device,
    make_texts,
    minilm_folder,
    peak_memory_mib,
    quiet_libraries,
    reset_peak_memory,
    synchronize,
    table,
    word_pool,
)
from bench.record import write_result


def build(args: argparse.Namespace, target: torch.device) -> Any:
    """The MiniLM bi-encoder with in-batch cross-entropy and AdamW, on ``target``."""
    from lossbench.loss import InBatchCrossEntropy
    from lossbench.models import BiEncoderModule, DprConfig

    torch.manual_seed(0)
    config = DprConfig(query_length=args.query_length, doc_length=args.doc_length, pooling="first")
    module = BiEncoderModule(minilm_folder(), config, [InBatchCrossEntropy()]).to(target)
    module.train()
    return module


def make_batch(
    module: Any, num_queries: int, args: argparse.Namespace, target: torch.device
) -> Any:
    """A full-length ``TrainBatch``: ``num_queries`` queries with ``args.docs`` docs each."""
    from lossbench.data.batches import TrainCollator
    from lossbench.data.datasets import TrainSample

    words = word_pool(module.tokenizer)
    queries = make_texts(words, num_queries, args.query_length, seed=1)
    docs = make_texts(words, num_queries * args.docs, args.doc_length, seed=2)
    samples = [
        TrainSample(
            f"q{i}",
            query,
            [f"d{i}_{j}" for j in range(args.docs)],
            docs[i * args.docs : (i + 1) * args.docs],
            [1.0] + [0.0] * (args.docs - 1),
        )
        for i, query in enumerate(queries)
    ]
    collate = TrainCollator(module.tokenizer, args.query_length, args.doc_length)
    return collate(samples).to(target)


class Stepper:
    """One optimizer step of ``module`` on ``batch``, with or without GradCache."""

    def __init__(self, module: Any, batch: Any, target: torch.device, bf16: bool) -> None:
        self.module, self.batch, self.target = module, batch, target
        self.optimizer = torch.optim.AdamW(module.parameters(), lr=1e-6)
        self.autocast = torch.autocast(target.type, dtype=torch.bfloat16, enabled=bf16)
        # the re-encoding runs under the first pass's autocast, as under Lightning's precision
        module._forward_context = lambda: self.autocast

    def forward_backward(self, chunk_size: int | None) -> None:
        """The losses and the gradients: where the activations live (no optimizer step)."""
        self.module.set_grad_cache(chunk_size)
        with self.autocast:
            loss = self.module.compute_losses(self.batch)["loss"]
        self.module.backward(loss)

    def __call__(self, chunk_size: int | None) -> float:
        """Seconds of one step (the GPU synchronized at both ends)."""
        synchronize(self.target)
        start = time.perf_counter()
        self.forward_backward(chunk_size)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=False)  # the gradients' memory stays allocated
        synchronize(self.target)
        return time.perf_counter() - start


def time_steps(args: argparse.Namespace, target: torch.device) -> dict[str, Any]:
    """Interleaved rounds: uncached, cached, uncached, ... each ``args.steps`` steps."""
    module = build(args, target)
    stepper = Stepper(module, make_batch(module, args.queries, args, target), target, args.bf16)
    stepper(None), stepper(args.chunk)  # warm-up: allocator, optimizer state, kernels
    uncached: list[list[float]] = [[stepper(None) for _ in range(args.steps)]]
    cached: list[list[float]] = []
    for _ in range(args.rounds):
        cached.append([stepper(args.chunk) for _ in range(args.steps)])
        uncached.append([stepper(None) for _ in range(args.steps)])
    ratios = [
        statistics.fmean(cached[r]) / statistics.fmean(uncached[r] + uncached[r + 1])
        for r in range(args.rounds)
    ]
    return {
        "queries": args.queries,
        "docs_per_query": args.docs,
        "chunk_size": args.chunk,
        "uncached_step_s": statistics.median(sum(uncached, [])),
        "cached_step_s": statistics.median(sum(cached, [])),
        "round_ratios": ratios,
        "step_ratio": statistics.median(ratios),
        "runs_s": {"uncached": uncached, "cached": cached},
    }


def measure_memory(
    args: argparse.Namespace, target: torch.device, queries: int, chunk: int | None
) -> float:
    """Peak MiB of one step's losses and backward pass above the memory before them (after a
    warm-up step: gradients and optimizer state allocated), in this process."""
    module = build(args, target)
    stepper = Stepper(module, make_batch(module, queries, args, target), target, args.bf16)
    stepper(chunk)
    if target.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(target) / 2**20
        reset_peak_memory(target)
        stepper.forward_backward(chunk)
        peak = peak_memory_mib(target)
        assert peak is not None
        return peak - before
    with RssSampler(interval_s=0.001) as rss:
        stepper.forward_backward(chunk)
    return rss.peak_extra_mib


def memory_in_child(args: argparse.Namespace, queries: int, chunk: int | None) -> float:
    """:func:`measure_memory` in a fresh CPU process whose freed memory goes back to the system."""
    command = [sys.executable, "-m", "bench.grad_cache", *args.forwarded, "--child", str(queries)]
    command += ["--child-chunk", str(chunk or 0)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return float(json.loads(output.strip().splitlines()[-1])["peak_mib"])


def memory_rows(args: argparse.Namespace, target: torch.device) -> list[dict[str, Any]]:
    rows = []
    for queries in args.memory_batches:
        row: dict[str, Any] = {"queries": queries, "texts": queries * (1 + args.docs)}
        for name, chunk in (("uncached", None), ("cached", args.chunk)):
            if target.type == "cuda":
                row[f"{name}_peak_mib"] = measure_memory(args, target, queries, chunk)
            else:
                row[f"{name}_peak_mib"] = memory_in_child(args, queries, chunk)
        rows.append(row)
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes: check that it works")
    parser.add_argument("--gpu", action="store_true", help="GPU shapes, bf16")
    parser.add_argument("--queries", type=int, help="queries per batch of the timing")
    parser.add_argument("--docs", type=int, default=2, help="docs per query")
    parser.add_argument("--chunk", type=int, help="texts per GradCache chunk")
    parser.add_argument("--query-length", type=int)
    parser.add_argument("--doc-length", type=int)
    parser.add_argument("--steps", type=int, help="steps per side and round")
    parser.add_argument("--rounds", type=int, help="timing rounds")
    parser.add_argument(
        "--memory-batches", type=int, nargs="+", help="batch sizes of the memory rows"
    )
    parser.add_argument("--threads", type=int, help="torch threads (CPU default 1: steadier)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-chunk", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = {  # queries, chunk, query length, doc length, steps, rounds, memory batches
        "gpu": (128, 32, 32, 180, 5, 5, [32, 64, 128, 256]),
        "cpu": (16, 8, 16, 64, 2, 5, [8, 16, 32, 64]),
        "quick": (4, 2, 8, 16, 1, 2, [4, 8]),
    }
    key = "quick" if args.quick else "gpu" if args.gpu else "cpu"
    defaults = dict(
        zip(
            ("queries", "chunk", "query_length", "doc_length", "steps", "rounds", "memory_batches"),
            shapes[key],
            strict=True,
        )
    )
    args.forwarded = sys.argv[1:]
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.bf16 = args.gpu and torch.cuda.is_available()
    if args.threads is None and not torch.cuda.is_available():
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main() -> None:
    args = parse_args()
    quiet_libraries()
    target = device()
    if args.child is not None:  # one memory measurement, in its own process
        peak = measure_memory(args, target, args.child, args.child_chunk or None)
        print(json.dumps({"peak_mib": peak}))
        return
    timing = time_steps(args, target)
    print(
        f"\nGradCache step time ({target.type}, {args.queries} queries x {args.docs} docs, "
        f"chunk {args.chunk}, median of {args.rounds} rounds)\n"
    )
    print(
        table([timing], ["queries", "chunk_size", "uncached_step_s", "cached_step_s", "step_ratio"])
    )
    memory = memory_rows(args, target)
    first, last = memory[0], memory[-1]
    growth = {
        f"{name}_growth_mib": last[f"{name}_peak_mib"] - first[f"{name}_peak_mib"]
        for name in ("uncached", "cached")
    }
    print(f"\nPeak memory of one step, MiB above the step's start (chunk {args.chunk})\n")
    print(table(memory, ["queries", "texts", "uncached_peak_mib", "cached_peak_mib"]))
    print("\n" + ", ".join(f"{k}={v:.1f}" for k, v in growth.items()))
    payload = {
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("forwarded", "child", "child_chunk")
        },
        "goals": {"step_ratio_max": 1.4},
        "time": timing,
        "memory": {"rows": memory, **growth},
    }
    path = write_result(f"grad_cache_{target.type}", payload, quick=args.quick)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
