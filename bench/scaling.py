"""How encoding and search grow with the corpus: time and peak memory, 10k to 300k docs (issue #16).

    python -m bench.scaling                      # tiny model, CPU: 10k, 30k, 100k, 300k synthetic docs
    python -m bench.scaling --sizes 100000 1000000   # other sizes (1M: about an hour on 2 busy cores)
    python -m bench.scaling --quick              # 2k and 6k docs: a check

Each size runs in its own process (so one size's memory cannot hide another's) doing what a run
does with its corpus, through the library's own functions:

* ``encode``: ``index_corpus`` (what ``time/index_s`` and every validation pay) of ``N`` docs into
  an ``ExactDenseIndex``, with a ``TokenCache`` of ``data.token_cache_mib`` (512) as a run has;
* ``search``: ``search_split`` of a fixed ``--queries`` test queries, top-100 (what
  ``time/search_s`` pays): its cost should grow with ``N``, its memory not.

The corpus is a lazy mapping (:class:`SyntheticCorpus`): each text is made from its id when read,
so the benchmark itself holds no text, and any growth of peak memory with ``N`` is the library's.
Per stage: wall seconds, docs/s, and ``peak_mib`` = the process's peak RSS during the stage
(sampled every 2 ms) above its baseline (the model built and warmed up, before the corpus is
read). Memory the run must keep is listed beside encoding's (the index's vectors, its doc-id list,
the token cache), and ``unexplained_mib`` is the rest: it should not grow with ``N``. The search's
peak includes the index; ``score_block_mib`` is the largest block of scores it holds at once (a
query batch x a chunk of 65,536 docs): its memory should stop growing once ``N`` passes a chunk. ``python_peak_mib`` (``--tracemalloc``) is tracemalloc's peak of
Python allocations during encoding (slower; numpy arrays included, torch tensors not).

Writes ``bench/results/scaling_cpu.json`` and the log-log plot ``bench/results/scaling_cpu.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.record import REPO, load_average, results_dir, write_result

SIZES = (10_000, 30_000, 100_000, 300_000)
"""Default sizes: 1.5 decades that a shared 2-core CPU encodes in about half an hour."""
WORDS_PER_DOC = 30
"""Words per synthetic doc (whole-token words: ~32 tokens, under the tiny model's 64)."""


class SyntheticCorpus(Mapping[str, str]):
    """``N`` docs ``d0 .. d<N-1>``, each text made from its id when read (nothing is stored)."""

    def __init__(self, size: int, words: list[str], seed: int = 0) -> None:
        self.size, self.words, self.seed = size, words, seed

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        return (f"d{i}" for i in range(self.size))

    def __getitem__(self, doc_id: str) -> str:
        number = int(doc_id[1:])
        if not 0 <= number < self.size:
            raise KeyError(doc_id)
        rng = random.Random(self.seed * 1_000_003 + number)
        return " ".join(rng.choices(self.words, k=WORDS_PER_DOC))


def tiny_module(cache_mib: float) -> Any:
    """The tiny bi-encoder of ``model=tiny`` with a run's token cache."""
    from lossbench.data.token_cache import TokenCache
    from lossbench.models import BiEncoderModule, DprConfig
    from lossbench.models.backbone import TINY_BERT, minilm_path

    config = DprConfig(
        query_length=24,
        doc_length=64,
        pooling="mean",
        similarity="dot",
        random_init=True,
        backbone_overrides=TINY_BERT,
    )
    module = BiEncoderModule(minilm_path(), config=config).eval()
    module.token_cache = TokenCache(cache_mib)
    return module


def collection_of(size: int, num_queries: int, words: list[str]) -> Any:
    """A collection of ``size`` lazy docs and ``num_queries`` test queries, one judged doc each."""
    from lossbench.data.collection import Collection

    rng = random.Random(1)
    queries = {f"q{i}": " ".join(rng.choices(words, k=6)) for i in range(num_queries)}
    qrels = {qid: {f"d{rng.randrange(size)}": 1} for qid in queries}
    return Collection("scaling", SyntheticCorpus(size, words), {"test": queries}, {"test": qrels})


def measure_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Encode ``size`` docs and search the queries in this process; time and memory of each.

    Memory is the process's peak RSS during a stage above its ``baseline``: the RSS once the model
    is built and has encoded a few warm-up docs (torch's one-off allocations), before the stage
    that reads the corpus. The search's peak therefore includes the index it searches.
    """
    import torch

    from bench.common import RssSampler, word_pool
    from lossbench.data.token_cache import TokenCache
    from lossbench.retrieval import ExactDenseIndex, index_corpus, search_split

    torch.manual_seed(0)
    module = tiny_module(args.token_cache_mib)
    words = word_pool(module.tokenizer)
    warm_up = collection_of(2 * args.batch_size, 8, words)
    search_split(module, warm_up, index_corpus(module, warm_up, ExactDenseIndex()), "test")
    module.token_cache = TokenCache(args.token_cache_mib)  # empty, as at a run's first pass
    collection = collection_of(size, args.queries, words)
    index = ExactDenseIndex()
    result: dict[str, Any] = {"docs": size, "queries": args.queries}
    baseline = RssSampler.rss_bytes()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    with RssSampler() as rss:
        start = time.perf_counter()
        index_corpus(module, collection, index, args.batch_size, 0)
        index.stats()  # the index's one matrix, as the first search builds it
        seconds = time.perf_counter() - start
    if args.tracemalloc:
        result["python_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    ids_bytes = sum(sys.getsizeof(doc_id) + 8 for doc_id in index.doc_ids)
    kept = {
        "index_vectors_mib": index.stats()["size_mb"],
        "index_ids_mib": ids_bytes / 2**20,
        "token_cache_mib": module.token_cache.bytes / 2**20,
    }
    peak = (rss.peak_bytes - baseline) / 2**20
    result["encode"] = {
        "seconds": seconds,
        "docs_per_s": size / seconds,
        "peak_mib": peak,
        **kept,
        "token_cache_full": module.token_cache.full,
        "unexplained_mib": peak - sum(kept.values()),
    }
    with RssSampler() as rss:
        start = time.perf_counter()
        run = search_split(module, collection, index, "test", 100, args.batch_size)
        seconds = time.perf_counter() - start
    batch = min(args.queries, args.batch_size, index.query_batch_size)  # search_split's batches
    result["search"] = {
        "seconds": seconds,
        "queries_per_s": args.queries / seconds,
        "peak_mib": (rss.peak_bytes - baseline) / 2**20,
        "above_start_mib": rss.peak_extra_mib,
        # the largest score block search_tensors holds: a query batch x a chunk of docs, float32
        "score_block_mib": batch * min(size, index.chunk_size) * 4 / 2**20,
        "run_entries": sum(len(docs) for docs in run.values()),
    }
    return result


def run_child(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`measure_size` in a fresh process (its own memory), with the load before and after."""
    command = [sys.executable, "-m", "bench.scaling", "--child", str(size), *child_flags(args)]
    load_before = load_average()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"size {size} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average_1m"] = [load_before, load_average()]
    return result


def child_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--queries", str(args.queries), "--batch-size", str(args.batch_size)]
    flags += ["--token-cache-mib", str(args.token_cache_mib)]
    return flags + (["--tracemalloc"] if args.tracemalloc else [])


def growth_exponent(sizes: list[int], values: list[float]) -> float | None:
    """The slope of log(value) against log(size), least squares: 1.0 is linear growth."""
    import math

    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if v > 0]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Log-log plot: seconds and peak MiB of encoding and search against the corpus size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["docs"] for r in results]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, marker in (("encode", "o"), ("search", "s")):
        left.plot(sizes, [r[stage]["seconds"] for r in results], marker=marker, label=stage)
        right.plot(
            sizes, [max(r[stage]["peak_mib"], 0.1) for r in results], marker=marker, label=stage
        )
    ideal = [results[0]["encode"]["seconds"] * s / sizes[0] for s in sizes]
    left.plot(sizes, ideal, linestyle=":", color="grey", label="linear")
    kept = [r["encode"]["index_vectors_mib"] + r["encode"]["index_ids_mib"] for r in results]
    right.plot(sizes, kept, linestyle=":", label="index (vectors + ids)")
    right.plot(
        sizes, [r["encode"]["token_cache_mib"] for r in results], linestyle=":", label="token cache"
    )
    right.plot(
        sizes,
        [r["search"]["score_block_mib"] for r in results],
        linestyle="--",
        label="score block",
    )
    for axis, label in ((left, "seconds"), (right, "peak RSS above baseline, MiB")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("docs in the corpus")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle("tiny model on the CPU: encoding (index_corpus) and search (search_split)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 6k docs: a check")
    parser.add_argument("--sizes", type=int, nargs="+", help="corpus sizes (10k 30k 100k 300k)")
    parser.add_argument("--queries", type=int, default=1000, help="test queries searched (1,000)")
    parser.add_argument("--batch-size", type=int, default=128, help="data.inference_batch_size")
    parser.add_argument("--token-cache-mib", type=float, default=512, help="data.token_cache_mib")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [2_000, 6_000] if args.quick else list(SIZES)
    if args.quick:
        args.queries = min(args.queries, 200)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child is not None:
        from bench.common import quiet_libraries

        quiet_libraries()
        print(json.dumps(measure_size(args.child, args)))
        return
    results = []
    for size in sorted(args.sizes):
        print(f"{size:,} docs ...", flush=True)
        results.append(run_child(size, args))
        row = results[-1]
        print(
            f"  encode {row['encode']['seconds']:.1f} s (peak +{row['encode']['peak_mib']:.0f} "
            f"MiB), search {row['search']['seconds']:.2f} s "
            f"(peak +{row['search']['peak_mib']:.0f} MiB)",
            flush=True,
        )
    sizes = [r["docs"] for r in results]
    exponents = {
        f"{stage}_{what}": growth_exponent(sizes, [r[stage][what] for r in results])
        for stage in ("encode", "search")
        for what in ("seconds", "peak_mib")
    }
    out = results_dir(args.quick)
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "scaling_cpu.png")
    path = write_result(
        "scaling_cpu",
        {
            "model": "tiny (model=tiny: 2 layers, hidden 32, MiniLM's tokenizer)",
            "words_per_doc": WORDS_PER_DOC,
            "args": {k: v for k, v in vars(args).items() if k != "child"},
            "results": results,
            "growth_exponents": exponents,
            "plot": "scaling_cpu.png",
        },
        quick=args.quick,
    )
    print(f"growth exponents (1.0 = linear): {exponents}")
    print(f"wrote {path} and {out / 'scaling_cpu.png'}")


if __name__ == "__main__":
    main()
