"""Where a saved model is: a local folder, or an MLflow URI resolved to a local copy.

A run logs its trained model to MLflow (:mod:`lossbench.experiment.model_artifact`); it loads back
from ``runs:/<run id>/model`` or the logged model's own ``models:/<model id>``. MLflow's
``download_artifacts`` fetches it; the copy is cached under ``cache_dir`` by URI and store, so a
second load (a sweep evaluating one model on many collections) reads the disk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MLFLOW_SCHEMES = ("runs:/", "models:/")
"""The MLflow URIs a model can be loaded from."""
RUN_FILE = "lossbench_run.json"
"""What a run writes beside a saved model: the run's id and resolved config (see
:func:`lossbench.experiment.model_artifact.save_trained_model`)."""


def is_mlflow_uri(source: str) -> bool:
    """Whether ``source`` names a model in MLflow rather than a folder or a hub id."""
    return str(source).startswith(MLFLOW_SCHEMES)


def default_cache_dir() -> Path:
    """``~/.cache/lossbench/models``: where MLflow models are copied when no cache is given."""
    return Path.home() / ".cache" / "lossbench" / "models"


@contextmanager
def global_tracking_uri(tracking_uri: str | None) -> Iterator[None]:
    """MLflow's global tracking URI set to ``tracking_uri`` while the block runs.

    MLflow 3.17 resolves a logged model's files (``models:/<id>``, and ``runs:/<run id>/model``
    through it) with a client of the global URI, whatever ``tracking_uri`` its caller passed.
    """
    import mlflow

    if tracking_uri is None:
        yield
        return
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def resolve_model_path(
    source: str, tracking_uri: str | None = None, cache_dir: str | Path | None = None
) -> str:
    """A local folder for ``source``: itself, or (an MLflow URI) its copy under ``cache_dir``.

    Raises a ``FileNotFoundError`` naming the URI and the store when MLflow has no such model.
    """
    if not is_mlflow_uri(source):
        return source
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    key = hashlib.sha256(f"{tracking_uri}\n{source}".encode()).hexdigest()[:16]
    target = cache / key
    if target.is_dir():
        return str(target)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as scratch:
        try:
            with global_tracking_uri(tracking_uri):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=scratch, tracking_uri=tracking_uri
                )
        except MlflowException as error:
            raise FileNotFoundError(
                f"model {source!r} is not in the MLflow store {tracking_uri}: {error.message}; "
                "check the run id (the run's page or `mlflow runs list`) and tracking.uri"
            ) from error
        try:
            Path(local).rename(target)
        except OSError:  # another process cached it first
            if not target.is_dir():
                shutil.copytree(local, target)
    return str(target)


def read_saved_json(path: str | Path, expected_format: int) -> dict[str, Any] | None:
    """The JSON record lossbench wrote at ``path`` beside a saved model (its config, its training
    run), or None when there is none; a record of another format is refused, naming it."""
    path = Path(path)
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("format") != expected_format:
        raise ValueError(
            f"{path}: unknown format {record.get('format')!r}; expected {expected_format}"
        )
    return dict(record)
