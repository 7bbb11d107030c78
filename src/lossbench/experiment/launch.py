"""How a run is spread over devices: which process logs, and which launches work with Hydra.

Lightning's DDP (``trainer=ddp``) starts the other ranks by running the same command again, with
``LOCAL_RANK`` set (under Hydra it adds ``hydra.run.dir=<the job's folder>``, so every rank shares
the run's folder). That works for single runs. Under ``-m`` each re-launched rank would run the whole
sweep again, so a sweep of multi-device jobs must let SLURM start the ranks instead
(``hydra/launcher=submitit_slurm``, ``tasks_per_node`` = devices), which Lightning then joins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lossbench.experiment.checks import ConfigurationError

LAUNCH_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
"""Environment variables set by the launchers of DDP processes: Lightning's re-launch
(``LOCAL_RANK``, ``NODE_RANK``), torchrun (``RANK``) and SLURM tasks (``SLURM_PROCID``)."""

RELAUNCHING_STRATEGIES = ("ddp", "fsdp", "deepspeed")
"""Lightning strategies (prefixes) that start one process per device by re-running the command."""
IN_PROCESS_VARIANTS = ("spawn", "fork", "notebook")
"""Strategy name parts meaning the processes are started from Python instead (``ddp_spawn``)."""

MULTIRUN_HINT = (
    "Lightning's DDP starts the other devices' processes by re-running the command, and under -m "
    "each of them would run the whole sweep again. Run one job per command "
    "(python -m pipeline.run trainer=ddp ..., a shell loop for several), or let SLURM start one "
    "task per device: -m hydra/launcher=submitit_slurm hydra.launcher.tasks_per_node=<devices> "
    "hydra.launcher.gpus_per_node=<devices> (see README, 'Scaling out')"
)


def is_launch_primary() -> bool:
    """True unless this process was started as a DDP rank other than global rank 0.

    Read from the environment, so it is known before ``torch.distributed`` is initialized: the
    processes that Lightning's DDP launcher re-launches (``LOCAL_RANK>0``), torchrun's (``RANK>0``),
    another node's (``NODE_RANK>0``) and SLURM's other tasks (``SLURM_PROCID>0``) are not primary.
    The pipeline lets only the primary process open the MLflow run and write files.
    """
    for name in LAUNCH_RANK_VARIABLES:
        value = os.environ.get(name, "0").strip() or "0"
        if value.isdigit() and int(value) != 0:
            return False
    return True


def processes_launched_externally() -> bool:
    """Whether SLURM (``srun``, submitit) or torchrun started this job's processes, one per device."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return SLURMEnvironment.detect() or TorchElasticEnvironment.detect()


def requested_devices(trainer: Mapping[str, Any]) -> int:
    """The number of processes a Trainer config asks for: devices x nodes.

    ``devices: auto`` (or -1) counts the visible GPUs unless the accelerator is the CPU (where
    Lightning's ``auto`` is one process).
    """
    devices = trainer.get("devices", "auto")
    nodes = int(trainer.get("num_nodes", 1) or 1)
    if isinstance(devices, str) and "," in devices:
        count = len([part for part in devices.split(",") if part.strip()])
    elif isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        count = int(devices)
    elif isinstance(devices, int) and not isinstance(devices, bool):
        count = devices
    elif devices is None or isinstance(devices, str):  # "auto"
        count = -1
    else:  # a list of device indices
        count = len(list(devices))
    if count == -1:
        import torch

        on_cpu = str(trainer.get("accelerator", "auto")) == "cpu"
        count = 1 if on_cpu or not torch.cuda.is_available() else torch.cuda.device_count()
    return max(count, 1) * nodes


def relaunches_command(trainer: Mapping[str, Any]) -> bool:
    """Whether Lightning will start this Trainer's other ranks by running the command again."""
    strategy = trainer.get("strategy", "auto")
    if not isinstance(strategy, str):
        return False
    name = strategy.lower()
    return (
        name.startswith(RELAUNCHING_STRATEGIES)
        and not any(part in name for part in IN_PROCESS_VARIANTS)
        and requested_devices(trainer) > 1
    )


def check_multi_device(
    trainer: Mapping[str, Any], multirun: bool, launched_externally: bool, resume: bool = False
) -> None:
    """Fail before anything runs when a multi-device Trainer config cannot work as launched.

    * ``-m`` with a re-launching strategy on several devices, unless SLURM or torchrun started the
      processes (each re-launched rank would run the whole sweep again);
    * no ``max_steps``: the ranks' shares of a streamed dataset may differ by a batch, so epochs can
      end a step apart; a step budget keeps the ranks in step.
    """
    if not relaunches_command(trainer):
        return
    if resume:
        raise ConfigurationError(
            f"resume=true with trainer.strategy={trainer.get('strategy')} on "
            f"{requested_devices(trainer)} devices is not supported yet (only rank 0 finds the run "
            "to resume); resume on one device (trainer=default), or rerun without resume=true"
        )
    if multirun and not launched_externally:
        raise ConfigurationError(
            f"-m with trainer.strategy={trainer.get('strategy')} on {requested_devices(trainer)} "
            f"devices does not work: {MULTIRUN_HINT}"
        )
    max_steps = trainer.get("max_steps")
    if max_steps is None or int(max_steps) <= 0:
        raise ConfigurationError(
            f"trainer.strategy={trainer.get('strategy')} on {requested_devices(trainer)} devices "
            f"needs a step budget (trainer.max_steps, got {max_steps!r}): each device streams its "
            "own share of the training tuples, and the shares may end a batch apart"
        )
