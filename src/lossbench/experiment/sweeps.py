"""Sweeps in MLflow: one parent run per Hydra multirun, a child run per job, resumable by config hash.

* :class:`MlflowSweepCallback` (a Hydra callback, registered in ``conf/config.yaml``) creates the
  sweep's parent run with the MLflow client when the multirun starts -- it is never MLflow's active
  run -- and writes its id into the sweep folder, where every job (local, joblib or SLURM) finds it.
  Running the same sweep command again finds the same parent (by :func:`sweep_hash`), so an
  interrupted sweep resumes under one parent.
* Each job's run carries the tag ``config_hash`` (:mod:`lossbench.experiment.identity`); a job whose
  exact resolved config already has a FINISHED run is skipped unless ``tracking.rerun=true``.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lossbench.experiment.identity import digest

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


def fail_if_running(uri: str, run_id: str) -> None:
    """End a sweep's parent run FAILED if it is still RUNNING (the sweep stopped before its end)."""
    from lossbench.experiment.tracking import connect

    try:
        client = connect(uri)
        if client.get_run(run_id).info.status != "RUNNING":
            return
        client.set_tag(
            run_id, "error", "the sweep stopped before its last job; see its console output"
        )
        client.set_terminated(run_id, "FAILED")
    except Exception as error:  # noqa: BLE001 -- at exit: report, never raise
        log.warning("could not end the sweep's parent run %s: %s", run_id, error)


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
        # A job whose overrides do not compose (loss=ranknett in a list) stops Hydra before
        # on_multirun_end; the parent must not stay RUNNING then.
        atexit.register(fail_if_running, str(tracking.uri), run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lossbench.experiment.tracking import connect

        atexit.unregister(fail_if_running)
        run_id = parent_run_id(str(config.hydra.sweep.dir))
        if run_id is None:
            return
        client = connect(config.tracking.uri)
        parent = client.get_run(run_id)
        children = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
        )
        failed = [c for c in children if c.info.status != "FINISHED"]
        client.set_tag(run_id, "jobs", str(len(children)))
        client.set_tag(run_id, "failed_jobs", str(len(failed)))
        client.set_terminated(run_id, "FINISHED")
        message = f"sweep done: {len(children)} runs under MLflow parent run {run_id}"
        if failed:
            names = ", ".join(c.info.run_name or c.info.run_id for c in failed)
            message += f"; {len(failed)} FAILED: {names}"
        print(message, flush=True)
