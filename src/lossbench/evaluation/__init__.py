"""Evaluation: the ranking of record, ranx's metrics on it, and metric names at the MLflow boundary."""

from __future__ import annotations

from lossbench.evaluation.evaluate import (
    DEFAULT_METRICS,
    Evaluation,
    check_metric_names,
    evaluate_run,
    mlflow_metric_name,
)
from lossbench.evaluation.ranking import RankedRun, Ranking, rank, rank_rows, rank_run

__all__ = [
    "DEFAULT_METRICS",
    "Evaluation",
    "RankedRun",
    "Ranking",
    "check_metric_names",
    "evaluate_run",
    "mlflow_metric_name",
    "rank",
    "rank_rows",
    "rank_run",
]
