"""The comparison report's plots, sized for MLflow's artifact pane: ``metrics.png`` (each metric's
means over seeds with 95% intervals, the reference rows as lines) and the curves over training steps
(``val_ndcg.png``, ``train_loss.png``)."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

from lossbench.experiment.comparison import Comparison, confidence_halfwidth

PANE_WIDTH_INCHES = 7.2
DPI = 100
"""Plots are at most 720 pixels wide: MLflow's artifact pane shows them without scrolling."""


REFERENCE_LINES = [("#b5651d", "--"), ("#2e7d32", ":"), ("#6a1b9a", "-."), ("#444444", (0, (5, 1)))]
"""Colour and line style of the reference rows in ``metrics.png``, in the table's order (repeated
when there are more references; each line is named with its value in the legend)."""


def plot_metric_bars(comparison: Comparison, path: Path) -> Path:
    """One panel per metric (two per row): each system's mean over seeds with its 95% interval,
    each bar labelled with its mean to 3 decimals; each reference row a line of its own colour and
    style, named with its value in the panel's legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted(comparison.means, key=lambda s: -comparison.means[s][comparison.metrics[0]])
    columns = min(2, len(comparison.metrics))
    rows = -(-len(comparison.metrics) // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(PANE_WIDTH_INCHES, 1.2 + (2.2 + 0.07 * len(systems)) * rows),
        squeeze=False,
    )
    for axis, metric in zip(axes.flat, comparison.metrics, strict=False):
        means = [comparison.means[s][metric] for s in systems]
        errors = [confidence_halfwidth(comparison.per_seed[s][metric]) for s in systems]
        colors = ["#888888" if s == comparison.baseline else "#3b75af" for s in systems]
        bars = axis.bar(range(len(systems)), means, yerr=errors, capsize=3, color=colors)
        axis.bar_label(
            bars,
            labels=[f"{m:.3f}" for m in means],
            fontsize=6 if len(systems) > 6 else 7,
            rotation=90 if len(systems) > 6 else 0,
            padding=2,
        )
        references = comparison.references.means.items()
        for (label, reference), (color, style) in zip(references, itertools.cycle(REFERENCE_LINES)):
            value = reference[metric]
            axis.axhline(
                value, color=color, linestyle=style, linewidth=1, label=f"{label} {value:.3f}"
            )
        axis.margins(y=0.25)
        if comparison.references.means:  # named in a band above the bars and lines
            tops = [m + e for m, e in zip(means, errors, strict=True)]
            tops += [reference[metric] for reference in comparison.references.means.values()]
            band = 1.25 + 0.12 * len(comparison.references.means)
            axis.set_ylim(top=max(tops) * band)
            axis.legend(loc="upper right", fontsize=6, framealpha=0.8, handlelength=2.5)
        axis.set_xticks(range(len(systems)), systems, rotation=45, ha="right", fontsize=7)
        axis.set_title(metric, fontsize=9)
        axis.tick_params(axis="y", labelsize=7)
    for axis in list(axes.flat)[len(comparison.metrics) :]:
        axis.set_visible(False)
    fig.suptitle(
        f"test metrics, mean over {len(comparison.seeds)} seed(s), 95% interval "
        f"(grey: baseline {comparison.baseline}; lines: references)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def scale_groups(curves: dict[str, dict[int, float]]) -> list[list[str]]:
    """The curves' labels grouped by scale: sorted by median absolute value, a new group starting
    where a curve's is more than 10 times the smallest of its group."""
    scales = {
        label: statistics.median(abs(v) for v in curve.values())
        for label, curve in curves.items()
        if curve
    }
    groups: list[list[str]] = []
    for label in sorted(scales, key=lambda name: (scales[name], name)):
        if groups and scales[label] <= 10 * max(scales[groups[-1][0]], 1e-12):
            groups[-1].append(label)
        else:
            groups.append([label])
    return groups


def plot_curves(
    curves: dict[str, dict[int, float]],
    title: str,
    ylabel: str,
    path: Path,
    split_scales: bool = False,
) -> Path:
    """Each system's curve over training steps; with ``split_scales``, one panel per scale
    (:func:`scale_groups`), so that a loss of values near 0.01 is not flattened by one near 10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = scale_groups(curves) if split_scales else [sorted(k for k, c in curves.items() if c)]
    groups = groups or [[]]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(PANE_WIDTH_INCHES, 1.0 + 2.8 * len(groups)),
        squeeze=False,
        sharex=True,
    )
    for axis, labels in zip(axes[:, 0], groups, strict=True):
        for label in sorted(labels):
            curve = curves[label]
            axis.plot(
                list(curve),
                list(curve.values()),
                marker="." if len(curve) < 20 else None,
                label=label,
            )
        axis.set_ylabel(ylabel, fontsize=8)
        axis.tick_params(labelsize=7)
        if labels:
            axis.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("training step", fontsize=8)
    axes[0, 0].set_title(title + (" (one panel per scale)" if len(groups) > 1 else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
