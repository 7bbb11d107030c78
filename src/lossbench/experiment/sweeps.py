"""Sweeps in MLflow: one parent run per Hydra multirun, a child run per job, resumable by config hash.

* :class:`MlflowSweepCallback` (a Hydra callback, registered in ``conf/config.yaml``) creates the
  sweep's parent run with the MLflow client when the multirun starts -- it is never MLflow's active
  run -- and writes its id into the sweep folder, where every job (local, joblib or SLURM) finds it.
  Running the same sweep command again finds the same parent (by :func:`sweep_hash`), so an
  interrupted sweep resumes under one parent.
* Each job's run carries the tag ``config_hash`` (:mod:`lossbench.experiment.identity`); a job whose
  exact resolved config already has a FINISHED run is skipped unless ``tracking.rerun=true``.
* Every job leaves a record (:mod:`lossbench.experiment.sweep_jobs`): the parent lists the jobs it
  expects; a job that fails, even before its own run opens, is a FAILED child run; a job that does
  not compose stops the sweep before any job runs, as a FAILED child too. The parent ends FINISHED
  only when every job's latest run FINISHED, else FAILED (tags ``failed_jobs``, ``missing_jobs``),
  and ``pipeline.run`` then exits non-zero (:func:`exit_status`).
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lossbench.experiment.identity import digest
from lossbench.experiment.sweep_jobs import (
    child_runs,
    composition_errors,
    expected_jobs,
    job_key,
    job_outcomes,
    read_expected,
    record_failed_job,
    write_jobs_file,
)
from lossbench.experiment.termination import stop_sweep_on_sigterm

log = logging.getLogger("lossbench")

PARENT_FILE = "mlflow_parent_run_id"


def sweep_hash(cfg: DictConfig) -> str:
    """A hash of a sweep command: its command-line overrides (but ``resume=``) and sweeper parameters."""
    overrides = [str(o) for o in cfg.hydra.overrides.task if not str(o).startswith("resume=")]
    params = cfg.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    return digest({"overrides": sorted(overrides), "params": params})


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The parent run id written into a sweep folder, if any."""
    path = Path(sweep_dir) / PARENT_FILE
    return path.read_text().strip() if path.exists() else None


@dataclass
class SweepOutcome:
    """How the last sweep of this process ended (``pipeline.run`` exits non-zero unless it ``ok``)."""

    run_id: str
    failed: dict[str, str]  # job -> error
    missing: list[str]
    runs: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing


LAST_SWEEP: list[SweepOutcome] = []  # at most one: the last sweep that ended in this process
LISTED_JOBS: dict[str, list[str] | None] = {}  # parent run id -> the job keys this process listed


def exit_status() -> int:
    """1 when the last sweep of this process had a failed or missing job, else 0."""
    return 0 if not LAST_SWEEP or LAST_SWEEP[-1].ok else 1


def end_parent(
    uri: str, run_id: str, stopped: str | None = None, jobs_ended: bool = False
) -> SweepOutcome | None:
    """End a sweep's parent run: FINISHED when every job's latest run FINISHED and none is missing,
    else FAILED; tags ``jobs``, ``runs``, ``failed_jobs``, ``failed_runs``, ``missing_jobs``.

    ``stopped``: why the sweep ended before its last job (then it ends FAILED, and does so only if it
    is still RUNNING: a sweep that ended already keeps its status). ``jobs_ended``: the jobs ran in
    processes that have ended with this one (a local launcher), so a child run still RUNNING was
    cut off before it could record it (joblib ends its workers as the sweep stops): it is ended
    KILLED. Never raises: it runs at exit.
    """
    from lossbench.experiment.tracking import connect

    try:
        client = connect(uri)
        parent = client.get_run(run_id)
        if stopped and parent.info.status != "RUNNING":
            return None
        # as listed when the sweep started; read back at exit, the download would fail (MLflow
        # downloads in a thread pool, closed to new work once the interpreter starts to exit)
        expected = LISTED_JOBS[run_id] if run_id in LISTED_JOBS else read_expected(client, run_id)
        if stopped and jobs_ended:
            end_cut_off_jobs(client, parent)
        outcomes = job_outcomes(child_runs(client, parent), expected)
        outcome = SweepOutcome(run_id, outcomes.failed, outcomes.missing, outcomes.runs)
        tags = {
            "jobs": len(expected) if expected is not None else len(outcomes.latest),
            "runs": outcomes.runs,
            "failed_jobs": len(outcome.failed),
            "failed_runs": outcomes.failed_runs,
        }
        if expected is not None:
            tags["missing_jobs"] = len(outcome.missing)
        for key, value in tags.items():
            client.set_tag(run_id, key, str(value))
        if stopped:
            client.set_tag(run_id, "error", stopped)
        write_jobs_file(client, run_id, expected, failed=outcome.failed, missing=outcome.missing)
        client.set_terminated(run_id, "FINISHED" if outcome.ok and not stopped else "FAILED")
    except Exception as error:  # noqa: BLE001 -- at exit: report, never raise
        log.warning("could not end the sweep's parent run %s: %s", run_id, error)
        return None
    LAST_SWEEP[:] = [outcome]
    return outcome


def end_cut_off_jobs(client: Any, parent: Any) -> None:
    """End KILLED the child runs of a stopped sweep that are still RUNNING, saying why."""
    for child in child_runs(client, parent):
        if child.info.status == "RUNNING":
            reason = "interrupted: the sweep was stopped while this job ran (its process ended)"
            client.set_tag(child.info.run_id, "error", reason)
            client.set_terminated(child.info.run_id, "KILLED")


def fail_if_running(uri: str, run_id: str, jobs_ended: bool = False) -> None:
    """At exit: end a sweep's parent run FAILED if it is still RUNNING (the sweep stopped early);
    ``jobs_ended``: as :func:`end_parent`'s."""
    end_parent(
        uri,
        run_id,
        stopped="the sweep stopped before its last job; see its console output",
        jobs_ended=jobs_ended,
    )


def summary(outcome: SweepOutcome) -> str:
    """The line a sweep prints at its end."""
    message = f"sweep done: {outcome.runs} runs under MLflow parent run {outcome.run_id}"
    if outcome.failed:
        message += f"; {len(outcome.failed)} FAILED: " + "; ".join(
            f"{job or 'default'} ({(error.splitlines() or [''])[0][:200]})"
            for job, error in outcome.failed.items()
        )
    if outcome.missing:
        message += f"; {len(outcome.missing)} never ran: " + ", ".join(outcome.missing)
    return message


class MlflowSweepCallback(Callback):
    """Hydra callback: the MLflow parent run of a multirun (created with the client, ended at the end).

    Hydra calls ``on_multirun_start`` before any job and ``on_multirun_end`` after the last one.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lossbench.experiment.checks import ConfigurationError
        from lossbench.experiment.jobs import sweep_description, sweep_name
        from lossbench.experiment.launch import check_multi_device
        from lossbench.experiment.tracking import connect, get_or_create_experiment

        # a sweep of multi-device jobs works only when SLURM starts each job's ranks; otherwise
        # open no parent run: the first job stops the sweep with the error (pipeline.run.main)
        slurm = "SlurmLauncher" in str(config.hydra.launcher.get("_target_", ""))
        try:
            check_multi_device(config.get("trainer") or {}, True, launched_externally=slurm)
        except ConfigurationError:
            return

        tracking = config.tracking
        client = connect(tracking.uri)
        experiment_id = get_or_create_experiment(
            client, tracking.experiment, tracking.get("artifact_root")
        )
        digest = sweep_hash(config)
        existing = client.search_runs(
            [experiment_id],
            filter_string=f"tags.sweep_hash = '{digest}' and tags.lossbench_role = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        overrides = [str(item) for item in config.hydra.overrides.task]
        if existing:
            run_id = existing[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            log.info("resuming sweep %s (MLflow parent run %s)", " ".join(overrides), run_id)
        else:
            run = client.create_run(
                experiment_id,
                run_name=tracking.get("sweep_name") or sweep_name(config),
                tags={
                    "sweep_hash": digest,
                    "lossbench_role": "sweep",
                    "command": " ".join(map(str, overrides)),
                },
            )
            run_id = run.info.run_id
            client.set_tag(run_id, "mlflow.note.content", sweep_description(config, run_id))
            log.info("sweep parent run %s in experiment %r", run_id, tracking.experiment)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(run_id)
        # anything that stops Hydra before on_multirun_end must not leave the parent RUNNING, nor
        # (jobs run on this machine: the basic and joblib launchers) a job's run
        local = "submitit" not in str(config.hydra.launcher.get("_target_", "")).lower()
        atexit.register(fail_if_running, str(tracking.uri), run_id, local)
        stop_sweep_on_sigterm()  # so that atexit runs when the sweep is killed
        self.check_jobs_compose(config, client, run_id)

    def check_jobs_compose(self, config: DictConfig, client: Any, run_id: str) -> None:
        """List the sweep's jobs on its parent run; if any does not compose, record it as a FAILED
        child run and end the parent FAILED: Hydra's basic sweeper composes every job before it
        launches one, and stops the sweep at the first that fails (a callback cannot stop it: Hydra
        turns a callback's exception into a warning)."""
        jobs = expected_jobs(config)
        keys = None if jobs is None else [job_key(job) for job in jobs]
        write_jobs_file(client, run_id, keys)
        LISTED_JOBS[run_id] = keys
        errors = composition_errors(config, jobs) if jobs else {}
        if not errors:
            return
        tracking = config.tracking
        for key, error in errors.items():
            record_failed_job(
                str(tracking.uri),
                str(tracking.experiment),
                tracking.get("artifact_root"),
                run_id,
                key,
                error,
            )
        atexit.unregister(fail_if_running)
        reason = f"{len(errors)} of {len(keys or ())} jobs do not compose; the sweep ran none"
        end_parent(str(tracking.uri), run_id, stopped=reason)
        for key, error in errors.items():  # Hydra's own check stops the sweep next, with the error
            log.error("sweep job %r does not compose: %s", key, error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(fail_if_running)
        run_id = parent_run_id(str(config.hydra.sweep.dir))
        if run_id is None:
            return
        outcome = end_parent(str(config.tracking.uri), run_id)
        if outcome is not None:
            print(summary(outcome), flush=True)
