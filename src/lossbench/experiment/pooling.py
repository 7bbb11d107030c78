"""Which runs ``pipeline.compare`` pools into one system, and what it reports beside them.

A *system* is a set of FINISHED runs that differ only by seed: the same ``system_hash`` tag, which
covers the config and the code (:mod:`lossbench.experiment.identity`). Runs of the same config
made by different code (the same ``setup_hash``, another ``code_version``) are not one system:
:func:`group_systems` refuses them, naming each code version, unless ``allow_mixed_code`` pools
them anyway. Runs logged before runs carried ``setup_hash`` are grouped by their ``system_hash``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

UNKNOWN_CODE = "unknown"
"""The code version of a run logged before runs carried the ``code_version`` tag."""


class MixedCodeError(ValueError):
    """Runs of one system were made by different code; the message names the versions and the fix."""


@dataclass
class SystemRuns:
    """The finished runs of one system: seed -> MLflow run."""

    label: str
    runs: dict[int, Any] = field(default_factory=dict)


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
    tags = run.data.tags
    fold = f"/fold{tags['fold']}" if "fold" in tags else ""  # each fold is compared alone
    if tags.get("setup_hash"):
        return (str(tags["setup_hash"]) if allow_mixed_code else str(tags["system_hash"])) + fold
    return str(tags.get("system_hash") or system_label(run)) + fold


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
    """Group FINISHED runs into systems; one run per seed (the latest). Returns the systems by label
    and the runs left out, with why.

    Raises:
        MixedCodeError: runs of one config made by different code, unless ``allow_mixed_code``.
    """
    excluded = []
    finished = []
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        if run.info.status == "FINISHED":
            finished.append(run)
            continue
        name = run.info.run_name or run.info.run_id
        excluded.append(f"{name}: {run.info.status} ({run.data.tags.get('error', 'no error tag')})")
    if not allow_mixed_code:
        check_one_code_version(finished)
    by_key: dict[str, SystemRuns] = {}
    for run in finished:
        system = by_key.setdefault(_pool_key(run, allow_mixed_code), SystemRuns(system_label(run)))
        system.runs[int(run.data.tags.get("seed", len(system.runs)))] = run
    labels = Counter(system.label for system in by_key.values())
    systems = {
        (system.label if labels[system.label] == 1 else f"{system.label} [{key[:6]}]"): system
        for key, system in by_key.items()
    }
    return systems, excluded


def pooled_runs(systems: dict[str, SystemRuns]) -> list[Any]:
    """Every run the systems pool."""
    return [run for system in systems.values() for run in system.runs.values()]
