"""The jobs of a sweep on record: what it should run, which failed (however early), which never ran.

* Each job's MLflow run carries the tag ``sweep_job``: its command-line overrides (as its run name,
  but also when ``tracking.run_name`` names every run alike), so a job is recognised across attempts.
* :func:`expected_jobs`: the jobs a sweep will run, expanded as Hydra's basic sweeper expands them
  (None for sweepers that choose their jobs as they go, such as Optuna). The sweep's parent run keeps
  them in ``sweep_jobs.json``.
* :func:`record_failed_job`: a job that fails before its MLflow run opened (a config or data check,
  a loss/dataset mismatch, a config that does not compose) still gets a FAILED child run named after
  its overrides, with the error as tag and ``error.txt``.
* :func:`job_outcomes`: per job, its latest attempt's status; jobs without any run are *missing*.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("lossbench")

SWEEP_JOB_TAG = "sweep_job"
JOBS_FILE = "sweep_jobs.json"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def job_key(overrides: Sequence[str]) -> str:
    """A job's identity in its sweep: its overrides, without those that only say where it is stored."""
    from lossbench.experiment.jobs import HIDDEN_OVERRIDES

    return " ".join(o for o in overrides if not str(o).lstrip("+~").startswith(HIDDEN_OVERRIDES))


def sweep_job_tags() -> dict[str, str]:
    """``{"sweep_job": <overrides>}`` for a job of a ``-m`` sweep, else nothing."""
    from lossbench.experiment.jobs import hydra_config, in_multirun

    hydra = hydra_config()
    if hydra is None or not in_multirun():
        return {}
    return {SWEEP_JOB_TAG: job_key(list(hydra.overrides.task))}


def expected_jobs(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, in launch order, as Hydra's basic sweeper expands the sweep (its
    ``hydra.sweeper.params`` first, then the command line); None for any other sweeper."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER or not GlobalHydra.instance().is_initialized():
        return None
    params = sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task)]  # type: ignore[union-attr]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [list(job) for batch in batches for job in batch]


def composition_errors(config: DictConfig, jobs: Sequence[Sequence[str]]) -> dict[str, Exception]:
    """``{job key: error}`` for each job whose config does not compose (Hydra would stop there)."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    errors: dict[str, Exception] = {}
    for job in jobs:
        try:
            loader.load_sweep_config(master_config=config, sweep_overrides=list(job))
        except Exception as error:  # noqa: BLE001 -- any composition error is that job's
            errors[job_key(job)] = error
    return errors


def describe_job(cfg: DictConfig) -> dict[str, str]:
    """The tags a failed job's run gets from its config: what it is, as far as its config says."""
    tags = {}
    for group in ("loss", "regularizer", "model", "dataset", "schedule"):
        try:
            tags[group] = str(cfg[group].name)
        except Exception:  # noqa: BLE001 -- a config that failed early may lack or break anything
            continue
    if "seed" in cfg:
        tags["seed"] = str(cfg.seed)
    return tags


def record_failed_job(
    uri: str,
    experiment: str,
    artifact_root: str | None,
    parent_run_id: str | None,
    key: str,
    error: BaseException,
    tags: Mapping[str, str] | None = None,
) -> str | None:
    """A FAILED child run of ``parent_run_id`` named ``key``, with ``error`` as tag and ``error.txt``;
    returns its run id (None, with a warning, when the store cannot take it)."""
    from lossbench.experiment.tracking import tracked_run

    run_tags = {**(tags or {}), SWEEP_JOB_TAG: key, "failed_before_start": "true"}
    opened: list[str] = []
    try:
        with tracked_run(
            uri, experiment, key or "default", artifact_root, run_tags, parent_run_id
        ) as tracked:
            opened.append(tracked.run_id)
            raise error  # tracked_run records it: error tag, error.txt, status FAILED
    except Exception as recorded:  # noqa: BLE001 -- ``error`` itself, or the store failing
        if recorded is not error:
            log.warning("could not record the failed job %r in MLflow: %s", key, recorded)
    return opened[0] if opened else None


def run_sweep_job(cfg: DictConfig, kind: type | None = None) -> float:
    """One job of a ``-m`` sweep: an error ends this job, never the sweep. A job that failed before
    its MLflow run opened gets a FAILED run here; the sweeper gets NaN. ``kind``: the stages to
    run (a subclass of :class:`~lossbench.experiment.stages.Experiment`); None: the ones the model
    config asks for (:func:`~lossbench.experiment.reference_run.experiment_for`)."""
    from lossbench.experiment.jobs import sweep_parent_run_id
    from lossbench.experiment.reference_run import experiment_for
    from lossbench.experiment.termination import forget_termination

    forget_termination()
    experiment = kind(cfg) if kind is not None else experiment_for(cfg)
    try:
        return experiment.run()
    except Exception as error:  # one failing job must not stop the sweep; a SIGTERM does
        from lossbench.experiment.termination import termination_received

        if termination_received():
            raise KeyboardInterrupt("SIGTERM: the sweep stops") from error
        log.error("job failed, the sweep goes on: %s: %s", type(error).__name__, error)
        if experiment.tracked is None and experiment.primary:  # no run of its own to hold it
            tracking = cfg.tracking
            record_failed_job(
                experiment.uri or str(tracking.uri),
                str(tracking.experiment),
                tracking.get("artifact_root"),
                sweep_parent_run_id(),
                sweep_job_tags().get(SWEEP_JOB_TAG, ""),
                error,
                describe_job(cfg),
            )
        return float("nan")


@dataclass
class JobOutcomes:
    """What became of a sweep's jobs: each job's latest status, and the jobs that never ran."""

    latest: dict[str, Any] = field(default_factory=dict)  # job key -> its latest run
    missing: list[str] = field(default_factory=list)
    runs: int = 0
    failed_runs: int = 0

    @property
    def failed(self) -> dict[str, str]:
        """Job key -> the error of its latest run, for each job whose latest run did not finish."""
        return {
            key: run.data.tags.get("error", run.info.status)
            for key, run in self.latest.items()
            if run.info.status != "FINISHED"
        }


def child_runs(client: Any, parent: Any) -> list[Any]:
    """Every run nested under the sweep's parent run, but comparisons."""
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    return [r for r in runs if r.data.tags.get("lossbench_role") != "comparison"]


def job_outcomes(runs: Sequence[Any], expected: Sequence[str] | None) -> JobOutcomes:
    """Group a sweep's child runs (oldest first) by job; ``expected``: the job keys it should have."""
    outcomes = JobOutcomes(runs=len(runs))
    for run in runs:
        key = run.data.tags.get(SWEEP_JOB_TAG) or run.info.run_name or run.info.run_id
        outcomes.latest[key] = run  # the runs come oldest first: the last one stays
        outcomes.failed_runs += run.info.status != "FINISHED"
    outcomes.missing = [key for key in expected or () if key not in outcomes.latest]
    return outcomes


def read_expected(client: Any, run_id: str) -> list[str] | None:
    """The job keys a sweep's parent run lists in ``sweep_jobs.json`` (None if it has none)."""
    import tempfile
    from pathlib import Path

    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(client.download_artifacts(run_id, JOBS_FILE, folder))
            return list(json.loads(path.read_text(encoding="utf-8"))["expected"])
    except Exception:  # noqa: BLE001 -- a sweep of another sweeper, or from before this file
        return None


def write_jobs_file(client: Any, run_id: str, expected: Sequence[str] | None, **extra: Any) -> None:
    """``sweep_jobs.json`` on the parent run: the expected job keys and anything else given."""
    client.log_text(run_id, json.dumps({"expected": expected, **extra}, indent=2), JOBS_FILE)
