"""Systems compared on one collection: means and standard deviations over seeds, and ranx's paired
significance tests against a baseline, corrected for multiple testing.

A system's runs over seeds ``s`` and test queries ``q`` are pooled into one ranx Run with query ids
``s:q`` (the qrels repeated per seed), so ranx ``compare`` pairs the same query of the same seed
across systems: a paired test over (seed, query) pairs. Means and standard deviations over seeds
come from each seed's own evaluation of its run file.

A run is keyed by its seed, or, where each cross-validation fold's model was tested on the same
queries (another collection, ``eval.collections``), by its (seed, fold) :data:`Instance`: the same
test then pairs ((seed, fold), query), and the mean and std are over the (seed, fold) models.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from lossbench.data.collection import Qrels, ScoredRun
from lossbench.evaluation import evaluate_run
from lossbench.experiment.reference import References

STAT_TESTS = ("student", "fisher", "tukey")
CORRECTIONS = ("holm", "bonferroni", "none")

Instance = int | tuple[int, int]
"""What the runs of the systems are paired by: a seed, or a (seed, fold)."""
Key = TypeVar("Key", bound=Instance)


@dataclass
class PooledFolds:
    """How the in-domain table pooled cross-validation folds: each seed's run is the union of its
    folds' runs (the folds' test queries are disjoint)."""

    folds: list[int]
    dataset: str
    queries: int  # the test queries of every fold together


@dataclass
class Comparison:
    """Everything the report shows."""

    metrics: list[str]
    baseline: str
    seeds: Sequence[Instance]  # seeds, or (seed, fold) pairs
    means: dict[str, dict[str, float]]  # system -> metric -> mean over seeds
    stds: dict[str, dict[str, float]]  # system -> metric -> std over seeds
    per_seed: dict[str, dict[str, list[float]]]  # system -> metric -> value per seed
    p_values: dict[str, dict[str, float]]  # system -> metric -> corrected p vs baseline
    win_tie_loss: dict[
        str, dict[str, tuple[int, int, int]]
    ]  # system -> metric -> (W, T, L) vs baseline
    excluded: list[str]  # runs left out, and why
    stat_test: str = "student"
    correction: str = "holm"
    max_p: float = 0.05
    code_versions: dict[str, str] = field(default_factory=dict)  # version -> runs, git commits
    failed_jobs: dict[str, str] = field(default_factory=dict)  # job -> error of its latest run
    missing_jobs: list[str] = field(default_factory=list)  # jobs of the sweep that never ran
    collections: dict[str, Comparison] = field(default_factory=dict)  # eval.collections, by label
    references: References = field(default_factory=References)  # BM25's row: reference.py
    pooled_folds: PooledFolds | None = None  # the folds each seed's test set pools, if any

    @property
    def collection_means(self) -> dict[str, dict[str, float]]:
        """system -> metric -> the mean over :attr:`collections` of its mean over seeds (BEIR's
        average); empty without collections."""
        if not self.collections:
            return {}
        tables = list(self.collections.values())
        return {
            system: {m: sum(t.means[system][m] for t in tables) / len(tables) for m in self.metrics}
            for system in self.means
        }

    def significant(self, system: str, metric: str) -> bool:
        return self.p_values.get(system, {}).get(metric, 1.0) < self.max_p


def instance_id(instance: Instance) -> str:
    """``0`` for seed 0, ``0/3`` for seed 0 fold 3."""
    return "/".join(map(str, instance)) if isinstance(instance, tuple) else str(instance)


def pool_seeds(
    runs: dict[Key, ScoredRun], qrels: Qrels, seeds: Sequence[Key]
) -> tuple[ScoredRun, Qrels]:
    """One run and qrels over (seed, query) pairs: query ids become ``seed:qid`` (``seed/fold:qid``
    for (seed, fold) instances)."""
    ids = {s: instance_id(s) for s in seeds}
    pooled_run = {f"{ids[s]}:{q}": docs for s in seeds for q, docs in runs[s].items() if q in qrels}
    pooled_qrels = {f"{ids[s]}:{q}": docs for s in seeds for q, docs in qrels.items()}
    return pooled_run, pooled_qrels


def adjust(p_values: dict[str, float], correction: str) -> dict[str, float]:
    """Correct a family of p-values for multiple testing (Bonferroni, or Holm's step-down)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction={correction!r}; valid: {', '.join(CORRECTIONS)}")
    count = len(p_values)
    if correction == "none" or count == 0:
        return dict(p_values)
    if correction == "bonferroni":
        return {k: min(1.0, p * count) for k, p in p_values.items()}
    adjusted, running = {}, 0.0
    for rank, (key, p) in enumerate(sorted(p_values.items(), key=lambda item: item[1])):
        running = max(running, min(1.0, (count - rank) * p))
        adjusted[key] = running
    return adjusted


def compare_systems(
    runs: dict[str, dict[Key, ScoredRun]],
    qrels: Qrels,
    metrics: Sequence[str],
    baseline: str,
    stat_test: str = "student",
    correction: str = "holm",
    max_p: float = 0.05,
    excluded: Sequence[str] = (),
) -> Comparison:
    """Means/stds over seeds, and paired significance against ``baseline`` on the seeds all systems
    share; ``runs``: system -> seed (or (seed, fold) :data:`Instance`) -> run."""
    if baseline not in runs:
        raise ValueError(
            f"baseline={baseline!r} is not among the systems: {', '.join(sorted(runs))}"
        )
    if stat_test not in STAT_TESTS:
        raise ValueError(f"stat_test={stat_test!r}; valid: {', '.join(STAT_TESTS)}")
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in runs.values())))
    if not seeds:
        raise ValueError("the systems share no seed, so no paired comparison is possible")
    means, stds, per_seed = {}, {}, {}
    for system, by_seed in runs.items():
        values = {
            m: [evaluate_run(qrels, by_seed[s], [m]).means[m] for s in seeds] for m in metrics
        }
        per_seed[system] = values
        means[system] = {m: sum(v) / len(v) for m, v in values.items()}
        stds[system] = {m: _std(v) for m, v in values.items()}
    p_values, win_tie_loss = paired_tests(
        runs, qrels, metrics, baseline, seeds, stat_test, correction, max_p
    )
    return Comparison(
        metrics=list(metrics),
        baseline=baseline,
        seeds=seeds,
        means=means,
        stds=stds,
        per_seed=per_seed,
        p_values=p_values,
        win_tie_loss=win_tie_loss,
        excluded=list(excluded),
        stat_test=stat_test,
        correction=correction,
        max_p=max_p,
    )


def paired_tests(
    runs: dict[str, dict[Key, ScoredRun]],
    qrels: Qrels,
    metrics: Sequence[str],
    baseline: str,
    seeds: Sequence[Key],
    stat_test: str,
    correction: str,
    max_p: float,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, tuple[int, int, int]]]]:
    """ranx's paired test of every system against ``baseline`` over (seed, query) pairs.

    Returns the corrected p-values (system -> metric -> p) and win/tie/loss counts.
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import compare

    names = [baseline, *sorted(s for s in runs if s != baseline)]
    pooled = {name: pool_seeds(runs[name], qrels, seeds) for name in names}
    ranx_runs = []
    for name in names:
        ranx_run = RanxRun(pooled[name][0])
        ranx_run.name = name
        ranx_runs.append(ranx_run)
    report = compare(
        RanxQrels(pooled[baseline][1]),
        ranx_runs,
        list(metrics),
        stat_test=stat_test,
        max_p=max_p,
        make_comparable=True,
    )
    raw: dict[str, dict[str, float]] = defaultdict(dict)
    win_tie_loss: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    for name in names[1:]:
        for metric in metrics:
            raw[metric][name] = float(report.comparisons[name, baseline][metric]["p_value"])
            counts = report.win_tie_loss[(name, baseline)][metric]
            win_tie_loss[name][metric] = (counts["W"], counts["T"], counts["L"])
    p_values: dict[str, dict[str, float]] = defaultdict(dict)
    for metric in metrics:
        for name, p in adjust(raw[metric], correction).items():
            p_values[name][metric] = p
    return dict(p_values), dict(win_tie_loss)


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def confidence_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the 95% t-interval of the mean over seeds (0 with a single seed)."""
    if len(values) < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.975, len(values) - 1) * _std(values) / math.sqrt(len(values)))
