"""Ratios measured as the issue asks: both sides in one process, interleaved, per-round ratios.

A shared machine's speed drifts by tens of percent over minutes, so a ratio of two timings taken
minutes apart (or in two processes) measures the drift as much as the code. Here every side runs
once per round, in a fixed order (A B A B ... for two sides), each round's ratio compares the sides
of that round, and a figure is the median of the rounds' ratios with their spread beside it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MIN_ROUNDS = 5
"""Rounds of a full-mode figure (a ``--quick`` check may run fewer)."""


def timed_call(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of ``fn()``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_rounds(
    sides: Mapping[str, Callable[[], float]],
    rounds: int,
    report: Callable[[int, str, float], None] | None = None,
) -> dict[str, list[float]]:
    """Run every side once per round, in the mapping's order, ``rounds`` times.

    Each side returns the seconds it measured (a whole call, or one step of it); returns each side's
    seconds, round by round. ``report(round, side, seconds)`` is called after every run.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: expected >= 1")
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for number in range(1, rounds + 1):
        for name, side in sides.items():
            seconds[name].append(float(side()))
            if report is not None:
                report(number, name, seconds[name][-1])
    return seconds


def ratio_stats(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, Any]:
    """Per-round ratios ``numerator[i] / denominator[i]``: their median, min, max and the list."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(
            f"per-round ratios need as many rounds on both sides (got {len(numerator)} "
            f"and {len(denominator)})"
        )
    per_round = [n / d for n, d in zip(numerator, denominator, strict=True)]
    return {
        "median": statistics.median(per_round),
        "min": min(per_round),
        "max": max(per_round),
        "per_round": per_round,
        "rounds": len(per_round),
    }


def seconds_stats(seconds: Sequence[float]) -> dict[str, Any]:
    """A side's raw seconds per round with their median, min and max."""
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "per_round_s": list(seconds),
    }


def ratio_text(ratio: dict[str, Any] | None, digits: int = 3) -> str | None:
    """``1.040 [0.980-1.100]``: the median of the rounds' ratios and their range."""
    if ratio is None:
        return None
    return f"{ratio['median']:.{digits}f} [{ratio['min']:.{digits}f}-{ratio['max']:.{digits}f}]"
