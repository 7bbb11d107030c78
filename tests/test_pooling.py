"""Which runs pipeline.compare pools: one system per config and code; runs of other code refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lossbench.experiment.pooling import MixedCodeError, describe_code_versions, group_systems


def fake_run(seed: int, status: str = "FINISHED", start: int = 0, **tags: str) -> SimpleNamespace:
    info = SimpleNamespace(
        status=status, run_name=f"run{seed}", run_id=f"id{seed}", start_time=start
    )
    return SimpleNamespace(
        info=info, data=SimpleNamespace(tags={"loss": "ranknet", "seed": str(seed), **tags})
    )


def test_runs_of_one_config_and_code_are_one_system_over_seeds() -> None:
    tags = {"setup_hash": "s", "system_hash": "h", "code_version": "c1", "git_commit": "abc"}
    systems, excluded = group_systems(
        [fake_run(0, **tags), fake_run(1, **tags), fake_run(2, "FAILED", error="boom", **tags)]
    )
    assert list(systems) == ["ranknet"] and sorted(systems["ranknet"].runs) == [0, 1]
    assert excluded == ["run2: FAILED (boom)"]


def test_other_code_for_the_same_config_is_refused_then_pooled_when_allowed() -> None:
    runs = [
        fake_run(0, setup_hash="s", system_hash="h1", code_version="c1", git_commit="abc"),
        fake_run(1, setup_hash="s", system_hash="h2", code_version="c2", git_commit="def"),
    ]
    with pytest.raises(
        MixedCodeError, match=r"ranknet: c1 \(1 run, git abc\), c2 \(1 run, git def\)"
    ):
        group_systems(runs)
    systems, _ = group_systems(runs, allow_mixed_code=True)
    assert sorted(systems["ranknet"].runs) == [0, 1]
    assert describe_code_versions(runs) == {"c1": "1 run, git abc", "c2": "1 run, git def"}


def test_runs_logged_before_code_versions_group_by_their_system_hash() -> None:
    old = [fake_run(0, system_hash="old"), fake_run(1, system_hash="old")]
    systems, _ = group_systems(old)
    assert sorted(systems["ranknet"].runs) == [0, 1]
    assert describe_code_versions(old) == {"unknown": "2 runs, git unknown"}
