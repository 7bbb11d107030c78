"""Collect bench/results/*.json into one Markdown summary (the tables of bench/RESULTS.md).

    python -m bench.summary            # full-mode results only
    python -m bench.summary --quick    # the --quick results instead

Prints the summary and writes it to ``bench/results/summary[_quick].md``, with each figure's ratio
against the goal of issue #7 and whether it is met.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, fmt, table


def load(name: str, quick: bool, out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / f"{name}{'_quick' if quick else ''}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return (
        f"{m['date']}, {m['cpu']} ({m['cpu_count']} cores, load {fmt(m.get('load_average_1m'), 1)})"
        f"{gpu}, torch {m['torch']}, transformers {m['transformers']}, "
        f"lightning {m.get('lightning', '?')}"
    )


def train_section(doc: dict[str, Any]) -> list[str]:
    shape = doc["shape"]
    lines = [
        f"### Training step ({doc['precision']}; {shape['queries']} queries x {shape['docs']} docs, "
        f"{shape['query_length']}/{shape['doc_length']} tokens; {shape['steps']} timed steps)",
        f"_{machine_line(doc)}_",
        "",
    ]
    rows = []
    for model, runs in doc["results"].items():
        for variant, run in runs.items():
            if variant == "data_path":
                rows.append(
                    {
                        "model": model,
                        "variant": f"data path, {run['num_workers']} worker(s)",
                        "s/step": run["loader_batch_s"],
                        "note": f"collate (tokenize) one batch: {fmt(run['collate_s'])} s",
                    }
                )
                continue
            ratio = run.get("ratio_to_minimal")
            row = {
                "model": model,
                "variant": variant,
                "s/step": run["step_s"],
                "x minimal": ratio,
                "min s/step": run.get("min_s"),
                "x minimal (min)": run.get("ratio_of_min"),
                "x compiled": run.get("ratio_to_compiled"),
                "peak MiB": run.get("peak_mem_mib"),
            }
            if variant.startswith("lossbench") and ratio is not None:
                row["<= 1.15?"] = verdict(ratio <= 1.15)
            if variant == "minimal":
                timings = run.get("runs_s") or [run.get("before_s"), run.get("after_s")]
                row["note"] = "each timing: " + ", ".join(fmt(t) for t in timings) + " s"
            elif run.get("round_ratios"):
                row["note"] = "each round: " + ", ".join(fmt(r) for r in run["round_ratios"])
            rows.append(row)
    columns = [
        "model",
        "variant",
        "s/step",
        "x minimal",
        "min s/step",
        "x minimal (min)",
        "x compiled",
        "<= 1.15?",
        "peak MiB",
        "note",
    ]
    out = [*lines, table(rows, columns), ""]
    if doc.get("mlflow_log_metrics_ms") is not None:
        ms = fmt(doc["mlflow_log_metrics_ms"], 1)
        out += [f"MLflow (sqlite) `log_metrics`: {ms} ms per call (pipeline.run: every step)", ""]
    return out


def encode_section(doc: dict[str, Any]) -> list[str]:
    shape = doc["shape"]
    lines = [
        f"### Encoding ({doc['precision']}; {shape['num_docs']} docs x {shape['doc_length']} tokens, "
        f"batches of {shape['batch_size']})",
        f"_{machine_line(doc)}_",
        "",
    ]
    rows = []
    for model, runs in doc["results"].items():
        for variant, run in runs.items():
            ratio = run["ratio_to_bare"]
            rows.append(
                {
                    "model": model,
                    "variant": variant,
                    "docs/s": run["docs_per_s"],
                    "median docs/s": run.get("median_docs_per_s"),
                    "x bare": ratio,
                    ">= 0.85?": verdict(ratio >= 0.85) if variant != "bare_forward" else None,
                    "peak MiB": run.get("peak_mem_mib"),
                }
            )
    for name, rate in doc.get("tokenizer_docs_per_s", {}).items():
        rows.append({"model": "-", "variant": name, "docs/s": rate})
    return [
        *lines,
        table(
            rows, ["model", "variant", "docs/s", "median docs/s", "x bare", ">= 0.85?", "peak MiB"]
        ),
        "",
    ]


def search_section(doc: dict[str, Any]) -> list[str]:
    lines = ["### Search (random float32 vectors, k = {})".format(doc["args"]["k"])]
    lines += [f"_{machine_line(doc)}_", ""]
    columns = [
        "variant",
        "queries",
        "docs",
        "chunk_size",
        "seconds",
        "queries_per_s",
        "floor_over_time",
        "extra_mib",
    ]
    return [*lines, table(doc["results"], columns), ""]


def breakdown_section(doc: dict[str, Any]) -> list[str]:
    label = " ".join(doc["overrides"]) or "the embedded default"
    lines = [f"### make run ({label})", f"_{machine_line(doc)}_", ""]
    runs = doc["plain_runs"]
    walls = ", ".join(f"{fmt(run['wall_s'], 1)} s" for run in runs)
    instrumented = doc["instrumented"]["wall_s"]
    best = min([run["wall_s"] for run in runs] + [instrumented])
    lines.append(
        f"pipeline.run wall: plain runs {walls}; instrumented run {fmt(instrumented, 1)} s "
        f"(goal <= 180 s, on the least disturbed run: {verdict(best <= 180)})"
    )
    from bench.run_breakdown import breakdown_rows

    rows = breakdown_rows(doc["instrumented"])  # recomputed: the current categories
    overhead = rows[-1]["seconds"]
    lines.append(
        f"overhead outside steps/encoding/search: {fmt(overhead, 1)} s (goal <= 10 s: {verdict(overhead <= 10)})"
    )
    lines.append("")
    lines.append(table(rows, ["category", "seconds", "share"]))
    lines.append("")
    imports = doc["imports"]
    top = sorted(imports["imports_s"].items(), key=lambda item: -item[1])[:6]
    lines.append(
        f"imports: {fmt(imports['imports_total_s'], 1)} s in all; interpreter {fmt(imports['interpreter_s'], 2)} s; "
        + ", ".join(f"{name} {fmt(value, 2)} s" for name, value in top)
    )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="summarize the --quick results")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the results folder")
    args = parser.parse_args(argv)
    sections: list[str] = []
    for device in ("cpu", "cuda"):
        for name, render in (
            ("train_step", train_section),
            ("encode", encode_section),
            ("search", search_section),
        ):
            doc = load(f"{name}_{device}", args.quick, args.results)
            if doc is not None:
                sections += render(doc)
    doc = load("run_breakdown", args.quick, args.results)
    if doc is not None:
        sections += breakdown_section(doc)
    if not sections:
        raise SystemExit(f"no results in {args.results}; run `make bench` first")
    text = "\n".join(sections)
    print(text)
    out = args.results / f"summary{'_quick' if args.quick else ''}.md"
    out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
