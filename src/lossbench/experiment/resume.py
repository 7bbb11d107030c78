"""``resume=true``: find the unfinished MLflow run of the same config and the checkpoint it continues from.

A run is "the same" when its ``config_hash`` tag matches (:func:`lossbench.experiment.identity.config_hash`:
the config, without ``resume``, ``checkpoint``, ``tracking``, ``paths`` and machine paths, and the
code's fingerprint; a run started by other code is not continued). The newest such run decides:
FINISHED means there is nothing to resume; FAILED, KILLED or RUNNING with a checkpoint in its
``checkpoint_dir`` (a tag written when it started) is reopened and trained on from that checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossbench.training.checkpoints import CHECKPOINT_DIR_TAG, last_checkpoint

log = logging.getLogger("lossbench")

UNFINISHED = ("FAILED", "KILLED", "RUNNING")


class ResumeError(RuntimeError):
    """There is no run to resume; the message says what was looked for and what to do instead."""


@dataclass
class ResumePoint:
    """An unfinished run and the checkpoint to continue it from."""

    run_id: str
    status: str
    checkpoint: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoint.parent

    def tags(self, command: str, git_commit: str) -> dict[str, str]:
        """The tags a resume adds to the run (its first command and commit stay as they were)."""
        return {
            "resumed_from_step": str(self.step),
            "resumed_after": self.status,
            "resume_command": command,
            "resume_git_commit": git_commit,
        }

    def base_means(self, metrics: Iterable[str]) -> dict[str, float]:
        """The untrained model's test metrics the run logged before it stopped (``test/base_<name>``)."""
        from lossbench.evaluation import mlflow_metric_name

        names = {m: f"test/base_{mlflow_metric_name(m)}" for m in metrics}
        return {m: self.metrics[name] for m, name in names.items() if name in self.metrics}


def runs_of_config(client: Any, experiment: str, digest: str) -> list[Any]:
    """The runs of config ``digest`` (tag ``config_hash``) in ``experiment``, newest first (100 at
    most); none when the experiment does not exist."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return list(
        client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.config_hash = '{digest}'",
            order_by=["attributes.start_time DESC"],
            max_results=100,
        )
    )


def find_resume_point(
    client: Any, experiment: str, digest: str, where: str = ""
) -> ResumePoint | None:
    """The newest run of config ``digest`` in ``experiment`` to continue, None if it FINISHED.

    Raises:
        ResumeError: no run of this config, or none that stopped after its first checkpoint.
    """
    looked_for = (
        f"a FAILED, KILLED or RUNNING run with a checkpoint and tag config_hash={digest} "
        f"in experiment {experiment!r}{f' of {where}' if where else ''}"
    )
    fix = (
        "run the same command without resume=true to start a new run "
        "(checkpoint.every_n_steps sets how often it saves what a resume needs)"
    )
    passed_over = []
    for run in runs_of_config(client, experiment, digest):
        status, run_id = run.info.status, run.info.run_id
        if status == "FINISHED":
            print(
                f"resume=true: run {run_id} already FINISHED with this exact config "
                f"(config_hash {digest}); nothing to resume",
                flush=True,
            )
            return None
        if status not in UNFINISHED:
            continue
        folder = run.data.tags.get(CHECKPOINT_DIR_TAG)
        last = last_checkpoint(folder) if folder else None
        if last is None:
            why = (
                f"no checkpoint in {folder}"
                if folder
                else "started with checkpoint.every_n_steps=null"
            )
            passed_over.append(f"{run_id} ({status}, {why})")
            continue
        step, path = last
        if status == "RUNNING":
            log.warning(
                "resuming run %s, which is still marked RUNNING: if its process is alive, stop it first",
                run_id,
            )
        return ResumePoint(run_id, status, path, step, dict(run.data.metrics))
    seen = (
        f"; runs of this config without a checkpoint: {', '.join(passed_over)}"
        if passed_over
        else ""
    )
    raise ResumeError(f"resume=true found nothing to resume: looked for {looked_for}{seen}; {fix}")


def resume_point(uri: str, experiment: str, digest: str, rerun: bool = False) -> ResumePoint | None:
    """:func:`find_resume_point` in the store at ``uri``; ``tracking.rerun=true`` contradicts a resume."""
    from lossbench.experiment.tracking import connect

    if rerun:
        raise ResumeError(
            "resume=true and tracking.rerun=true contradict each other: drop tracking.rerun to "
            "continue the unfinished run, or drop resume to start a new one"
        )
    return find_resume_point(connect(uri), experiment, digest, uri)
