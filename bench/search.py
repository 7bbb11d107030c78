"""Search throughput: exact dense top-k (ExactDenseIndex) and sparse search (SparseIndex), queries/s.

    python -m bench.search            # CPU: 7,000 queries x 100,000 docs (dim 768); sparse 1,000 x 100,000
    python -m bench.search --quick    # 1,000 x 20,000; sparse 200 x 10,000: check that it works
    python -m bench.search --gpu      # 7,000 queries x 1,000,000 docs on the GPU

Random vectors (float32, as the index stores what ``encode_texts`` returns). Measured:

* ``dense_gemm_floor``: the same chunked ``queries @ docs.T`` products without any top-k: the
  matrix-multiply floor of an exact search.
* ``dense_search_tensors``: ``ExactDenseIndex.search_tensors`` (chunked scores + running top-k).
* ``dense_search``: ``ExactDenseIndex.search`` (the same plus the ``{qid: {docid: score}}`` run).
* the same for each ``--chunk-sizes`` (peak extra memory: GPU allocator, or sampled RSS on the CPU).
* ``sparse_search_tensors``: ``SparseIndex.search_tensors`` (CSR docs x dense query batch, top-k),
  SPLADE-like vectors (``--doc-nnz`` / ``--query-nnz`` non-zeros out of a 30,522-term vocabulary);
  ``sparse_scipy_floor``: scipy's CSR x dense product of the same matrices (one thread), a reference.
"""

from __future__ import annotations

import argparse
import gc
import time
import warnings
from typing import Any

import torch

from bench.common import (
    RssSampler,
    device,
    peak_memory_mib,
    quiet_libraries,
    reset_peak_memory,
    result_name,
    synchronize,
    table,
    write_result,
)

VOCAB = 30_522


def measure(fn: Any, target: torch.device) -> tuple[float, float | None, Any]:
    """Seconds, peak extra memory (MiB) and the result of ``fn()``."""
    gc.collect()
    synchronize(target)
    base = torch.cuda.memory_allocated(target) / 2**20 if target.type == "cuda" else 0.0
    reset_peak_memory(target)
    with RssSampler() as rss:
        start = time.perf_counter()
        result = fn()
        synchronize(target)
        seconds = time.perf_counter() - start
    peak = peak_memory_mib(target)
    extra = (peak - base) if peak is not None else rss.peak_extra_mib
    return seconds, extra, result


def dense_benchmarks(args: argparse.Namespace, target: torch.device) -> list[dict[str, Any]]:
    from lossbench.retrieval.dense import ExactDenseIndex

    generator = torch.Generator().manual_seed(0)
    docs = torch.randn(args.num_docs, args.dim, generator=generator).to(target)
    queries = torch.randn(args.num_queries, args.dim, generator=generator).to(target)
    doc_ids = [f"d{i}" for i in range(args.num_docs)]
    query_ids = [f"q{i}" for i in range(args.num_queries)]
    rows: list[dict[str, Any]] = []
    for chunk_size in args.chunk_sizes:
        index = ExactDenseIndex(chunk_size=chunk_size, query_batch_size=args.query_batch_size)
        index.add(docs, doc_ids)
        index.search_tensors(queries[:8], args.k)  # warm-up

        def floor(index: ExactDenseIndex = index) -> None:
            matrix = index._matrix()
            for start in range(0, queries.shape[0], index.query_batch_size):
                batch = queries[start : start + index.query_batch_size]
                for offset in range(0, matrix.shape[0], index.chunk_size):
                    batch @ matrix[offset : offset + index.chunk_size].T  # noqa: B018

        seconds, memory, _ = measure(floor, target)
        shape = {"chunk_size": chunk_size, "query_batch_size": args.query_batch_size}
        rows.append(
            {"variant": "dense_gemm_floor", **shape, "seconds": seconds, "extra_mib": memory}
        )
        seconds, memory, _ = measure(
            lambda index=index, queries=queries: index.search_tensors(queries, args.k), target
        )
        rows.append(
            {"variant": "dense_search_tensors", **shape, "seconds": seconds, "extra_mib": memory}
        )
        if chunk_size == args.chunk_sizes[0]:
            seconds, memory, _ = measure(
                lambda index=index: index.search(queries, query_ids, args.k), target
            )
            rows.append(
                {"variant": "dense_search", **shape, "seconds": seconds, "extra_mib": memory}
            )
        del index
    floors = {
        row["chunk_size"]: row["seconds"] for row in rows if row["variant"] == "dense_gemm_floor"
    }
    for row in rows:
        row["queries"], row["docs"] = args.num_queries, args.num_docs
        row["queries_per_s"] = args.num_queries / row["seconds"]
        row["floor_over_time"] = floors[row["chunk_size"]] / row["seconds"]
    return rows


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


def sparse_benchmarks(args: argparse.Namespace, target: torch.device) -> list[dict[str, Any]]:
    from lossbench.retrieval.sparse import SparseIndex

    generator = torch.Generator().manual_seed(1)
    docs = random_sparse_docs(args.sparse_docs, args.doc_nnz, generator)
    queries = torch.zeros(args.sparse_queries, VOCAB)
    cols = torch.randint(VOCAB, (args.sparse_queries, args.query_nnz), generator=generator)
    queries.scatter_(1, cols, torch.rand(args.sparse_queries, args.query_nnz, generator=generator))
    rows = []
    index = None
    for chunk_size in (262_144, 16_384):
        index = SparseIndex(chunk_size=chunk_size)
        index.add(docs.to(target), [f"d{i}" for i in range(args.sparse_docs)])
        queries = queries.to(target)
        index.search_tensors(queries[:8], args.k)  # warm-up
        seconds, memory, _ = measure(
            lambda index=index, queries=queries: index.search_tensors(queries, args.k), target
        )
        rows.append(
            {
                "variant": "sparse_search_tensors",
                "chunk_size": chunk_size,
                "query_batch_size": index.query_batch_size,
                "seconds": seconds,
                "extra_mib": memory,
            }
        )
    assert index is not None
    if target.type != "cuda":  # on a GPU the CPU reference would take minutes at its sizes
        import scipy.sparse

        matrix = docs.to("cpu")
        reference = scipy.sparse.csr_matrix(
            (matrix.values().numpy(), matrix.col_indices().numpy(), matrix.crow_indices().numpy()),
            shape=tuple(matrix.shape),
        )
        dense_queries = queries.cpu().numpy()

        def scipy_floor() -> None:
            for start in range(0, dense_queries.shape[0], index.query_batch_size):
                reference @ dense_queries[start : start + index.query_batch_size].T  # noqa: B018

        seconds, memory, _ = measure(scipy_floor, torch.device("cpu"))
        rows.append(
            {
                "variant": "sparse_scipy_floor",
                "query_batch_size": index.query_batch_size,
                "seconds": seconds,
                "extra_mib": memory,
            }
        )
    for row in rows:
        row["queries"], row["docs"] = args.sparse_queries, args.sparse_docs
        row["queries_per_s"] = args.sparse_queries / row["seconds"]
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check that it works")
    parser.add_argument(
        "--gpu", action="store_true", help="7,000 queries x 1,000,000 docs on the GPU"
    )
    parser.add_argument("--num-queries", type=int, help="dense queries (7,000; 1,000 quick)")
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
    args = parser.parse_args(argv)
    defaults = {
        "num_queries": 1000 if args.quick else 7000,
        "num_docs": 20_000 if args.quick else (1_000_000 if args.gpu else 100_000),
        "chunk_sizes": [65_536] if args.quick else [65_536, 16_384],
        "sparse_docs": 10_000 if args.quick else (1_000_000 if args.gpu else 100_000),
        "sparse_queries": 200 if args.quick else 1000,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_libraries()
    target = device()
    if args.gpu and target.type != "cuda":
        raise SystemExit("--gpu: no CUDA device here; run the CPU benchmark without --gpu")
    print(
        f"search on {target.type}: dense {args.num_queries} queries x {args.num_docs} docs "
        f"(dim {args.dim}, k {args.k})"
    )
    rows = dense_benchmarks(args, target)
    if not args.no_sparse:
        print(
            f"sparse {args.sparse_queries} queries x {args.sparse_docs} docs "
            f"({args.query_nnz} / {args.doc_nnz} non-zeros of {VOCAB})",
            flush=True,
        )
        rows += sparse_benchmarks(args, target)
    columns = [
        "variant",
        "queries",
        "docs",
        "chunk_size",
        "query_batch_size",
        "seconds",
        "queries_per_s",
        "floor_over_time",
        "extra_mib",
    ]
    print()
    print(table(rows, columns))
    print("floor_over_time: the GEMM-only time / this time (1.0 = top-k and merging cost nothing)")
    path = write_result(
        result_name("search", args.quick, target),
        {"args": vars(args), "results": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
