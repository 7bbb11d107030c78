"""Which process logs, and which multi-device launches are refused before anything runs."""

from __future__ import annotations

import pytest

from lossbench.experiment.checks import ConfigurationError
from lossbench.experiment.launch import check_multi_device, is_launch_primary, requested_devices


@pytest.mark.parametrize(
    ("environment", "primary"),
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),
        ({"RANK": "3"}, False),
        ({"SLURM_PROCID": "1"}, False),
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, False),
    ],
)
def test_launch_primary_is_read_from_the_launchers_variables(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], primary: bool
) -> None:
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert is_launch_primary() is primary


@pytest.mark.parametrize(
    ("trainer", "count"),
    [
        ({"devices": 2}, 2),
        ({"devices": "4"}, 4),
        ({"devices": [0, 1, 2]}, 3),
        ({"devices": "0,1"}, 2),
        ({"devices": 2, "num_nodes": 2}, 4),
        ({"devices": "auto", "accelerator": "cpu"}, 1),
        ({"devices": -1, "accelerator": "cpu"}, 1),
    ],
)
def test_requested_devices(trainer: dict, count: int) -> None:
    assert requested_devices(trainer) == count


DDP = {"strategy": "ddp", "devices": 2, "accelerator": "cpu", "max_steps": 4}


def test_a_sweep_of_relaunching_ddp_jobs_is_refused_with_the_supported_ways() -> None:
    with pytest.raises(ConfigurationError, match="submitit_slurm hydra.launcher.tasks_per_node"):
        check_multi_device(DDP, multirun=True, launched_externally=False)
    check_multi_device(DDP, multirun=True, launched_externally=True)  # SLURM started the ranks
    check_multi_device(DDP, multirun=False, launched_externally=False)  # a single run
    for fine in (
        {**DDP, "devices": 1},
        {**DDP, "strategy": "ddp_spawn"},
        {**DDP, "strategy": "auto"},
    ):
        check_multi_device(fine, multirun=True, launched_externally=False)


def test_multi_device_training_needs_a_step_budget() -> None:
    with pytest.raises(ConfigurationError, match="trainer.max_steps"):
        check_multi_device({**DDP, "max_steps": -1}, multirun=False, launched_externally=False)


def test_resume_under_ddp_is_refused_before_anything_runs() -> None:
    from lossbench.experiment.launch import check_multi_device

    with pytest.raises(
        ConfigurationError, match="resume=true with trainer.strategy=ddp on 2 devices"
    ):
        check_multi_device({"strategy": "ddp", "devices": 2, "max_steps": 4}, False, False, True)
