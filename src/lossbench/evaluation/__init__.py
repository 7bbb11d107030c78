"""Evaluation: ranx's metrics on a run, per-query values, and metric names at the MLflow boundary."""

from __future__ import annotations

from lossbench.evaluation.evaluate import (
    DEFAULT_METRICS,
    Evaluation,
    evaluate_run,
    mlflow_metric_name,
)

__all__ = ["DEFAULT_METRICS", "Evaluation", "evaluate_run", "mlflow_metric_name"]
