"""The comparison report: the text table, ``report.md``, ``report.html`` and the plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lossbench.experiment.comparison import Comparison, confidence_halfwidth


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
    return header, rows


def format_text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def legend(comparison: Comparison) -> str:
    return (
        f"Mean ± std over seeds {comparison.seeds}. ▲/▼: significantly better/worse than the baseline "
        f"({comparison.baseline}), paired {comparison.stat_test} test over (seed, query) pairs, "
        f"{comparison.correction} correction, p < {comparison.max_p}. W/T/L: (seed, query) pairs won, tied "
        f"and lost against the baseline on {comparison.metrics[0]}."
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
    ]
    return [(title, items) for title, items in sections if items]


def write_markdown(comparison: Comparison, plots: Sequence[Path], path: Path, source: str) -> Path:
    header, rows = table_rows(comparison)
    lines = [f"# Loss comparison: {source}", "", "| " + " | ".join(header) + " |"]
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", legend(comparison), ""]
    for title, items in record_sections(comparison):
        lines += [f"{title}:", *[f"- {item}" for item in items], ""]
    lines += [f"![{plot.stem}]({plot.name})" for plot in plots]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_html(comparison: Comparison, plots: Sequence[Path], path: Path, source: str) -> Path:
    from html import escape

    header, rows = table_rows(comparison)
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    sections = "".join(
        f"<p>{escape(title)}:</p><ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
        for title, items in record_sections(comparison)
    )
    images = "".join(
        f'<p><img src="{escape(p.name)}" alt="{escape(p.stem)}" width="720"></p>' for p in plots
    )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Loss comparison: {escape(source)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}</style>"
        f"</head><body><h1>Loss comparison: {escape(source)}</h1>"
        f"<table><tr>{head}</tr>{body}</table><p>{escape(legend(comparison))}</p>"
        + sections
        + images
        + "</body></html>"
    )
    path.write_text(html, encoding="utf-8")
    return path


def plot_metric_bars(comparison: Comparison, path: Path) -> Path:
    """One panel per metric: each system's mean over seeds with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted(comparison.means, key=lambda s: -comparison.means[s][comparison.metrics[0]])
    fig, axes = plt.subplots(
        1, len(comparison.metrics), figsize=(3.2 * len(comparison.metrics), 3.6), squeeze=False
    )
    for axis, metric in zip(axes[0], comparison.metrics, strict=True):
        means = [comparison.means[s][metric] for s in systems]
        errors = [confidence_halfwidth(comparison.per_seed[s][metric]) for s in systems]
        colors = ["#888888" if s == comparison.baseline else "#3b75af" for s in systems]
        axis.bar(range(len(systems)), means, yerr=errors, capsize=3, color=colors)
        axis.set_xticks(range(len(systems)), systems, rotation=45, ha="right", fontsize=8)
        axis.set_title(metric)
    fig.suptitle(f"test metrics, mean over {len(comparison.seeds)} seed(s), 95% interval")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(curves: dict[str, dict[int, float]], title: str, ylabel: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.4, 3.8))
    for label, curve in sorted(curves.items()):
        if curve:
            axis.plot(
                list(curve),
                list(curve.values()),
                marker="." if len(curve) < 20 else None,
                label=label,
            )
    axis.set_xlabel("training step")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_report(comparison: Comparison, output: Path) -> None:
    """The table, its legend, what was left out and where the report is."""
    header, rows = table_rows(comparison)
    print(format_text_table(header, rows))
    print(legend(comparison))
    for title, items in record_sections(comparison):
        for item in items:
            print(f"{title.lower()}: {item}")
    print(f"\nreport: {output / 'report.md'} and {output / 'report.html'}; plots: {output}")
