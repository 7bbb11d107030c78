"""faiss indexes: recall@100 against exact search and queries/s, vs ExactDenseIndex (CPU).

    python -m bench.faiss_recall            # 100,000 docs x 1,000 queries (dim 768), under ~2 min
    python -m bench.faiss_recall --quick    # 20,000 docs x 200 queries: check that it works
    python -m bench.faiss_recall --nlist 1024 --nprobes 8 32 128

Random clustered vectors (float32): ``--clusters`` centres drawn from N(0, 1); every doc and query is
a random centre plus N(0, ``--spread``^2) noise, so a query's exact top-100 gathers around its
centre, the case IVF is built for (pure Gaussian noise has no clusters, and IVF does badly on it).

Variants, each built from the same vectors and searched with the same queries (k = ``--k``):

* ``exact``: ``ExactDenseIndex`` (torch, chunked top-k): the reference top-k.
* ``faiss_flat``: ``FaissFlatIndex`` (``IndexFlatIP``): exact too; its recall is 1.0 up to ties.
* ``faiss_ivf``: ``FaissIVFIndex`` (``IndexIVFFlat``, ``--nlist`` lists trained on the corpus)
  searched at each of ``--nprobes``; its build (k-means + add) is timed once.

``recall_vs_exact``: the mean over queries of ``|top-k ∩ exact top-k| / k``
(:func:`lossbench.retrieval.recall.overlap_at_k`). ``build_s``: adding every doc (and k-means for
IVF); ``search_s``: ``search_tensors`` of every query (faiss and torch each use all their threads).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import torch

from bench.common import quiet_libraries, table
from bench.interleave import (
    MIN_ROUNDS,
    interleaved_rounds,
    ratio_stats,
    ratio_text,
    seconds_stats,
)
from bench.record import write_result


def clustered_vectors(
    num_docs: int, num_queries: int, dim: int, clusters: int, spread: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Docs ``(N, dim)`` and queries ``(Q, dim)``: random centres plus Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator)  # (C, dim)
    docs = centres[torch.randint(clusters, (num_docs,), generator=generator)]
    docs += spread * torch.randn(num_docs, dim, generator=generator)  # (N, dim)
    queries = centres[torch.randint(clusters, (num_queries,), generator=generator)]
    queries += spread * torch.randn(num_queries, dim, generator=generator)  # (Q, dim)
    return docs, queries


def timed_call(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Build every index once (timed), take each one's recall against exact search, then time
    every index's search of all queries in interleaved rounds (each side's ratio: exact seconds
    over its seconds, per round)."""
    import faiss

    from lossbench.retrieval import ExactDenseIndex, FaissFlatIndex, FaissIVFIndex
    from lossbench.retrieval.recall import overlap_at_k

    docs, queries = clustered_vectors(
        args.num_docs, args.num_queries, args.dim, args.clusters, args.spread
    )
    doc_ids = [f"d{i}" for i in range(args.num_docs)]
    rows: dict[str, dict[str, Any]] = {}
    sides: dict[str, Any] = {}

    def add_side(name: str, index: Any, build_s: float, **extra: Any) -> None:
        index.search_tensors(queries[:8], args.k)  # warm-up
        _, positions = index.search_tensors(queries, args.k)
        reference = positions if name == "exact" else rows["exact"]["positions"]
        recall = float(overlap_at_k(positions, reference).mean())
        rows[name] = {"variant": name.split("@")[0], **extra, "build_s": build_s}
        rows[name].update(recall_vs_exact=recall, positions=positions)
        print(f"  {name}: recall {recall:.4f}, build {build_s:.2f} s", flush=True)

        def search() -> float:
            if "nprobe" in extra:
                index.nprobe = extra["nprobe"]
            return timed_call(lambda: index.search_tensors(queries, args.k))[0]

        sides[name] = search

    exact = ExactDenseIndex()
    add_side("exact", exact, timed_call(lambda: exact.add(docs, doc_ids))[0])
    flat = FaissFlatIndex()
    add_side("faiss_flat", flat, timed_call(lambda: flat.add(docs, doc_ids))[0])
    ivf = FaissIVFIndex(nlist=args.nlist, nprobe=1, report_recall_vs_exact=False)
    build_s, _ = timed_call(lambda: (ivf.add(docs, doc_ids), ivf.faiss_index()))
    for nprobe in args.nprobes:
        ivf.nprobe = nprobe
        add_side(f"faiss_ivf@{nprobe}", ivf, build_s, nlist=ivf.nlist_used, nprobe=nprobe)

    def report(number: int, name: str, seconds: float) -> None:
        print(f"  round {number} {name}: {seconds:.3f} s", flush=True)

    seconds = interleaved_rounds(sides, args.rounds, report)
    out = []
    for name, row in rows.items():
        row.pop("positions")
        row.update(seconds_stats(seconds[name]))
        row["queries_per_s"] = args.num_queries / row["median_s"]
        if name != "exact":
            row["speed_vs_exact"] = ratio_stats(seconds["exact"], seconds[name])
        row["docs"], row["queries"] = args.num_docs, args.num_queries
        row["faiss_threads"] = faiss.omp_get_max_threads()
        out.append(row)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check that it works")
    parser.add_argument("--num-docs", type=int, help="docs (100,000; 20,000 quick)")
    parser.add_argument("--num-queries", type=int, help="queries (1,000; 200 quick)")
    parser.add_argument("--dim", type=int, default=768, help="vector size (768: BERT-base)")
    parser.add_argument("--clusters", type=int, help="cluster centres (docs / 100)")
    parser.add_argument("--spread", type=float, default=1.5, help="noise std around a centre")
    parser.add_argument("--nlist", type=int, help="IVF lists (sqrt(docs), rounded)")
    parser.add_argument(
        "--nprobes", type=int, nargs="+", default=[1, 4, 16, 64], help="IVF lists probed"
    )
    parser.add_argument("--k", type=int, default=100, help="top-k (conf/eval: 100)")
    parser.add_argument(
        "--rounds", type=int, help=f"interleaved rounds of the searches ({MIN_ROUNDS}; 2 quick)"
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else MIN_ROUNDS
    if args.num_docs is None:
        args.num_docs = 20_000 if args.quick else 100_000
    if args.num_queries is None:
        args.num_queries = 200 if args.quick else 1000
    if args.clusters is None:
        args.clusters = max(1, args.num_docs // 100)
    if args.nlist is None:
        args.nlist = max(1, round(math.sqrt(args.num_docs)))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_libraries()
    print(
        f"faiss recall on cpu: {args.num_docs} docs x {args.num_queries} queries (dim {args.dim}, "
        f"{args.clusters} clusters, spread {args.spread}, k {args.k}, nlist {args.nlist})",
        flush=True,
    )
    rows = run(args)
    columns = ["variant", "nlist", "nprobe", "build_s", "median_s", "x exact", "recall_vs_exact"]
    print()
    print(table([{**r, "x exact": ratio_text(r.get("speed_vs_exact"))} for r in rows], columns))
    print(
        "recall_vs_exact: recall@k of each top-k list against ExactDenseIndex's, mean over queries"
    )
    path = write_result(
        "faiss_recall_cpu",
        {"args": vars(args), "rounds": args.rounds, "results": rows},
        quick=args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
