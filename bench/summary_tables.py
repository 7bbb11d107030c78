"""Markdown tables of one benchmark's result file each (used by :mod:`bench.summary`).

Every function takes the result documents it renders and returns Markdown; each rendering starts
with the command and the commit that produced it (:func:`provenance`), so every table of
``bench/RESULTS.md`` names where its figures come from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import fmt, table
from bench.interleave import ratio_text


def provenance(doc: dict[str, Any]) -> str:
    """``python -m bench.x ...`` at commit ``abc1234``, the machine and its load at start and end."""
    m = doc["machine"]
    commit = (doc.get("commit") or "unknown")[:10]
    dirty = " **with uncommitted changes**" if doc.get("dirty") else ""
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    load = (
        f"load {fmt(m.get('load_average_1m_start'), 1)} -> {fmt(m.get('load_average_1m_end'), 1)}"
    )
    settings = "".join(f"{k}={v} " for k, v in sorted(m.get("environment", {}).items()))
    settings = settings.replace("TOKENIZERS_PARALLELISM=false ", "")
    return (
        f"_`{settings}{doc['command']}` at commit `{commit}`{dirty}; {m['started']}; {m['cpu']} "
        f"({m['cpu_count']} cores{gpu}, {load}); torch {m['torch']}, "
        f"lightning {m.get('lightning', '?')}_"
    )


def seconds_text(row: dict[str, Any], digits: int = 3) -> str:
    """``1.234 (1.100-1.400)``: a side's median seconds and the range of its rounds."""
    return f"{row['median_s']:.{digits}f} ({row['min_s']:.{digits}f}-{row['max_s']:.{digits}f})"


def described_table(
    doc: dict[str, Any], description: str, rows: list[dict[str, Any]], *after: str
) -> str:
    """The provenance, ``description``, the table of ``rows`` (the first row's keys), then ``after``."""
    columns = list(rows[0]) if rows else ["(no rows)"]
    return "\n".join([provenance(doc), "", description, "", table(rows, columns), *after])


def per_model_rows(
    results: dict[str, dict[str, dict[str, Any]]],
    label: str,
    cells: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """A row per model and side of ``results`` (``{model: {side: result}}``): the model, the side
    (column ``label``), then ``cells(result)``."""
    return [
        {"model": model, label: side, **cells(row)}
        for model, sides in results.items()
        for side, row in sides.items()
    ]


def train_step_cells(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "s/step, median (range)": seconds_text(row, 4),
        "x minimal": ratio_text(row.get("ratio_to_minimal")),
        "x compiled minimal": ratio_text(row.get("ratio_to_compiled")),
        "MLflow logger": {True: "yes", False: "no"}.get(row.get("mlflow_logger")),
        "workers": row.get("num_workers"),
        "longest step s": row.get("max_gap_s"),
        "peak MiB": row.get("peak_mem_mib"),
    }


def train_step(doc: dict[str, Any]) -> str:
    shape = doc["shape"]
    description = (
        f"{doc['precision']}; {shape['queries']} queries x {shape['docs']} docs, "
        f"{shape['query_length']} / {shape['doc_length']} tokens; {shape['warmup']} warm-up + "
        f"{shape['steps']} timed steps per side and round; {doc['rounds']} interleaved rounds. "
        "x minimal: per round, the side's s/step over the minimal step's of the same round; "
        "median [min-max] of the rounds."
    )
    rows = per_model_rows(doc["results"], "side", train_step_cells)
    notes = []
    for model, data in (doc.get("data_path") or {}).items():
        notes.append(
            f"{model}: the DataLoader alone delivers a batch every {fmt(data['loader_batch_s'])} s "
            f"({data['num_workers']} worker(s)); one batch's collate in-process "
            f"{fmt(data['collate_s'])} s (timed once, no ratio)."
        )
    if doc.get("mlflow_log_metrics_ms") is not None:
        notes.append(
            f"MLflow (sqlite) `log_metrics`: {fmt(doc['mlflow_log_metrics_ms'], 1)} ms per call "
            "(timed once; the pipeline's logger buffers steps and writes every 50 steps or 15 s)."
        )
    return described_table(doc, description, rows, "", *notes).rstrip()


def encode(doc: dict[str, Any]) -> str:
    shape = doc["shape"]
    description = (
        f"{doc['precision']}; {shape['num_docs']} docs x {shape['doc_length']} tokens, batches of "
        f"{shape['batch_size']}; {doc['rounds']} interleaved rounds. x bare: per round, the bare "
        "forward's seconds over the variant's (a docs/s ratio); median [min-max] of the rounds."
    )
    rows = per_model_rows(
        doc["results"],
        "variant",
        lambda row: {
            "seconds, median (range)": seconds_text(row),
            "docs/s (median)": row["docs_per_s"],
            "x bare": ratio_text(row.get("ratio_to_bare")),
            "peak MiB": row.get("peak_mem_mib"),
        },
    )
    for name, rate in (doc.get("tokenizer_docs_per_s") or {}).items():
        rows.append({"model": "-", "variant": f"{name} (timed once)", "docs/s (median)": rate})
    return described_table(doc, description, rows)


def search(doc: dict[str, Any]) -> str:
    args = doc["args"]
    description = (
        f"Random float32 vectors, dim {args['dim']}, k {args['k']}; {doc['rounds']} interleaved "
        "rounds. x: per round, the reference side's seconds over this side's (dense: the GEMM-only "
        "floor; sparse on one thread: scipy's CSR x dense product, no top-k); extra MiB: peak "
        "above the memory before the call, largest of the rounds."
    )
    rows = [
        {
            "side": row["variant"],
            "queries x docs": f"{row['queries']:,} x {row['docs']:,}",
            "chunk": row.get("chunk_size"),
            "threads": row.get("threads"),
            "seconds, median (range)": seconds_text(row),
            "queries/s": row["queries_per_s"],
            "x": ratio_text(row.get("ratio")),
            "reference": (row.get("reference") or "").split("@")[0] or None,
            "extra MiB": row.get("extra_mib"),
        }
        for row in doc["results"]
    ]
    return described_table(doc, description, rows)


def faiss_recall(doc: dict[str, Any]) -> str:
    args = doc["args"]
    description = (
        f"{args['num_docs']:,} clustered docs x {args['num_queries']:,} queries, dim {args['dim']} "
        f"({args['clusters']} clusters, spread {args['spread']}), k {args['k']}; builds timed "
        f"once, searches in {doc['rounds']} interleaved rounds (x exact: exact's seconds over the "
        "index's, per round). Recall is exact, not a timing."
    )
    rows = [
        {
            "index": row["variant"],
            "nlist": row.get("nlist"),
            "nprobe": row.get("nprobe"),
            "build s": row["build_s"],
            "search s, median (range)": seconds_text(row),
            "queries/s": row["queries_per_s"],
            "x exact": ratio_text(row.get("speed_vs_exact")),
            "recall@k vs exact": row["recall_vs_exact"],
        }
        for row in doc["results"]
    ]
    return described_table(doc, description, rows)


def run_breakdown(doc: dict[str, Any]) -> str:
    from bench.run_breakdown import STAGES, breakdown_rows, stage_rows, work_rows

    instrumented = doc["instrumented"]
    label = " ".join(doc["overrides"]) or "the embedded default"
    walls = ", ".join(f"{fmt(run['wall_s'], 1)} s" for run in doc["plain_runs"])
    lines = [
        provenance(doc),
        "",
        f"`python -m pipeline.run` ({label}), warm caches after the first run; plain runs: "
        f"{walls} (the goal, <= 180 s, applies to these); then the instrumented run.",
        "",
        table(stage_rows(doc["plain_runs"], instrumented), ["run", "wall_s", "cpu_s", *STAGES]),
        "",
        "The instrumented run's wall time, part by part (the stages as the Experiment timed them):",
        "",
        table(breakdown_rows(instrumented), ["part", "seconds", "share"]),
        "",
        "The same run: the work the issue exempts, the overhead left, and parts of that overhead:",
        "",
        table(work_rows(instrumented), ["part", "seconds", "share"]),
    ]
    imports = doc["imports"]
    top = sorted(imports["imports_s"].items(), key=lambda item: -item[1])[:5]
    lines += [
        "",
        f"Imports in a fresh process: {fmt(imports['imports_total_s'], 1)} s in all (interpreter "
        f"{fmt(imports['interpreter_s'], 2)} s); "
        + ", ".join(f"{name} {fmt(value, 2)} s" for name, value in top)
        + ".",
    ]
    return "\n".join(lines)


SWEEP_STAGES = ["prepare", "data", "model", "base_eval", "train", "index", "search", "evaluate"]


def sweeps(docs: list[dict[str, Any]]) -> str:
    """One row per sweep result (before, after, ...), then each sweep's jobs."""
    rows, parts = [], []
    for doc in docs:
        s = doc["summary"]
        rows.append(
            {
                "sweep": doc.get("label") or doc["benchmark"],
                "jobs": s["jobs"],
                "wall s": s["wall_s"],
                "training s": s["train_s"],
                "one untrained eval s": s["one_base_eval_s"],
                "final index + search s": s["final_index_search_s"],
                "must pay s": s["must_pay_s"],
                "wall / must pay": s["wall_over_must_pay"],
                "<= 1.15?": "yes" if s["met"] else "no",
                "wall / training": s["wall_over_train"],
                "all untrained evals s": s["all_base_evals_s"],
            }
        )
        jobs = [
            {"loss": job["loss"], **{n: job["stages_s"].get(n) for n in SWEEP_STAGES}}
            for job in doc["jobs"]
        ]
        reused = sorted({k for job in doc["jobs"] for k in job.get("reuse_tags", {})})
        parts += [
            f"**{rows[-1]['sweep']}**: {provenance(doc)}",
            "",
            f"`{doc['sweep_command']}`" + (f"; jobs tagged {', '.join(reused)}" if reused else ""),
            "",
            table(jobs, ["loss", *SWEEP_STAGES]),
            "",
        ]
    return "\n".join([table(rows, list(rows[0])), "", *parts]).rstrip()


def scaling(doc: dict[str, Any]) -> str:
    rows = []
    for r in doc["results"]:
        e, s = r["encode"], r["search"]
        rows.append(
            {
                "docs": r["docs"],
                "encode s": e["seconds"],
                "docs/s": e["docs_per_s"],
                "encode peak MiB": e["peak_mib"],
                "index vectors MiB": e["index_vectors_mib"],
                "doc ids MiB": e["index_ids_mib"],
                "token cache MiB": e["token_cache_mib"],
                "unexplained MiB": e["unexplained_mib"],
                "search s": s["seconds"],
                "search peak MiB": s["peak_mib"],
                "score block MiB": s["score_block_mib"],
                "load": "-".join(fmt(x, 1) for x in r.get("load_average_1m", [])),
            }
        )
    exponents = ", ".join(
        f"{name.replace('_', ' ')} {fmt(value, 2)}"
        for name, value in doc["growth_exponents"].items()
    )
    args = doc["args"]
    description = (
        f"{doc['model']}; synthetic docs of {doc['words_per_doc']} whole-token words, read "
        f"lazily; {args['queries']:,} test queries, top-100; batches of {args['batch_size']}, "
        f"a token cache of {fmt(args['token_cache_mib'], 0)} MiB; each size in its own "
        "process, timed once (no ratio). Peak MiB: the process's peak RSS during the stage above "
        "its RSS once the model was built and warmed up; the search's includes the index."
    )
    return described_table(
        doc,
        description,
        rows,
        "",
        f"Growth exponents (slope of log value against log docs; 1.0 = linear): {exponents}.",
        "",
        f"![time and memory against the corpus size, log-log](results/{doc['plot']})",
    )


def gpu_smoke(doc: dict[str, Any]) -> str:
    checks = doc["checks"]
    shown = {k: v for k, v in checks.items() if k != "val_history"}
    return "\n".join(
        [
            provenance(doc),
            "",
            f"{'PASS' if doc['passed'] else 'FAIL'}: "
            + "; ".join(f"{k} {fmt(v)}" for k, v in shown.items()),
        ]
    )


def ranx_first_call(doc: dict[str, Any]) -> str:
    case = doc["case"]
    rows = [
        {
            "variant": variant,
            "import ranx s": seconds_text(row["import_ranx"]),
            "first evaluation s": seconds_text(row["first_evaluate"]),
            "second evaluation s": seconds_text(row["second_evaluate"]),
            "first x lossbench": ratio_text(row.get("first_evaluate_vs_lossbench"), 2),
        }
        for variant, row in doc["results"].items()
    ]
    description = (
        f"Fresh processes, {doc['rounds']} rounds of the variants in turn; {case['queries']} "
        f"queries x {case['docs_per_query']} docs with ties, metrics "
        f"{', '.join(doc['metrics'])}. Seconds: median (range) over the rounds; x lossbench: "
        "per round, the variant's first evaluation over `lossbench`'s; median [min-max]."
    )
    return described_table(doc, description, rows)


def maxsim(doc: dict[str, Any]) -> str:
    lines = [provenance(doc), ""]
    search, train = doc.get("search"), doc.get("train")
    if search:
        lo, hi = search["doc_tokens"]
        lines += [
            f"Search: {search['docs']:,} docs of {lo}-{hi} tokens, {search['queries']} queries of "
            f"{search['query_tokens']} tokens, dim {search['dim']}, top-100; {doc['rounds']} "
            "interleaved rounds. x floor: per round, the floor's seconds over the index's (a "
            f"docs/s ratio; goal >= 0.8); same top-100 as the floor: "
            f"{'yes' if search['same_top_k_as_floor'] else '**no**'}.",
            "",
            table(
                [
                    {
                        "side": "floor (padded blocks, one matmul per chunk)",
                        "seconds, median (range)": seconds_text(search["floor"]),
                        "docs/s per query": search["floor_docs_per_s"],
                        "x floor": None,
                    },
                    {
                        "side": "MaxSimIndex.search_tensors",
                        "seconds, median (range)": seconds_text(search["index"]),
                        "docs/s per query": search["index_docs_per_s"],
                        "x floor": ratio_text(search["throughput_ratio"]),
                    },
                ],
                ["side", "seconds, median (range)", "docs/s per query", "x floor"],
            ),
            "",
            f"Index: {fmt(search['index_bytes_per_doc'], 0)} bytes per doc "
            f"({fmt(search['tokens_per_doc'], 1)} tokens x {search['dim']} dims in fp16, with "
            f"lengths and offsets), against {search['padded_fp32_bytes_per_doc']:,} padded to "
            f"{hi} tokens in fp32 and {search['dpr_768_fp32_bytes_per_doc']:,} for one 768-dim "
            "fp32 vector (DPR).",
            "",
        ]
    if train:
        lines += [
            f"Training step: {train['model']}, {train['queries']} queries x "
            f"{train['docs_per_query']} docs, {train['query_length']} / {train['doc_length']} "
            f"tokens, dim {train['dim']}, InfoNCE; {train['steps_per_round']} step(s) per side and "
            f"round, {doc['rounds']} interleaved rounds. x minimal: per round, lossbench's s/step "
            "over the minimal step's (goal <= 1.15).",
            "",
            table(
                [
                    {
                        "side": "minimal ColBERT step",
                        "s/step, median (range)": seconds_text(train["minimal_step"]),
                        "x minimal": None,
                    },
                    {
                        "side": "BiEncoderModule + ColConfig",
                        "s/step, median (range)": seconds_text(train["lossbench_step"]),
                        "x minimal": ratio_text(train["step_ratio"]),
                    },
                ],
                ["side", "s/step, median (range)", "x minimal"],
            ),
        ]
    return "\n".join(lines).rstrip()
