"""The MLflow side of a run: store URIs, experiments, the run's lifecycle, params, metrics and files.

Everything goes through an explicit ``MlflowClient`` and run id (never MLflow's global "active run"),
so sweeps, tests and Lightning all write to the run they mean.
"""

from __future__ import annotations

import os
import subprocess
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossbench.experiment.termination import (
    terminate_as_interrupt,
    termination_received,
)

MAX_PARAM_LENGTH = 6000
BATCH_LIMIT = 100
DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")
"""What an ``mlflow.data`` dataset's ``to_dict()`` holds for the dataset entity a run's input names."""


class TrackingError(RuntimeError):
    """The MLflow store cannot be used; the message says which setting to change."""


def normalize_uri(uri: str) -> str:
    """Check a tracking URI and make a sqlite path absolute.

    MLflow 3 refuses file stores (``./mlruns``, ``file:``), so they are rejected here with the fix.
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = Path.cwd() / path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingError(
                f"tracking.uri={uri!r}: cannot create the folder {path.parent} ({error}); "
                "point tracking.uri at a writable place: sqlite:////absolute/path/mlflow.db"
            ) from error
        return f"sqlite:///{path.resolve()}"
    if uri.startswith(("http://", "https://", "postgresql", "mysql", "databricks")):
        return uri
    raise TrackingError(
        f"tracking.uri={uri!r} is not supported: MLflow 3 refuses file stores; use "
        "tracking.uri=sqlite:////absolute/path/mlflow.db or tracking.uri=http://host:port"
    )


@dataclass
class TrackedRun:
    """A started MLflow run: the client, its ids, and where to put its files.

    ``logged_through`` maps a metric to the last step it already has (a reopened run): values at
    or before that step are not logged again, so a resumed run's curves hold each step once.
    """

    client: Any
    run_id: str
    experiment_id: str
    uri: str
    logged_through: dict[str, int] = field(default_factory=dict)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH_LIMIT])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.log_metric_steps([(metrics, step)])

    def log_metric_steps(self, entries: Sequence[tuple[Mapping[str, float], int | None]]) -> None:
        """Several steps' metrics in as few ``log_batch`` calls as MLflow allows."""
        now = int(time.time() * 1000)
        self.log_items(
            [m for metrics, step in entries for m in self.metric_items(metrics, step, now)]
        )

    def metric_items(
        self, metrics: Mapping[str, float], step: int | None, timestamp_ms: int
    ) -> list[Any]:
        """One step's values as MLflow ``Metric`` objects logged at ``timestamp_ms`` (those at or
        before a step a reopened run already has are left out)."""
        from mlflow.entities import Metric

        return [
            Metric(k, float(v), timestamp_ms, step or 0)
            for k, v in metrics.items()
            if (step or 0) > self.logged_through.get(k, -1)
        ]

    def log_items(self, items: Sequence[Any]) -> None:
        """MLflow ``Metric`` objects, one ``log_batch`` per 100."""
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=list(items[start : start + BATCH_LIMIT]))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def set_description(self, text: str) -> None:
        """The run's description on its MLflow page (Markdown)."""
        from lossbench.experiment.ui import DESCRIPTION_TAG

        self.client.set_tag(self.run_id, DESCRIPTION_TAG, text)

    def log_dataset(self, dataset: Any, context: str) -> None:
        """An ``mlflow.data`` dataset as the run's input (the Dataset column), used for ``context``."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        fields = dataset.to_dict()  # name, digest, source, source_type; schema and profile if any
        entity = Dataset(**{key: fields.get(key) for key in DATASET_FIELDS})
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, context)]
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(entity, tags)])

    def log_table(self, table: Any, name: str) -> None:
        """A pandas DataFrame as an MLflow table (``name`` ends in ``.json``), shown by the
        Evaluation view. MLflow appends to a table of that name, so a run logs each table once."""
        self.client.log_table(self.run_id, data=table, artifact_file=name)


class UntrackedRun(TrackedRun):
    """A run that logs nothing: what the DDP ranks other than rank 0 get, so that only rank 0
    creates the MLflow run and writes to it."""

    def __init__(self) -> None:
        super().__init__(client=None, run_id="", experiment_id="", uri="")

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_items(self, items: Sequence[Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def log_dataset(self, dataset: Any, context: str) -> None:
        pass

    def log_table(self, table: Any, name: str) -> None:
        pass


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": "[1, 2]"}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def git_commit(folder: Path | None = None) -> str:
    """The checked-out commit (with ``-dirty`` when there are uncommitted changes), or ``unknown``."""
    try:
        cwd = str(folder or Path.cwd())
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def get_or_create_experiment(client: Any, name: str, artifact_root: str | None) -> str:
    """The id of experiment ``name``, created (with its artifacts under ``artifact_root``) if absent;
    described for the UI (:func:`~lossbench.experiment.ui.describe_experiment`) unless it has its own."""
    from lossbench.experiment.ui import describe_experiment

    experiment_id = _get_or_create_experiment(client, name, artifact_root)
    describe_experiment(client, experiment_id)
    return experiment_id


def _get_or_create_experiment(client: Any, name: str, artifact_root: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if artifact_root:
        folder = Path(artifact_root).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except Exception:  # another process created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast (seconds, not MLflow's minutes of retries) when a tracking server does not answer."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError) as error:
        raise TrackingError(
            f"the MLflow tracking server at {uri} does not answer ({error}); start it, fix tracking.uri, "
            "or set tracking.fallback_uri=sqlite:////abs/path/mlflow.db to log locally instead"
        ) from error


def reachable_uri(uri: str, fallback_uri: str | None = None) -> str:
    """``uri`` if its store answers, else ``fallback_uri`` (with a warning), else a TrackingError."""
    try:
        connect(uri)
        return normalize_uri(uri)
    except TrackingError as error:
        if not fallback_uri:
            raise
        import logging

        logging.getLogger("lossbench").warning("%s -- logging to %s instead", error, fallback_uri)
        connect(fallback_uri)
        return normalize_uri(fallback_uri)


def check_sqlite(uri: str) -> None:
    """Fail in milliseconds when a sqlite store cannot be opened for writing.

    MLflow retries opening a sqlite file for about 100 s before it gives up with a bare SQLAlchemy
    error; sqlite3 itself answers at once.
    """
    import sqlite3

    path = Path(uri.removeprefix("sqlite:///"))
    fix = "point tracking.uri at a writable file: sqlite:////absolute/path/mlflow.db"
    if path.is_dir():
        raise TrackingError(f"tracking.uri={uri!r} names a folder, not a database file; {fix}")
    # sqlite opens a read-only file read-only, and fails only at the first write
    for needed in (path.parent, path) if path.exists() else (path.parent,):
        if not os.access(needed, os.W_OK):
            raise TrackingError(f"tracking.uri={uri!r}: {needed} is not writable; {fix}")
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=rwc", uri=True, timeout=5) as connection:
            connection.execute("PRAGMA schema_version").fetchone()  # reads the header: a database?
        connection.close()
    except sqlite3.Error as error:
        raise TrackingError(f"tracking.uri={uri!r}: cannot open {path} ({error}); {fix}") from error


def connect(uri: str, create: bool = True) -> Any:
    """A client for ``uri``, after checking that the store answers (fails now, not after training);
    ``create=False`` (a command that only reads runs): a sqlite file that does not exist is an
    error, not a new empty store."""
    from mlflow.tracking import MlflowClient

    uri = normalize_uri(uri)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not create and not path.exists():
            raise TrackingError(
                f"no MLflow store at {path}: run the command where the runs were made (their "
                "paths.root) or name their store, tracking.uri=sqlite:////<folder>/mlflow.db"
            )
        check_sqlite(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as error:
        raise TrackingError(f"cannot reach the MLflow store at {uri}: {error}") from error
    return client


def last_logged_steps(client: Any, run_id: str) -> dict[str, int]:
    """The last step each metric of a run has been logged at."""
    metrics = client.get_run(run_id).data.metrics
    return {key: max(m.step for m in client.get_metric_history(run_id, key)) for key in metrics}


def reopen_run(client: Any, uri: str, run_id: str, tags: Mapping[str, Any]) -> TrackedRun:
    """Set an ended run RUNNING again (a resume); its earlier ``error`` tag becomes ``error_before_resume``."""
    run = client.get_run(run_id)
    logged = last_logged_steps(client, run_id)
    tracked = TrackedRun(client, run_id, run.info.experiment_id, normalize_uri(uri), logged)
    tracked.set_tags(tags)
    if "error" in run.data.tags:
        client.set_tag(run_id, "error_before_resume", run.data.tags["error"])
        client.delete_tag(run_id, "error")
    client.update_run(run_id, status="RUNNING")  # last: nothing above can leave it RUNNING
    return tracked


@contextmanager
def tracked_run(
    uri: str,
    experiment: str,
    run_name: str,
    artifact_root: str | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    resume_run_id: str | None = None,
) -> Iterator[TrackedRun]:
    """Start an MLflow run and always end it: FINISHED, FAILED (error kept as a tag and a file) or KILLED.

    With ``parent_run_id`` the run is a child of that run (a sweep's parent), shown nested in the UI.
    With ``resume_run_id`` that earlier run is reopened instead (:func:`reopen_run`, ``tags`` added to
    it); metrics at steps it already has are not logged again.
    """
    client = connect(uri)
    if resume_run_id:
        tracked = reopen_run(client, uri, resume_run_id, tags or {})
    else:
        experiment_id = get_or_create_experiment(client, experiment, artifact_root)
        run_tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
        tracked = TrackedRun(client, run.info.run_id, experiment_id, normalize_uri(uri))
    try:
        with terminate_as_interrupt():
            yield tracked
    except (KeyboardInterrupt, SystemExit) as error:
        # Ctrl-C, SIGTERM, or Lightning's own exit after it caught a Ctrl-C during fit
        client.set_tag(tracked.run_id, "error", f"interrupted ({type(error).__name__})")
        client.set_terminated(tracked.run_id, "KILLED")
        raise
    except BaseException as error:
        if termination_received():  # e.g. a DataLoader worker killed by the same SIGTERM
            client.set_tag(tracked.run_id, "error", f"interrupted (SIGTERM; {error})"[:5000])
            client.set_terminated(tracked.run_id, "KILLED")
            raise KeyboardInterrupt("SIGTERM") from error
        try:
            client.set_tag(tracked.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
            client.log_text(tracked.run_id, traceback.format_exc(), "error.txt")
        finally:
            client.set_terminated(tracked.run_id, "FAILED")
        raise
    else:
        client.set_terminated(tracked.run_id, "FINISHED")
