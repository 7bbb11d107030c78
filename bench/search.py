"""Search throughput: exact dense top-k (ExactDenseIndex) and sparse search (SparseIndex).

    python -m bench.search            # CPU: 2,000 queries x 100,000 docs (dim 768); sparse 1,000 x 100,000
    python -m bench.search --quick    # 500 x 20,000; sparse 200 x 10,000, 2 rounds: a check
    python -m bench.search --gpu      # 7,000 queries x 1,000,000 docs on the GPU

Random vectors (float32, as the index stores what ``encode_texts`` returns). Every side below runs
once per round, interleaved, for ``--rounds`` rounds; a ratio is taken round by round and reported
as the median with its min and max (:mod:`bench.interleave`):

* ``dense_gemm_floor``: the same chunked ``queries @ docs.T`` products without any top-k: the
  matrix-multiply floor of an exact search.
* ``dense_search_tensors``: ``ExactDenseIndex.search_tensors`` (chunked scores + running top-k);
  its ratio: floor seconds / its seconds (1.0: top-k and merging cost nothing).
* ``dense_search``: ``ExactDenseIndex.search`` (the same plus the ``{qid: {docid: score}}`` run).
* the same for each ``--chunk-sizes``; ``extra_mib``: peak memory above what was allocated before
  the call (GPU allocator, or this process's RSS sampled every 2 ms on the CPU), the largest of
  the rounds.
* ``sparse_search_tensors``: ``SparseIndex.search_tensors`` (CSR docs x dense query batch, top-k),
  SPLADE-like vectors (``--doc-nnz`` / ``--query-nnz`` non-zeros out of a 30,522-term vocabulary),
  with torch's threads; on the CPU also with one torch thread, compared with
  ``sparse_scipy_product`` (scipy's CSR x dense product of the same matrices, which runs on one
  thread): equal threads on both sides.
"""

from __future__ import annotations

import argparse
import gc
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch

from bench.common import (
    RssSampler,
    device_parser,
    fill_defaults,
    peak_memory_mib,
    reset_peak_memory,
    start_device,
    synchronize,
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

VOCAB = 30_522


class Sides:
    """Named calls to time in interleaved rounds, each remembering its peak extra memory."""

    def __init__(self, target: torch.device) -> None:
        self.target = target
        self.calls: dict[str, Callable[[], float]] = {}
        self.extra_mib: dict[str, float] = {}
        self.info: dict[str, dict[str, Any]] = {}

    def add(self, name: str, fn: Callable[[], object], **info: Any) -> None:
        def side() -> float:
            seconds, extra = measure(fn, self.target)
            self.extra_mib[name] = max(self.extra_mib.get(name, 0.0), extra or 0.0)
            return seconds

        self.calls[name] = side
        self.info[name] = info

    def run(self, rounds: int) -> dict[str, list[float]]:
        def report(number: int, name: str, seconds: float) -> None:
            print(f"  round {number} {name}: {seconds:.3f} s", flush=True)

        return interleaved_rounds(self.calls, rounds, report)


def measure(fn: Callable[[], object], target: torch.device) -> tuple[float, float | None]:
    """Seconds and peak extra memory (MiB: GPU allocator, or sampled RSS on the CPU) of ``fn()``."""
    gc.collect()
    synchronize(target)
    base = torch.cuda.memory_allocated(target) / 2**20 if target.type == "cuda" else 0.0
    reset_peak_memory(target)
    with RssSampler() as rss:
        start = time.perf_counter()
        fn()
        synchronize(target)
        seconds = time.perf_counter() - start
    peak = peak_memory_mib(target)
    return seconds, (peak - base) if peak is not None else rss.peak_extra_mib


def rows_of(
    sides: Sides, seconds: dict[str, list[float]], reference: dict[str, str]
) -> list[dict[str, Any]]:
    """One row per side; ``reference[name]``: the side whose time over this one's is its ratio."""
    rows = []
    for name, per_round in seconds.items():
        row = {"name": name, **sides.info[name], **seconds_stats(per_round)}
        row["queries_per_s"] = row["queries"] / row["median_s"]
        row["extra_mib"] = sides.extra_mib.get(name)
        if name in reference:
            row["reference"] = reference[name]
            row["ratio"] = ratio_stats(seconds[reference[name]], per_round)
        rows.append(row)
    return rows


def dense_benchmarks(args: argparse.Namespace, target: torch.device) -> list[dict[str, Any]]:
    """The GEMM-only floor, ``search_tensors`` and ``search`` per chunk size, interleaved."""
    from lossbench.retrieval.dense import ExactDenseIndex

    generator = torch.Generator().manual_seed(0)
    docs = torch.randn(args.num_docs, args.dim, generator=generator).to(target)
    queries = torch.randn(args.num_queries, args.dim, generator=generator).to(target)
    doc_ids = [f"d{i}" for i in range(args.num_docs)]
    query_ids = [f"q{i}" for i in range(args.num_queries)]
    sides, reference = Sides(target), {}
    shape = {"queries": args.num_queries, "docs": args.num_docs}
    for chunk_size in args.chunk_sizes:
        index = ExactDenseIndex(chunk_size=chunk_size, query_batch_size=args.query_batch_size)
        index.add(docs, doc_ids)
        index.search_tensors(queries[:8], args.k)  # warm-up
        info = {**shape, "chunk_size": chunk_size}
        floor = f"dense_gemm_floor@{chunk_size}"
        sides.add(
            floor,
            partial(gemm_floor, index, queries),
            variant="dense_gemm_floor",
            **info,
        )
        name = f"dense_search_tensors@{chunk_size}"
        sides.add(
            name,
            partial(index.search_tensors, queries, args.k),
            variant="dense_search_tensors",
            **info,
        )
        reference[name] = floor
        if chunk_size == args.chunk_sizes[0]:
            name = f"dense_search@{chunk_size}"
            sides.add(
                name,
                partial(index.search, queries, query_ids, args.k),
                variant="dense_search",
                **info,
            )
            reference[name] = floor
    return rows_of(sides, sides.run(args.rounds), reference)


def gemm_floor(index: Any, queries: torch.Tensor) -> None:
    """The same chunked ``queries @ docs.T`` products as ``search_tensors``, with no top-k."""
    matrix = index._matrix()
    for start in range(0, queries.shape[0], index.query_batch_size):
        batch = queries[start : start + index.query_batch_size]
        for offset in range(0, matrix.shape[0], index.chunk_size):
            batch @ matrix[offset : offset + index.chunk_size].T  # noqa: B018


def random_sparse_docs(num: int, nnz: int, generator: torch.Generator) -> torch.Tensor:
    """A ``(num, VOCAB)`` CSR matrix with ``nnz`` positive weights per row (SPLADE-like docs)."""
    cols = torch.randint(VOCAB, (num, nnz), generator=generator).sort(dim=1).values
    values = torch.rand(num, nnz, generator=generator) * 2
    crows = torch.arange(0, num * nnz + 1, nnz)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR", category=UserWarning)
        return torch.sparse_csr_tensor(
            crows, cols.flatten(), values.flatten(), size=(num, VOCAB), check_invariants=False
        )


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` for the block (None: unchanged)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sparse_benchmarks(args: argparse.Namespace, target: torch.device) -> list[dict[str, Any]]:
    """``SparseIndex.search_tensors`` per chunk size; on the CPU also with one torch thread against
    scipy's CSR x dense product (one thread too), interleaved."""
    from lossbench.retrieval.sparse import SparseIndex

    generator = torch.Generator().manual_seed(1)
    docs = random_sparse_docs(args.sparse_docs, args.doc_nnz, generator)
    queries = torch.zeros(args.sparse_queries, VOCAB)
    cols = torch.randint(VOCAB, (args.sparse_queries, args.query_nnz), generator=generator)
    queries.scatter_(1, cols, torch.rand(args.sparse_queries, args.query_nnz, generator=generator))
    queries = queries.to(target)
    sides, reference = Sides(target), {}
    shape = {"queries": args.sparse_queries, "docs": args.sparse_docs}
    doc_ids = [f"d{i}" for i in range(args.sparse_docs)]
    index = None
    for chunk_size in (262_144, 16_384):
        index = SparseIndex(chunk_size=chunk_size)
        index.add(docs.to(target), doc_ids)
        index.search_tensors(queries[:8], args.k)  # warm-up
        sides.add(
            f"sparse_search_tensors@{chunk_size}",
            partial(index.search_tensors, queries, args.k),
            variant="sparse_search_tensors",
            chunk_size=chunk_size,
            threads=torch.get_num_threads(),
            **shape,
        )
    assert index is not None
    if target.type != "cuda":  # on a GPU the CPU reference would take minutes at its sizes
        import scipy.sparse

        def one_thread(index: Any = index) -> None:
            with torch_threads(1):
                index.search_tensors(queries, args.k)

        one = "sparse_search_tensors@16384,1thread"
        sides.add(
            one, one_thread, variant="sparse_search_tensors", chunk_size=16_384, threads=1, **shape
        )
        reference_matrix = scipy.sparse.csr_matrix(
            (docs.values().numpy(), docs.col_indices().numpy(), docs.crow_indices().numpy()),
            shape=tuple(docs.shape),
        )
        dense_queries = queries.cpu().numpy()

        def scipy_product(batch: int = index.query_batch_size) -> None:
            for start in range(0, dense_queries.shape[0], batch):
                reference_matrix @ dense_queries[start : start + batch].T  # noqa: B018

        sides.add(
            "sparse_scipy_product",
            scipy_product,
            variant="sparse_scipy_product",
            threads=1,
            **shape,
        )
        reference[one] = "sparse_scipy_product"
    return rows_of(sides, sides.run(args.rounds), reference)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = device_parser(__doc__, "7,000 queries x 1,000,000 docs on the GPU")
    parser.add_argument(
        "--num-queries", type=int, help="dense queries (2,000; 7,000 --gpu; 500 quick)"
    )
    parser.add_argument("--num-docs", type=int, help="dense docs (100,000; 1,000,000 --gpu)")
    parser.add_argument("--dim", type=int, default=768, help="vector size (768: BERT-base)")
    parser.add_argument("--k", type=int, default=100, help="top-k (conf/eval: 100)")
    parser.add_argument(
        "--chunk-sizes",
        type=int,
        nargs="+",
        help="docs per chunk (65,536 of conf/index/exact.yaml, 16,384)",
    )
    parser.add_argument(
        "--query-batch-size", type=int, default=1024, help="conf/index/exact.yaml: 1024"
    )
    parser.add_argument("--sparse-docs", type=int, help="sparse docs (100,000; 10,000 quick)")
    parser.add_argument("--sparse-queries", type=int, help="sparse queries (1,000; 200 quick)")
    parser.add_argument("--doc-nnz", type=int, default=120, help="non-zeros per sparse doc")
    parser.add_argument("--query-nnz", type=int, default=30, help="non-zeros per sparse query")
    parser.add_argument("--no-sparse", action="store_true", help="skip the sparse index")
    parser.add_argument(
        "--rounds", type=int, help=f"interleaved rounds of every side ({MIN_ROUNDS}; 2 quick)"
    )
    parser.add_argument(
        "--label", default="", help="suffix of the result's name (search_<device>_<label>.json)"
    )
    args = parser.parse_args(argv)
    defaults = {
        "num_queries": 500 if args.quick else (7000 if args.gpu else 2000),
        "num_docs": 20_000 if args.quick else (1_000_000 if args.gpu else 100_000),
        "chunk_sizes": [65_536] if args.quick else [65_536, 16_384],
        "sparse_docs": 10_000 if args.quick else (1_000_000 if args.gpu else 100_000),
        "sparse_queries": 200 if args.quick else 1000,
        "rounds": 2 if args.quick else MIN_ROUNDS,
    }
    return fill_defaults(args, defaults)


COLUMNS = ["variant", "queries", "docs", "chunk_size", "threads", "median_s", "x", "extra_mib"]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    target = start_device(args)
    print(
        f"search on {target.type}: dense {args.num_queries} queries x {args.num_docs} docs "
        f"(dim {args.dim}, k {args.k}), {args.rounds} interleaved rounds"
    )
    rows = dense_benchmarks(args, target)
    if not args.no_sparse:
        print(
            f"sparse {args.sparse_queries} queries x {args.sparse_docs} docs "
            f"({args.query_nnz} / {args.doc_nnz} non-zeros of {VOCAB})",
            flush=True,
        )
        rows += sparse_benchmarks(args, target)
    print()
    print(table([{**row, "x": ratio_text(row.get("ratio"))} for row in rows], COLUMNS))
    print("x: per round, the reference side's seconds / this side's (dense: the GEMM-only floor,")
    print(
        "   1.0 = top-k and merging cost nothing; sparse one thread: scipy's CSR x dense product)"
    )
    path = write_result(
        f"search_{target.type}" + (f"_{args.label}" if args.label else ""),
        {"args": vars(args), "rounds": args.rounds, "results": rows},
        quick=args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
