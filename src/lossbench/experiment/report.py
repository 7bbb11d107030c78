"""The comparison report: the text table, ``report.md``, a self-contained ``report.html`` (its plots,
:mod:`lossbench.experiment.report_plots`, inlined), and the comparison run's name, params and
metrics."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path

from lossbench.evaluation import mlflow_metric_name
from lossbench.experiment.comparison import Comparison
from lossbench.experiment.pooling import describe_folds
from lossbench.experiment.reference import (
    has_references,
    reference_means_over_collections,
    reference_notes,
)


def table_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows: mean ± std per metric, a marker where significantly different from the baseline."""
    header = ["system", *comparison.metrics, "W/T/L vs baseline"]
    order = sorted(comparison.means, key=lambda s: -comparison.means[s][comparison.metrics[0]])
    rows = []
    first = comparison.metrics[0]
    for system in order:
        cells = [system + (" (baseline)" if system == comparison.baseline else "")]
        for metric in comparison.metrics:
            mean, std = comparison.means[system][metric], comparison.stds[system][metric]
            marker = ""
            if system != comparison.baseline and comparison.significant(system, metric):
                marker = " ▲" if mean > comparison.means[comparison.baseline][metric] else " ▼"
            cells.append(f"{mean:.4f} ± {std:.4f}{marker}")
        if system == comparison.baseline:
            cells.append("-")
        else:
            wins, ties, losses = comparison.win_tie_loss[system][first]
            cells.append(f"{wins}/{ties}/{losses}")
        rows.append(cells)
    for label, means in comparison.references.means.items():  # not tested: reference.py says why
        rows.append([label, *(f"{means[m]:.4f}" for m in comparison.metrics), "reference"])
    return header, rows


def pooling_note(comparison: Comparison) -> str:
    """Under the in-domain table, when it pools cross-validation folds: over which, and how many
    queries (empty otherwise)."""
    pooled = comparison.pooled_folds
    if pooled is None:
        return ""
    return (
        f"Each seed's run is pooled over folds {describe_folds(pooled.folds)} of {pooled.dataset}: "
        f"{pooled.queries} test queries, each tested by the model trained without it."
    )


def instances_note(compared: Comparison) -> str:
    """Under a zero-shot table whose runs are (seed, fold) models, each tested on the whole
    collection: what its mean ± std is over (empty for runs by seed)."""
    instances = [s for s in compared.seeds if isinstance(s, tuple)]
    if not instances:
        return ""
    seeds = sorted({seed for seed, _ in instances})
    folds = describe_folds({fold for _, fold in instances})
    return (
        f"Every fold's model was tested on all of this collection: mean ± std over (seed, fold) "
        f"models ({len(instances)}: seeds {', '.join(map(str, seeds))} x folds {folds}); the "
        "paired test and W/T/L over ((seed, fold), query) pairs."
    )


def collection_tables(
    comparison: Comparison,
) -> list[tuple[str, list[str], list[list[str]], str]]:
    """The other test collections (``eval.collections``): a table per collection, as the main one
    (significance per collection), then each system's mean over the collections (BEIR's average);
    each with the note under it (empty: none)."""
    tables = [
        (f"Zero-shot on {label}", *table_rows(compared), instances_note(compared))
        for label, compared in comparison.collections.items()
    ]
    means = comparison.collection_means
    if len(comparison.collections) > 1:  # the mean of one collection is its own table
        order = sorted(means, key=lambda s: -means[s][comparison.metrics[0]])
        rows = [
            [system, *(f"{means[system][m]:.4f}" for m in comparison.metrics)] for system in order
        ]
        for label, reference in reference_means_over_collections(comparison).items():
            rows.append([label, *(f"{reference[m]:.4f}" for m in comparison.metrics)])
        labels = ", ".join(comparison.collections)
        heading = f"Mean over {len(comparison.collections)} collections ({labels})"
        tables.append((heading, ["system", *comparison.metrics], rows, ""))
    return tables


def markdown_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *["| " + " | ".join(row) + " |" for row in rows],
    ]


def format_text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def title(comparison: Comparison) -> str:
    """``Loss comparison: in_batch_ce, infonce vs ranknet``."""
    others = sorted(s for s in comparison.means if s != comparison.baseline)
    compared = f"{', '.join(others)} vs {comparison.baseline}" if others else comparison.baseline
    return f"Loss comparison: {compared}"


def legend(comparison: Comparison) -> str:
    return (
        f"Mean ± std over seeds {comparison.seeds}. ▲/▼: significantly better/worse than the baseline "
        f"({comparison.baseline}), paired {comparison.stat_test} test over (seed, query) pairs, "
        f"{comparison.correction} correction, p < {comparison.max_p}. W/T/L: (seed, query) pairs won, tied "
        f"and lost against the baseline on {comparison.metrics[0]}."
        + (
            " Rows marked (reference): systems no loss trained (BM25, the untrained model), shown "
            "beside the losses "
            "and not part of their tests; where each comes from is listed below."
            if has_references(comparison)
            else ""
        )
    )


def record_sections(comparison: Comparison) -> list[tuple[str, list[str]]]:
    """What the report lists below the table: the code versions pooled, the sweep's failed and
    missing jobs, and the runs left out (only the sections that have items)."""
    sections = [
        ("Code versions", [f"{v}: {d}" for v, d in comparison.code_versions.items()]),
        (
            "Failed jobs",
            [
                f"{job}: {(error.splitlines() or [''])[0][:300]}"
                for job, error in comparison.failed_jobs.items()
            ],
        ),
        ("Jobs that never ran", list(comparison.missing_jobs)),
        ("Left out", list(comparison.excluded)),
        ("Reference rows", reference_notes(comparison)),
    ]
    return [(title, items) for title, items in sections if items]


def markdown_table(comparison: Comparison, source: str) -> str:
    """The title, the table, its legend and the record (code versions, failed and missing jobs, runs
    left out), as Markdown."""
    header, rows = table_rows(comparison)
    lines = [f"# {title(comparison)}", "", f"Compared: `{source}`", ""]
    lines += markdown_rows(header, rows)
    if note := pooling_note(comparison):
        lines += ["", note]
    lines += ["", legend(comparison)]
    for heading, other_header, other_rows, other_note in collection_tables(comparison):
        lines += ["", f"## {heading}", "", *markdown_rows(other_header, other_rows)]
        lines += ["", other_note] if other_note else []
    for heading, items in record_sections(comparison):
        lines += ["", f"{heading}:", *[f"- {item}" for item in items]]
    return "\n".join(lines)


def write_markdown(comparison: Comparison, plots: Sequence[Path], path: Path, source: str) -> Path:
    """``report.md``: the table, and the plots by file name. MLflow's Markdown preview shows no
    images (it prints an image link as text), so the plots are named, not linked: they sit beside
    this file, and ``report.html`` shows them inline."""
    names = ", ".join(f"`{plot.name}`" for plot in plots)
    lines = [markdown_table(comparison, source), "", f"Plots: {names} (inline in `report.html`)."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def inline_image(path: Path) -> str:
    """A PNG as a ``data:`` URI, so that the HTML needs no other file (MLflow's preview of an
    artifact cannot load the files beside it)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_html(comparison: Comparison, plots: Sequence[Path], path: Path, source: str) -> Path:
    """``report.html``: one self-contained file (images inlined), as wide as MLflow's artifact pane."""
    from html import escape

    header, rows = table_rows(comparison)
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    sections = "".join(
        f"<h2>{escape(heading)}</h2><table><tr>"
        + "".join(f"<th>{escape(cell)}</th>" for cell in other_header)
        + "</tr>"
        + "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
            for row in other_rows
        )
        + "</table>"
        + (f"<p>{escape(other_note)}</p>" if other_note else "")
        for heading, other_header, other_rows, other_note in collection_tables(comparison)
    )
    sections += "".join(
        f"<p>{escape(heading)}:</p><ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
        for heading, items in record_sections(comparison)
    )
    images = "".join(
        f'<figure><img src="{inline_image(p)}" alt="{escape(p.stem)}">'
        f"<figcaption>{escape(p.name)}</figcaption></figure>"
        for p in plots
    )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title(comparison))}</title>"
        "<style>body{font-family:sans-serif;margin:1em;max-width:760px}h1{font-size:1.4em}"
        "table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%;height:auto}figure{margin:1em 0}"
        "figcaption{font-size:12px;color:#666}</style>"
        f"</head><body><h1>{escape(title(comparison))}</h1><p>Compared: <code>{escape(source)}</code></p>"
        f"<table><tr>{head}</tr>{body}</table>"
        + (f"<p>{escape(note)}</p>" if (note := pooling_note(comparison)) else "")
        + f"<p>{escape(legend(comparison))}</p>"
        + sections
        + images
        + "</body></html>"
    )
    path.write_text(html, encoding="utf-8")
    return path


# ---- the comparison run in MLflow ----------------------------------------------------------------
def _mlflow_key(system: str) -> str:
    """A system label as part of an MLflow metric name (letters, digits, ``_ . -`` only)."""
    return re.sub(r"[^\w.\-]+", "_", system).strip("_")


def comparison_name(comparison: Comparison) -> str:
    """``compare in_batch_ce, infonce vs ranknet · seeds 0, 1``: what the run compares."""
    compared = title(comparison).removeprefix("Loss comparison: ")
    return f"compare {compared} · seeds {', '.join(map(str, comparison.seeds))}"[:250]


def comparison_params(comparison: Comparison, source: str) -> dict[str, str]:
    """How the comparison was made: what, against which baseline, with which test, on which seeds."""
    return {
        "compared": source,
        "baseline": comparison.baseline,
        "systems": ", ".join(sorted(comparison.means)),
        "metrics": ", ".join(comparison.metrics),
        "seeds": ", ".join(map(str, comparison.seeds)),
        "stat_test": comparison.stat_test,
        "correction": comparison.correction,
        "max_p": str(comparison.max_p),
        "runs_left_out": str(len(comparison.excluded)),
        "references": ", ".join(comparison.references.means) or "none",
        **(
            {"folds": describe_folds(comparison.pooled_folds.folds)}
            if comparison.pooled_folds
            else {}
        ),
    }


def comparison_metrics(comparison: Comparison) -> dict[str, float]:
    """The results as MLflow metrics, named ``<kind>/<system>/<metric>``.

    ``mean`` and ``std`` over seeds, ``diff_vs_baseline`` (mean minus the baseline's) and
    ``p_value`` (corrected, paired over (seed, query) pairs) of every system but the baseline.
    """
    metrics: dict[str, float] = {}
    baseline = comparison.means[comparison.baseline]
    for system, means in comparison.means.items():
        key = _mlflow_key(system)
        for metric, mean in means.items():
            name = mlflow_metric_name(metric)
            metrics[f"mean/{key}/{name}"] = mean
            metrics[f"std/{key}/{name}"] = comparison.stds[system][metric]
            if system != comparison.baseline:
                metrics[f"diff_vs_baseline/{key}/{name}"] = mean - baseline[metric]
                p_value = comparison.p_values.get(system, {}).get(metric)
                if p_value is not None:
                    metrics[f"p_value/{key}/{name}"] = p_value
    for label, means in comparison.references.means.items():
        for metric, value in means.items():
            metrics[f"reference/{_mlflow_key(label)}/{mlflow_metric_name(metric)}"] = value
    for label, compared in comparison.collections.items():
        for system, means in {**compared.means, **compared.references.means}.items():
            for metric, mean in means.items():
                name = f"{_mlflow_key(system)}/{mlflow_metric_name(metric)}"
                metrics[f"{_mlflow_key(label)}/mean/{name}"] = mean
                p_value = compared.p_values.get(system, {}).get(metric)
                if p_value is not None:
                    metrics[f"{_mlflow_key(label)}/p_value/{name}"] = p_value
    for system, means in comparison.collection_means.items():
        for metric, mean in means.items():
            name = f"{_mlflow_key(system)}/{mlflow_metric_name(metric)}"
            metrics[f"mean_over_collections/{name}"] = mean
    return metrics


def print_report(comparison: Comparison, output: Path) -> None:
    """The table, its legend, what was left out and where the report is."""
    header, rows = table_rows(comparison)
    print(format_text_table(header, rows))
    if note := pooling_note(comparison):
        print(note)
    print(legend(comparison))
    for heading, other_header, other_rows, other_note in collection_tables(comparison):
        print(f"\n{heading}\n{format_text_table(other_header, other_rows)}")
        if other_note:
            print(other_note)
    for heading, items in record_sections(comparison):
        for item in items:
            print(f"{heading.lower()}: {item}")
    print(f"\nreport: {output / 'report.md'} and {output / 'report.html'}; plots: {output}")
