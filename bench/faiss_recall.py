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

from bench.common import quiet_libraries, result_name, table, write_result


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
    import faiss

    from lossbench.retrieval import ExactDenseIndex, FaissFlatIndex, FaissIVFIndex
    from lossbench.retrieval.recall import overlap_at_k

    docs, queries = clustered_vectors(
        args.num_docs, args.num_queries, args.dim, args.clusters, args.spread
    )
    doc_ids = [f"d{i}" for i in range(args.num_docs)]
    rows: list[dict[str, Any]] = []

    def row(
        variant: str, build_s: float, search_s: float, positions: torch.Tensor, **extra: Any
    ) -> None:
        recall = float(overlap_at_k(positions, exact_positions).mean())
        rows.append(
            {
                "variant": variant,
                **extra,
                "build_s": build_s,
                "search_s": search_s,
                "queries_per_s": args.num_queries / search_s,
                "recall_vs_exact": recall,
            }
        )
        settings = "".join(f" {key}={value}" for key, value in extra.items())
        print(f"  {variant}{settings}: recall {recall:.4f}, {search_s:.2f} s", flush=True)

    def build_and_search(index: Any) -> tuple[float, float, torch.Tensor]:
        """Seconds to add every doc, seconds to search every query, and the top-k positions."""
        build_s, _ = timed_call(lambda: index.add(docs, doc_ids))
        index.search_tensors(queries[:8], args.k)  # warm-up
        search_s, (_, positions) = timed_call(lambda: index.search_tensors(queries, args.k))
        return build_s, search_s, positions

    build_s, search_s, exact_positions = build_and_search(ExactDenseIndex())
    row("exact", build_s, search_s, exact_positions)
    row("faiss_flat", *build_and_search(FaissFlatIndex()))  # freed once searched

    ivf = FaissIVFIndex(nlist=args.nlist, nprobe=1, report_recall_vs_exact=False)
    build_s, _ = timed_call(lambda: (ivf.add(docs, doc_ids), ivf.faiss_index()))
    for nprobe in args.nprobes:
        ivf.nprobe = nprobe
        ivf.search_tensors(queries[:8], args.k)
        search_s, (_, positions) = timed_call(lambda: ivf.search_tensors(queries, args.k))
        row("faiss_ivf", build_s, search_s, positions, nlist=ivf.nlist_used, nprobe=nprobe)
    for entry in rows:
        entry["docs"], entry["queries"] = args.num_docs, args.num_queries
        entry["faiss_threads"] = faiss.omp_get_max_threads()
    return rows


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
    args = parser.parse_args(argv)
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
    columns = [
        "variant",
        "nlist",
        "nprobe",
        "build_s",
        "search_s",
        "queries_per_s",
        "recall_vs_exact",
    ]
    print()
    print(table(rows, columns))
    print(
        "recall_vs_exact: recall@k of each top-k list against ExactDenseIndex's, mean over queries"
    )
    path = write_result(
        result_name("faiss_recall", args.quick, torch.device("cpu")),
        {"args": vars(args), "results": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
