"""Regenerate every table of bench/RESULTS.md from the committed results in bench/results/*.json.

    python -m bench.summary            # rewrite the tables of bench/RESULTS.md in place
    python -m bench.summary --check    # exit 1 if RESULTS.md's tables differ from the results
    python -m bench.summary --quick    # the --quick results (bench/results/quick/) -> stdout and
                                       # bench/results/quick/summary.md; RESULTS.md is left alone

RESULTS.md holds prose and generated blocks. A block is the text between
``<!-- summary:NAME -->`` and ``<!-- /summary:NAME -->``; NAME is ``goals`` (the goals at a glance)
or the prefix of the result files it renders (``train_step_cpu`` renders ``train_step_cpu.json``
and ``train_step_cpu_<label>.json``, each as its own table). Result files that no block renders
go into the ``unplaced`` block. A block whose files are missing says so. Only blocks change; the
prose around them is kept as written.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import summary_tables as render
from bench.common import fmt
from bench.interleave import ratio_text
from bench.record import BENCH_DIR, QUICK_DIR, RESULTS_DIR, read_results

RESULTS_MD = BENCH_DIR / "RESULTS.md"
BLOCK = re.compile(
    r"(<!-- summary:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /summary:(?P=name) -->)", re.S
)

SINGLE: dict[str, Callable[[dict[str, Any]], str]] = {
    "train_step": render.train_step,
    "encode": render.encode,
    "search": render.search,
    "faiss_recall": render.faiss_recall,
    "run_breakdown": render.run_breakdown,
    "scaling": render.scaling,
    "gpu_smoke": render.gpu_smoke,
    "ranx_first_call": render.ranx_first_call,
    "maxsim": render.maxsim,
}
"""Result-name stem -> the renderer of one file."""


def renderer_of(name: str) -> Callable[[dict[str, Any]], str] | None:
    for stem, function in SINGLE.items():
        if name == stem or name.startswith(stem + "_"):
            return function
    return None


def render_block(prefix: str, docs: dict[str, dict[str, Any]]) -> str:
    """The Markdown of every result whose name is ``prefix`` or starts with ``prefix_``."""
    if prefix == "goals":
        return goals(docs)
    if prefix == "unplaced":
        return "\n\n".join(render_one(name, doc) for name, doc in docs.items()) or "(none)"
    matched = {n: d for n, d in docs.items() if n == prefix or n.startswith(prefix + "_")}
    if not matched:
        return (
            f"(no result file `bench/results/{prefix}*.json`: not measured with this bookkeeping)"
        )
    if prefix.startswith("sweep"):
        return render.sweeps(list(matched.values()))
    return "\n\n".join(render_one(name, doc) for name, doc in matched.items())


def render_one(name: str, doc: dict[str, Any]) -> str:
    function = renderer_of(name)
    heading = f"`{name}.json`"
    if name.startswith("sweep"):
        return f"{heading}\n\n{render.sweeps([doc])}"
    if function is None:
        return f"{heading}: no renderer (its command: `{doc.get('command')}`)"
    return f"{heading}\n\n{function(doc)}"


CPU_GOALS = {
    "train_step_cpu": "CPU training step: pipeline <= 1.15 x minimal",
    "encode_cpu": "encoding >= 0.85 x bare",
    "run_breakdown_cpu": "`make run` <= 180 s on 2 cores; overhead <= 10 s, warm caches",
    "sweep_cpu": "sweep wall <= 1.15 x (training + one untrained eval + final index/search)",
    "scaling_cpu": "encode and search time grow linearly with the corpus",
    "maxsim_cpu": "MaxSim search >= 0.8 x floor; ColBERT training step <= 1.15 x minimal",
}
"""The CPU goals and the result files that measure them: a goal without its file is listed as not
measured, so that the table never hides one."""


def goals(docs: dict[str, dict[str, Any]]) -> str:
    """Goals at a glance, each with the figure and the result file it comes from."""
    rows = []

    def add(goal: str, source: str, measured: str | None, met: bool | None) -> None:
        rows.append(
            {
                "goal": goal,
                "measured": measured or "not measured (no result file)",
                "met?": {True: "yes", False: "**no**", None: "-"}[met],
                "from": f"`{source}`",
            }
        )

    def add_ratio(
        goal: str,
        source: str,
        ratio: dict[str, float] | None,
        at_least: float | None = None,
        at_most: float | None = None,
    ) -> None:
        """A ratio goal: met when its median is at least ``at_least`` or at most ``at_most``."""
        met = None
        if ratio and at_least is not None:
            met = ratio["median"] >= at_least
        if ratio and at_most is not None:
            met = ratio["median"] <= at_most
        add(goal, source, ratio_text(ratio), met)

    train = docs.get("train_step_cpu", {}).get("results", {})
    for model, sides in train.items():
        ratio = sides.get("lossbench_pipeline", {}).get("ratio_to_minimal")
        add_ratio(
            f"CPU training step ({model}): pipeline <= 1.15 x minimal",
            "train_step_cpu",
            ratio,
            at_most=1.15,
        )
    gpu_train = {n: d for n, d in docs.items() if n.startswith("train_step_cuda")}
    if not gpu_train:
        add(
            "GPU training step: <= 1.10 x minimal (MiniLM), <= 1.05 x (BERT-base)",
            "train_step_cuda*",
            None,
            None,
        )
    for name, doc in gpu_train.items():
        for model, sides in doc["results"].items():
            limit = 1.05 if model == "bert-base" else 1.10
            for side in ("lossbench_pipeline", "lossbench_compiled"):
                key = "ratio_to_compiled" if side == "lossbench_compiled" else "ratio_to_minimal"
                ratio = sides.get(side, {}).get(key)
                if ratio:
                    bound = 1.15 if side == "lossbench_compiled" else limit
                    add_ratio(f"GPU {side} ({model}) <= {bound} x", name, ratio, at_most=bound)
    for name, doc in docs.items():
        if not name.startswith("encode_"):
            continue
        for model, variants in doc["results"].items():
            for variant, row in variants.items():
                if variant.startswith("lossbench"):
                    goal = f"encoding {model} {variant} >= 0.85 x bare"
                    add_ratio(goal, name, row["ratio_to_bare"], at_least=0.85)
    breakdown = docs.get("run_breakdown_cpu")
    if breakdown:
        from bench.run_breakdown import work_rows

        best = min(run["wall_s"] for run in breakdown["plain_runs"])
        add(
            "`make run` <= 180 s on 2 cores (least disturbed plain run)",
            "run_breakdown_cpu",
            f"{fmt(best, 1)} s",
            best <= 180,
        )
        overhead = next(
            r for r in work_rows(breakdown["instrumented"]) if r["part"].startswith("overhead")
        )
        add(
            "overhead <= 10 s, warm caches",
            "run_breakdown_cpu",
            f"{fmt(overhead['seconds'], 1)} s",
            overhead["seconds"] <= 10,
        )
    for name, doc in docs.items():
        if name.startswith("sweep_"):
            s = doc["summary"]
            measured = f"{fmt(s['wall_over_must_pay'])} x ({fmt(s['wall_s'], 0)} s / {fmt(s['must_pay_s'], 0)} s)"
            add(
                "sweep wall <= 1.15 x (training + one untrained eval + final index/search)",
                name,
                measured,
                s["met"],
            )
    for name, doc in docs.items():
        if not name.startswith("maxsim_"):
            continue
        if doc.get("search"):
            ratio = doc["search"]["throughput_ratio"]
            add_ratio("MaxSim search >= 0.8 x the floor's docs/s", name, ratio, at_least=0.8)
        if doc.get("train"):
            ratio = doc["train"]["step_ratio"]
            add_ratio("ColBERT training step <= 1.15 x minimal", name, ratio, at_most=1.15)
    scaling = docs.get("scaling_cpu")
    if scaling:
        exponents = scaling["growth_exponents"]
        for stage in ("encode", "search"):
            slope = exponents.get(f"{stage}_seconds")
            add(
                f"{stage} time grows linearly with the corpus (log-log slope ~1)",
                "scaling_cpu",
                fmt(slope, 2),
                None,
            )
    for prefix, goal in CPU_GOALS.items():
        if not any(name == prefix or name.startswith(prefix + "_") for name in docs):
            add(goal, f"{prefix}*", None, None)
    return render.table(rows, ["goal", "measured", "met?", "from"]) if rows else "(no results)"


def regenerate(text: str, docs: dict[str, dict[str, Any]]) -> str:
    """``text`` with every block's body rendered from ``docs``."""
    names = [match.group("name") for match in BLOCK.finditer(text)]
    placed = {
        name
        for name in docs
        for prefix in names
        if prefix not in ("goals", "unplaced") and (name == prefix or name.startswith(prefix + "_"))
    }
    unplaced = {name: doc for name, doc in docs.items() if name not in placed}

    def body(match: re.Match[str]) -> str:
        name = match.group("name")
        rendered = render_block(name, unplaced if name == "unplaced" else docs)
        return f"{match.group(1)}{rendered}\n{match.group(4)}"

    return BLOCK.sub(body, text)


def quick_summary(folder: Path) -> str:
    docs = read_results(folder)
    if not docs:
        raise SystemExit(f"no results in {folder}; run `make bench ARGS=--quick` first")
    return "\n\n".join(render_one(name, doc) for name, doc in docs.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="summarize the --quick results")
    parser.add_argument("--check", action="store_true", help="fail if RESULTS.md is stale")
    parser.add_argument("--results", type=Path, help="the results folder (bench/results)")
    parser.add_argument("--markdown", type=Path, default=RESULTS_MD, help="bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        text = quick_summary(args.results or QUICK_DIR)
        print(text)
        out = (args.results or QUICK_DIR) / "summary.md"
        out.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {out}")
        return
    current = args.markdown.read_text(encoding="utf-8")
    updated = regenerate(current, read_results(args.results or RESULTS_DIR))
    if args.check:
        if updated != current:
            raise SystemExit(f"{args.markdown} is stale: run `python -m bench.summary`")
        print(f"{args.markdown}: every table matches bench/results/")
        return
    args.markdown.write_text(updated, encoding="utf-8")
    print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
