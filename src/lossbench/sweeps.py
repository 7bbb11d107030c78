"""Sweeps in MLflow: one parent run per Hydra multirun, a child run per job, resumable by config hash.

* :class:`MlflowSweepCallback` (a Hydra callback, registered in ``conf/config.yaml``) creates the
  sweep's parent run with the MLflow client when the multirun starts -- it is never MLflow's active
  run -- and writes its id into the sweep folder, where every job (local, joblib or SLURM) finds it.
  Running the same sweep command again finds the same parent (by :func:`sweep_hash`), so an
  interrupted sweep resumes under one parent.
* Each job's run carries the tag ``config_hash`` (:func:`config_hash`); a job whose exact resolved
  config already has a FINISHED run is skipped unless ``tracking.rerun=true``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("lossbench")

PARENT_FILE = "mlflow_parent_run_id"
IGNORED_FOR_HASH = ("tracking", "paths", "hydra", "resume", "checkpoint")
"""Top-level keys that say where a run is logged, stored or resumed from, never what it computes."""
IGNORED_SETTINGS_FOR_HASH = (("data", "token_cache_mib"),)
"""``(group, key)`` settings that change how fast a run computes, never what (so adding one keeps
the hashes of earlier runs)."""


def _hashed(resolved: dict[Any, Any], ignored: tuple[str, ...]) -> dict[Any, Any]:
    kept = {k: v for k, v in resolved.items() if k not in ignored}
    for group, key in IGNORED_SETTINGS_FOR_HASH:
        if isinstance(kept.get(group), dict) and key in kept[group]:
            kept[group] = {k: v for k, v in kept[group].items() if k != key}
    return kept


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything that can change a run's result (not where it is logged or stored)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return _digest(_hashed(resolved, IGNORED_FOR_HASH))


def system_hash(cfg: DictConfig) -> str:
    """:func:`config_hash` without the seed: runs that differ only by seed are one system."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return _digest(_hashed(resolved, (*IGNORED_FOR_HASH, "seed")))


def sweep_hash(cfg: DictConfig) -> str:
    """A hash of a sweep command: its command-line overrides (but ``resume=``) and sweeper parameters."""
    overrides = [str(o) for o in cfg.hydra.overrides.task if not str(o).startswith("resume=")]
    params = cfg.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    return _digest({"overrides": sorted(overrides), "params": params})


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The parent run id written into a sweep folder, if any."""
    path = Path(sweep_dir) / PARENT_FILE
    return path.read_text().strip() if path.exists() else None


def find_finished_run(client: Any, experiment_id: str, digest: str) -> Any | None:
    """The most recent FINISHED run of the experiment with this config hash, or None."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.config_hash = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def fail_if_running(uri: str, run_id: str) -> None:
    """End a sweep's parent run FAILED if it is still RUNNING (the sweep stopped before its end)."""
    from lossbench.tracking import connect

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
        from lossbench.checks import ConfigurationError
        from lossbench.launch import check_multi_device
        from lossbench.tracking import connect, get_or_create_experiment

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
            name = tracking.get("sweep_name") or "sweep " + " ".join(map(str, overrides))
            run = client.create_run(
                experiment_id,
                run_name=name,
                tags={
                    "sweep_hash": digest,
                    "lossbench_role": "sweep",
                    "command": " ".join(map(str, overrides)),
                },
            )
            run_id = run.info.run_id
            log.info("sweep parent run %s in experiment %r", run_id, tracking.experiment)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(run_id)
        # A job whose overrides do not compose (loss=ranknett in a list) stops Hydra before
        # on_multirun_end; the parent must not stay RUNNING then.
        atexit.register(fail_if_running, str(tracking.uri), run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lossbench.tracking import connect

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
