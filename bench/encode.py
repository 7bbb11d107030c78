"""Indexing throughput: lossbench's corpus encoding vs a bare forward-only loop, in docs/s.

    python -m bench.encode            # CPU: MiniLM, 1,024 docs of 40 tokens, batches of 128
    python -m bench.encode --quick    # 256 docs, 2 rounds: check that it works
    python -m bench.encode --gpu      # H100 shapes: both models, 20,480 docs of 180 tokens, batches of 512

Measured after a warm-up, in ``--rounds`` interleaved rounds (A B C A B C ...: a drifting load hits
every variant alike); each variant's ratio to ``bare_forward`` is taken round by round, and the
figure is the median of those ratios with their min and max, beside the raw seconds of both:

* ``tokenizer``: the fast tokenizer alone, one process, called as ``InferenceCollator`` calls it
  (batches of ``--batch-size`` texts, truncation, padding, tensors) -- docs/s per CPU process; with
  ``--tokenizer-parallelism`` also with ``TOKENIZERS_PARALLELISM=true`` (Rust threads), last.
* ``bare_forward``: the same texts pre-tokenized into the same length-sorted batches, already on
  the device, the backbone's forward in ``torch.inference_mode()`` (bf16 autocast on a GPU), CLS
  vector out: the ceiling.
* ``lossbench_w<N>``: ``lossbench.retrieval.encode_texts`` (what ``index_corpus`` runs: length
  sorting, ``InferenceCollator`` tokenizing in ``N`` DataLoader workers, transfer, inference mode,
  autocast, float32 vectors), worker start-up included, for each ``--num-workers``. With 0 workers
  on a GPU (``lossbench_w0_thread``) a background thread tokenizes ahead, every core at once
  (``tokenized_ahead``); on the CPU the main process tokenizes in line. Each of these passes starts
  with the module's token cache emptied: a run's first pass over its corpus.
* ``lossbench_cached``: the same with every text's ids in the module's ``TokenCache``: a run's
  later passes (validations, the final index), forward-only but for building the batches.

Ratio: ``lossbench docs/s / bare_forward docs/s`` (goal >= 0.85). Peak GPU memory per variant shows
that encoding memory is bounded by the batch, not the corpus (beyond the (N, dim) output).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.common import (
    MODELS,
    add_int_options,
    bf16_autocast,
    device_parser,
    fill_defaults,
    make_texts,
    model_folder,
    peak_memory_mib,
    random_init,
    reset_peak_memory,
    start_device,
    synchronize,
    table,
    word_pool,
)
from bench.interleave import (
    MIN_ROUNDS,
    interleaved_rounds,
    ratio_stats,
    ratio_text,
    seconds_stats,
)
from bench.record import write_result


def gpu_workers() -> int:
    from lossbench.training.hardware import gpu_workers as workers

    return workers()


def time_tokenizer(tokenizer: Any, texts: list[str], batch_size: int, max_length: int) -> float:
    """Docs/s of the tokenizer called as InferenceCollator calls it (one process)."""
    from lossbench.data.batches import _tokenize

    _tokenize(tokenizer, texts[:batch_size], max_length)  # warm-up
    start = time.perf_counter()
    for offset in range(0, len(texts), batch_size):
        _tokenize(tokenizer, texts[offset : offset + batch_size], max_length)
    return len(texts) / (time.perf_counter() - start)


def bare_forward_pass(
    module: Any, texts: list[str], batch_size: int, length: int, target: torch.device
) -> Callable[[], None]:
    """One pass of the backbone alone over the same texts, pre-tokenized and already on the device:
    the same length-sorted batches (longest first, each padded to its longest text, at most
    ``length`` tokens) as ``encode_texts`` builds, so the only difference left is lossbench's own
    work (tokenizing, collating, moving, pooling) and the floor is a true one."""
    from lossbench.data.batches import _tokenize

    backbone = module.backbone.eval()
    ordered = sorted(texts, key=len, reverse=True)
    batches = [
        {
            name: tensor.to(target)
            for name, tensor in _tokenize(
                module.tokenizer, ordered[offset : offset + batch_size], length
            ).items()
        }
        for offset in range(0, len(ordered), batch_size)
    ]

    def run() -> None:
        backbone.eval()  # encode_texts restores the module's mode after each pass
        with torch.inference_mode(), bf16_autocast(target):
            for encoding in batches:
                backbone(**encoding).last_hidden_state[:, 0].float()

    with torch.inference_mode(), bf16_autocast(target):  # warm-up
        backbone(**batches[0]).last_hidden_state[:, 0].float()
    return run


def lossbench_pass(
    module: Any, texts: list[str], batch_size: int, num_workers: int, cached: bool = False
) -> Callable[[], None]:
    """One pass of ``encode_texts`` over ``texts`` (tokenization in ``num_workers`` workers): a
    first pass (the module's token cache emptied before it), or with ``cached`` a later pass of a
    run (every text's ids already in the cache)."""
    from lossbench.data.datasets import TextSample
    from lossbench.data.token_cache import TokenCache
    from lossbench.retrieval.encode import encode_texts

    samples = [TextSample(f"d{i}", text) for i, text in enumerate(texts)]
    if cached:  # warm-up: every text's ids into the module's cache
        encode_texts(module, samples, "doc", batch_size, 0, progress=False)
    else:
        encode_texts(module, samples[:batch_size], "doc", batch_size, 0, progress=False)

    def run() -> None:
        if cached:
            encode_texts(module, samples, "doc", batch_size, num_workers, progress=False)
            return
        kept, module.token_cache = module.token_cache, TokenCache()  # an empty one for this pass
        try:
            encode_texts(module, samples, "doc", batch_size, num_workers, progress=False)
        finally:
            module.token_cache = kept

    return run


def time_rounds(
    passes: dict[str, Callable[[], None]], rounds: int, num_docs: int, target: torch.device
) -> dict[str, dict[str, Any]]:
    """Every pass once per round, interleaved (:func:`bench.interleave.interleaved_rounds`); each
    variant's ratio to ``bare_forward`` is a docs/s ratio per round (bare seconds / its seconds)."""
    peaks: dict[str, float | None] = {}

    def timed(name: str, run: Callable[[], None]) -> Callable[[], float]:
        def side() -> float:
            synchronize(target)
            reset_peak_memory(target)
            start = time.perf_counter()
            run()
            synchronize(target)
            seconds = time.perf_counter() - start
            peaks[name] = peak_memory_mib(target)
            return seconds

        return side

    def report(number: int, name: str, seconds: float) -> None:
        print(f"  round {number} {name}: {num_docs / seconds:,.0f} docs/s", flush=True)

    sides = {name: timed(name, run) for name, run in passes.items()}
    seconds = interleaved_rounds(sides, rounds, report)
    results = {}
    for name, per_round in seconds.items():
        results[name] = {
            **seconds_stats(per_round),
            "docs_per_s": num_docs / statistics.median(per_round),
            "peak_mem_mib": peaks[name],
        }
        if name != "bare_forward":
            results[name]["ratio_to_bare"] = ratio_stats(seconds["bare_forward"], per_round)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = device_parser(__doc__, "the H100 shapes (both models, 180 tokens)", models=True)
    add_int_options(
        parser,
        {
            "--num-docs": "docs encoded per pass (1,024; 20,480 --gpu)",
            "--doc-length": "tokens per doc (40; 180 with --gpu)",
            "--batch-size": "docs per batch (128; 512 with --gpu)",
            "--rounds": f"interleaved rounds of every variant ({MIN_ROUNDS}; 2 quick)",
            "--threads": "torch CPU threads (default: torch's; 1 is steadier on a busy machine)",
        },
    )
    parser.add_argument(
        "--num-workers", type=int, nargs="+", help="worker counts to time (0 1; 0 1 8 with --gpu)"
    )
    parser.add_argument(
        "--label", default="", help="suffix of the result's name (encode_<device>_<label>.json)"
    )
    parser.add_argument(
        "--tokenizer-parallelism",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the tokenizer with TOKENIZERS_PARALLELISM=true (last)",
    )
    args = parser.parse_args(argv)
    gpu = args.gpu
    defaults = {
        "models": list(MODELS) if gpu else ["minilm"],
        "num_docs": 256 if args.quick else (20_480 if gpu else 1024),
        "doc_length": 180 if gpu else 40,
        "batch_size": 512 if gpu else 128,
        "num_workers": [0, 1, gpu_workers()] if gpu else [0, 1],
        "rounds": 2 if args.quick else MIN_ROUNDS,
    }
    return fill_defaults(args, defaults)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    target = start_device(args)
    from lossbench.models import BiEncoderModule
    from lossbench.models.config import DprConfig

    print(
        f"encoding on {target.type}: {args.num_docs} docs x {args.doc_length} tokens, "
        f"batches of {args.batch_size}"
    )
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    tokenizer_rows: dict[str, float] = {}
    texts: list[str] = []
    tokenizer: Any = None
    for model in args.models:
        config = DprConfig(
            doc_length=args.doc_length, pooling="first", random_init=random_init(model)
        )
        module = BiEncoderModule(model_folder(model), config=config).to(target).eval()
        tokenizer = module.tokenizer
        texts = make_texts(word_pool(tokenizer), args.num_docs, args.doc_length, seed=5)
        if "tokenizer" not in tokenizer_rows:
            print("tokenizer ...", flush=True)
            tokenizer_rows["tokenizer"] = time_tokenizer(
                tokenizer, texts, args.batch_size, args.doc_length
            )
        print(
            f"[{model}] bare forward, encode_texts with {args.num_workers} worker(s) ...",
            flush=True,
        )
        passes = {
            "bare_forward": bare_forward_pass(
                module, texts, args.batch_size, args.doc_length, target
            )
        }
        names = {w: variant_name(w, target) for w in args.num_workers}
        for workers, name in names.items():
            passes[name] = lossbench_pass(module, texts, args.batch_size, workers)
        # a cached pass fills the module's cache in its warm-up; the cold passes use empty ones
        passes["lossbench_cached"] = lossbench_pass(module, texts, args.batch_size, 0, cached=True)
        runs = time_rounds(passes, args.rounds, args.num_docs, target)
        for workers, name in names.items():
            runs[name]["num_workers"] = workers
        runs["lossbench_cached"]["num_workers"] = 0
        for name, run in runs.items():
            ratio = run.get("ratio_to_bare")
            rows.append(
                {
                    "model": model,
                    "variant": name,
                    "docs_per_s": run["docs_per_s"],
                    "x bare": ratio_text(ratio),
                    "peak_mem_mib": run["peak_mem_mib"],
                    "num_workers": run.get("num_workers"),
                }
            )
        results[model] = runs
        save(args, target, results, tokenizer_rows)  # after each model: a cut-off run keeps it
        del module
        if target.type == "cuda":
            torch.cuda.empty_cache()
    if args.tokenizer_parallelism and tokenizer is not None:
        print("tokenizer, TOKENIZERS_PARALLELISM=true ...", flush=True)
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        tokenizer_rows["tokenizer_parallel"] = time_tokenizer(
            tokenizer, texts, args.batch_size, args.doc_length
        )
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    for name, rate in tokenizer_rows.items():
        rows.append({"model": "-", "variant": name, "docs_per_s": rate})
    print()
    print(
        table(
            rows,
            ["model", "variant", "docs_per_s", "x bare", "peak_mem_mib", "num_workers"],
        )
    )
    print("x bare: per round, bare seconds / the variant's seconds; median [min-max] of the rounds")
    print("goal: lossbench docs/s >= 0.85 x bare_forward docs/s")
    print(f"wrote {save(args, target, results, tokenizer_rows)}")


def variant_name(workers: int, target: torch.device) -> str:
    """``lossbench_w<N>``; 0 workers on a GPU tokenize ahead in a thread: ``lossbench_w0_thread``."""
    return f"lossbench_w{workers}" + ("_thread" if workers == 0 and target.type == "cuda" else "")


def save(
    args: argparse.Namespace,
    target: torch.device,
    results: dict[str, Any],
    tokenizer_rows: dict[str, float],
) -> Any:
    name = f"encode_{target.type}" + (f"_{args.label}" if args.label else "")
    return write_result(
        name,
        {
            "shape": {k: getattr(args, k) for k in ("num_docs", "doc_length", "batch_size")},
            "rounds": args.rounds,
            "precision": "bf16 autocast" if target.type == "cuda" else "fp32",
            "results": results,
            "tokenizer_docs_per_s": tokenizer_rows,
            "goal": {"min_ratio_to_bare": 0.85},
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
