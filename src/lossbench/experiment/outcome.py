"""What a run gives back: the objective for Hydra sweepers, the summary it prints, and the result of
an earlier FINISHED run of the same config (a skipped job)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lossbench.evaluation import mlflow_metric_name


def previous_objective(cfg: DictConfig, uri: str, digest: str) -> float | None:
    """The objective of an earlier FINISHED run with the same config hash (the job is then skipped)."""
    from lossbench.experiment.identity import find_finished_run
    from lossbench.experiment.tracking import connect

    client = connect(uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    previous = find_finished_run(client, experiment.experiment_id, digest)
    if previous is None:
        return None
    prefix = "test" if cfg.eval.objective_split == "test" else "val"
    value = previous.data.metrics.get(mlflow_metric_name(cfg.eval.objective, prefix), float("nan"))
    print(
        f"skipping: run {previous.info.run_id} already FINISHED with this exact config and code "
        f"(config_hash {digest}); pass tracking.rerun=true to run it again",
        flush=True,
    )
    return float(value)


def objective_value(
    cfg: DictConfig, test_means: dict[str, float], history: list[tuple[int, dict[str, float]]]
) -> float:
    """``eval.objective`` on ``eval.objective_split``: the test split, or the last dev validation."""
    metric, split = cfg.eval.objective, cfg.eval.objective_split
    if split == "test":
        return float(test_means[metric])
    if split != cfg.eval.val_split:
        raise ValueError(f"eval.objective_split={split!r}; valid: test, {cfg.eval.val_split}")
    if not history or metric not in history[-1][1]:
        raise ValueError(
            f"eval.objective={metric!r} must be in eval.val_metrics to be read on {split!r}"
        )
    return float(history[-1][1][metric])


BELOW_START_TAG = "below_start"
"""The tag of a run whose trained model ends below the untrained one on ``eval.objective``."""


def below_start(means: dict[str, float], base: dict[str, float], metric: str) -> str | None:
    """What to warn about when training made the model worse on ``metric`` than it started
    (``test/<metric>`` below ``test/base_<metric>``), else None."""
    if metric not in means or metric not in base or means[metric] >= base[metric]:
        return None
    return (
        f"training made the model worse: test {metric} {means[metric]:.4f} is below the untrained "
        f"model's {base[metric]:.4f}; try a lower learning rate (schedule.optimizer.lr) or fewer "
        "steps, and compare on the dev split (val/*)"
    )


def warn_if_below_start(
    means: dict[str, float], base: dict[str, float], metric: str, tracked: Any
) -> None:
    """Tag the run :data:`BELOW_START_TAG` and print a warning when :func:`below_start` says so."""
    import logging

    warning = below_start(means, base, metric)
    if warning is None:
        return
    tracked.set_tags({BELOW_START_TAG: warning})
    logging.getLogger("lossbench").warning("WARNING: %s", warning)


def print_summary(
    metrics: dict[str, float],
    base: dict[str, float],
    tracked: Any,
    folder: Path,
    first_stage: dict[str, float] | None = None,
) -> None:
    """A short table of the test metrics (trained, untrained, and a re-ranker's first stage) and
    where to find the run. A run without an untrained evaluation (``base`` empty: a reference system
    such as BM25, an evaluation-only run, ``eval.base=false``) gets one ``test`` column."""
    if not base and not first_stage:
        lines = ["", f"{'metric':<12} {'test':>8}"]
        lines += [f"{name:<12} {value:>8.4f}" for name, value in metrics.items()]
    else:
        header = f"{'metric':<12} {'trained':>8} {'untrained':>10}"
        lines = ["", header + (f" {'first stage':>12}" if first_stage else "")]
        for name, value in metrics.items():
            before = f"{base[name]:.4f}" if name in base else "-"
            line = f"{name:<12} {value:>8.4f} {before:>10}"
            if first_stage:
                line += f" {first_stage[name]:>12.4f}" if name in first_stage else f" {'-':>12}"
            lines.append(line)
    lines += [
        "",
        f"MLflow run {tracked.run_id} (experiment id {tracked.experiment_id}) in {tracked.uri}",
        f"files in {folder}; browse with `make ui`",
    ]
    print("\n".join(lines), flush=True)
