"""Which runs ``pipeline.compare`` pools into one system, and what it reports beside them.

A *system* is a set of FINISHED runs that differ only by seed and cross-validation fold: the same
``system_hash`` tag, which covers the config and the code but neither the seed nor
``dataset.collection.fold`` (:mod:`lossbench.experiment.identity`; runs of a collection with folds
are tagged ``fold``). Runs of the same config made by different code (the same ``setup_hash``,
another ``code_version``) are not one system: :func:`group_systems` refuses them, naming each code
version, unless ``allow_mixed_code`` pools them anyway. Runs logged before runs carried
``setup_hash`` are grouped by their ``system_hash``.

The folds of one seed test disjoint sets of queries, so the in-domain table pools them: each seed's
run is the union of its folds' runs, evaluated on the union of their qrels (:func:`union_folds`).
That needs every seed of every system to have the same folds (:func:`check_same_folds`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lossbench.data.collection import Qrels, ScoredRun

Fold = int | None
"""A run's cross-validation fold (its ``fold`` tag); None for a collection without folds."""

UNKNOWN_CODE = "unknown"
"""The code version of a run logged before runs carried the ``code_version`` tag."""


class MixedCodeError(ValueError):
    """Runs of one system were made by different code; the message names the versions and the fix."""


class FoldsError(ValueError):
    """The compared runs do not pool into one set of test queries: a (system, seed) lacks folds the
    others have, or two folds of one seed test the same query; the message names which and the fix."""


@dataclass
class SystemRuns:
    """The finished runs of one system: seed -> fold -> MLflow run (fold None: a collection
    without folds, one run per seed)."""

    label: str
    runs: dict[int, dict[Fold, Any]] = field(default_factory=dict)

    def all_runs(self) -> list[Any]:
        """Every run of the system, by seed then fold."""
        return [run for seed in sorted(self.runs) for run in _by_fold(self.runs[seed])]

    def folds(self) -> list[Fold]:
        """The folds any seed of the system has, in order (``[None]``: no folds)."""
        return sorted({f for by_fold in self.runs.values() for f in by_fold}, key=fold_order)

    def first_seed(self) -> dict[Fold, Any]:
        """The runs of the system's lowest seed, by fold: one run per fold."""
        return self.runs[min(self.runs)]


def fold_order(fold: Fold) -> int:
    """Sort key of a fold: no fold (None) first, then by number."""
    return -1 if fold is None else fold


def _by_fold(by_fold: Mapping[Fold, Any]) -> list[Any]:
    return [by_fold[f] for f in sorted(by_fold, key=fold_order)]


def run_fold(run: Any) -> Fold:
    """A run's fold: its ``fold`` tag (None when it has none)."""
    fold = run.data.tags.get("fold")
    return None if fold in (None, "") else int(fold)


def describe_folds(folds: Iterable[Fold]) -> str:
    """``0-4`` for a contiguous range, else ``0, 2, 3``."""
    numbers = sorted(f for f in folds if f is not None)
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(map(str, numbers))


def system_label(run: Any) -> str:
    """A system's name in the report: its loss (``+regularizer`` when it has one)."""
    tags = run.data.tags
    label = tags.get("loss", run.info.run_name or run.info.run_id)
    regularizer = tags.get("regularizer", "none")
    return label if regularizer in ("none", "") else f"{label}+{regularizer}"


def code_version(run: Any) -> str:
    """The ``code_version`` tag of a run (:data:`UNKNOWN_CODE` for runs logged before it existed)."""
    return str(run.data.tags.get("code_version", UNKNOWN_CODE))


def describe_code_versions(runs: Sequence[Any]) -> dict[str, str]:
    """Code version -> ``"<n> runs, git <commit>[, ...]"`` for the runs given."""
    counts = Counter(code_version(run) for run in runs)
    commits: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        commits[code_version(run)].add(run.data.tags.get("git_commit", "unknown"))
    return {
        version: f"{count} run{'s' * (count != 1)}, git {', '.join(sorted(commits[version]))}"
        for version, count in sorted(counts.items())
    }


def _pool_key(run: Any, allow_mixed_code: bool) -> str:
    """The system a run belongs to; neither its seed nor its fold is part of it."""
    tags = run.data.tags
    if tags.get("setup_hash"):
        return str(tags["setup_hash"]) if allow_mixed_code else str(tags["system_hash"])
    return str(tags.get("system_hash") or system_label(run))


def check_one_code_version(runs: Sequence[Any]) -> None:
    """Raise :class:`MixedCodeError` when FINISHED runs of one config (``setup_hash``) come from
    different code versions."""
    by_setup: dict[str, list[Any]] = defaultdict(list)
    for run in runs:
        if run.data.tags.get("setup_hash"):
            by_setup[run.data.tags["setup_hash"]].append(run)
    mixed = [group for group in by_setup.values() if len({code_version(r) for r in group}) > 1]
    if not mixed:
        return
    details = "; ".join(
        f"{system_label(group[0])}: "
        + ", ".join(f"{v} ({d})" for v, d in describe_code_versions(group).items())
        for group in mixed
    )
    raise MixedCodeError(
        f"runs of the same system were made by different code, and pooling them would mix "
        f"their results: {details}. Rerun them with one version of the code "
        f"(tracking.rerun=true), compare the runs of one version (a sweep's parent run id), "
        f"or pass allow_mixed_code=true to pool them anyway"
    )


def group_systems(
    runs: Sequence[Any], allow_mixed_code: bool = False
) -> tuple[dict[str, SystemRuns], list[str]]:
    """Group FINISHED runs into systems over seeds and folds; one run per (seed, fold), the latest.
    Returns the systems by label and the runs left out, with why.

    Raises:
        MixedCodeError: runs of one config made by different code, unless ``allow_mixed_code``.
        FoldsError: a (system, seed) lacks a fold that another has (:func:`check_same_folds`).
    """
    excluded = []
    finished = [r for r in sorted(runs, key=lambda r: r.info.start_time or 0) if is_finished(r)]
    finished_jobs = {key: run for run in finished for key in job_keys(run)}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        if is_finished(run):
            continue
        name = run.info.run_name or run.info.run_id
        note = f"{name}: {run.info.status} ({run.data.tags.get('error', 'no error tag')})"
        again = next((finished_jobs[k] for k in job_keys(run) if k in finished_jobs), None)
        if again is not None:  # the same job ran again: nothing of the comparison is missing
            note += f"; the job ran again and FINISHED as run {again.info.run_id}, which is pooled"
        excluded.append(note)
    if not allow_mixed_code:
        check_one_code_version(finished)
    by_key: dict[str, SystemRuns] = {}
    for run in finished:
        system = by_key.setdefault(_pool_key(run, allow_mixed_code), SystemRuns(system_label(run)))
        seed = int(run.data.tags.get("seed", len(system.runs)))
        system.runs.setdefault(seed, {})[run_fold(run)] = run
    labels = Counter(system.label for system in by_key.values())
    systems = {
        (system.label if labels[system.label] == 1 else f"{system.label} [{key[:6]}]"): system
        for key, system in by_key.items()
    }
    check_same_folds(systems)
    return systems, excluded


def is_finished(run: Any) -> bool:
    return bool(run.info.status == "FINISHED")


def job_keys(run: Any) -> list[tuple[str, ...]]:
    """What identifies the job a run belongs to: its exact config (``config_hash``) and its job
    of a sweep (parent run and ``sweep_job``; a job that failed before its run opened has only this)."""
    tags = run.data.tags
    keys: list[tuple[str, ...]] = []
    if tags.get("config_hash"):
        keys.append(("config", str(tags["config_hash"])))
    if tags.get("sweep_job") and tags.get("mlflow.parentRunId"):
        keys.append(("job", str(tags["mlflow.parentRunId"]), str(tags["sweep_job"])))
    return keys


def check_same_folds(systems: Mapping[str, SystemRuns]) -> None:
    """Raise :class:`FoldsError` unless every seed of every system has the same folds: the folds of
    a seed are pooled into one test set, which must be the same for every (system, seed)."""
    every = sorted(
        {f for system in systems.values() for seed in system.runs.values() for f in seed},
        key=fold_order,
    )
    if None in every and len(every) > 1:
        without = [label for label, system in systems.items() if None in system.folds()]
        folded = [label for label in systems if label not in without]
        raise FoldsError(
            f"runs with cross-validation folds (tag fold: {', '.join(folded)}) and runs without "
            f"({', '.join(without)}) are compared together, and they test different queries. "
            "Compare the runs of one dataset config (sweep=<the parent run id of its sweep>)"
        )
    lacking = [
        f"{label} seed {seed}: fold{'s' * (len(missing) > 1)} {', '.join(map(str, missing))}"
        for label, system in systems.items()
        for seed, by_fold in sorted(system.runs.items())
        if (missing := [f for f in every if f not in by_fold])
    ]
    if lacking:
        raise FoldsError(
            f"each seed's folds are pooled into one test set of folds {describe_folds(every)}, "
            f"but some runs are missing (not run, or not FINISHED): {'; '.join(lacking)}. Rerun "
            "the missing jobs (the same sweep command: its finished jobs are skipped), or compare "
            "the runs of one fold (sweep=<the parent run id of a sweep over that fold>)"
        )


def union_folds(
    parts: Mapping[Fold, tuple[ScoredRun, Qrels]], what: str
) -> tuple[ScoredRun, Qrels]:
    """One seed's pooled test set: the union of its folds' (run, qrels), by query id.

    Raises:
        FoldsError: two folds hold the same query (``what`` names whose runs, for the message).
    """
    run: ScoredRun = {}
    qrels: Qrels = {}
    seen: dict[str, Fold] = {}
    for fold in sorted(parts, key=fold_order):
        fold_run, fold_qrels = parts[fold]
        for qid in {*fold_run, *fold_qrels}:
            if qid in seen:
                raise FoldsError(
                    f"{what}: query {qid} is tested in fold {seen[qid]} and in fold {fold}; the "
                    "folds of one seed must test disjoint queries (the same split settings, "
                    "dataset.collection.fold 0..k-1), or compare each fold alone"
                )
            seen[qid] = fold
        run.update(fold_run)
        qrels.update(fold_qrels)
    return run, qrels


def pooled_runs(systems: dict[str, SystemRuns]) -> list[Any]:
    """Every run the systems pool (every seed and fold)."""
    return [run for system in systems.values() for run in system.all_runs()]
