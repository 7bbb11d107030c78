"""Which runs pipeline.compare pools: one system per config and code, over seeds and cross-validation
folds; runs of other code refused, a seed lacking a fold refused by name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lossbench.experiment.pooling import (
    FoldsError,
    MixedCodeError,
    describe_code_versions,
    group_systems,
    pooled_runs,
    union_folds,
)


def fake_run(seed: int, status: str = "FINISHED", start: int = 0, **tags: str) -> SimpleNamespace:
    name = f"run{seed}" + (f"-fold{tags['fold']}" if "fold" in tags else "")
    info = SimpleNamespace(status=status, run_name=name, run_id=f"id-{name}", start_time=start)
    return SimpleNamespace(
        info=info, data=SimpleNamespace(tags={"loss": "ranknet", "seed": str(seed), **tags})
    )


def test_runs_of_one_config_and_code_are_one_system_over_seeds() -> None:
    tags = {"setup_hash": "s", "system_hash": "h", "code_version": "c1", "git_commit": "abc"}
    systems, excluded = group_systems(
        [fake_run(0, **tags), fake_run(1, **tags), fake_run(2, "FAILED", error="boom", **tags)]
    )
    assert list(systems) == ["ranknet"] and sorted(systems["ranknet"].runs) == [0, 1]
    assert systems["ranknet"].runs[1] == {None: systems["ranknet"].all_runs()[1]}  # no folds
    assert systems["ranknet"].folds() == [None]
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


TAGS = {"setup_hash": "s", "system_hash": "h", "code_version": "c1", "git_commit": "abc"}


def folded_runs(missing: tuple[int, int] | None = None, **tags: str) -> list[SimpleNamespace]:
    """Seeds 0, 1 x folds 0, 1 of one config (all but ``missing``), each (seed, fold) run twice:
    an older run, then the one to keep (tag ``latest``)."""
    runs = []
    for start, latest in ((0, "no"), (10, "yes")):
        for seed in (0, 1):
            for fold in (0, 1):
                if (seed, fold) != missing:
                    run = fake_run(seed, start=start + fold, fold=str(fold), latest=latest, **tags)
                    runs.append(run)
    return runs


def test_two_seeds_by_two_folds_of_one_config_are_one_system_of_four_runs() -> None:
    systems, excluded = group_systems(folded_runs(**TAGS))
    assert list(systems) == ["ranknet"] and not excluded
    system = systems["ranknet"]
    assert sorted(system.runs) == [0, 1] and all(sorted(f) == [0, 1] for f in system.runs.values())
    assert system.folds() == [0, 1]
    kept = pooled_runs(systems)
    assert len(kept) == 4 and {r.data.tags["latest"] for r in kept} == {"yes"}  # the latest
    assert {(r.data.tags["seed"], r.data.tags["fold"]) for r in kept} == {
        ("0", "0"),
        ("0", "1"),
        ("1", "0"),
        ("1", "1"),
    }
    assert system.runs[1][0].info.run_name == "run1-fold0"


def test_a_seed_without_one_of_the_folds_is_refused_naming_it_and_the_fix() -> None:
    with pytest.raises(FoldsError, match=r"folds 0, 1.*ranknet seed 1: fold 1\. Rerun the missing"):
        group_systems([r for r in folded_runs(**TAGS) if r.info.run_name != "run1-fold1"])
    failed = fake_run(1, "FAILED", start=20, fold="1", error="boom", **TAGS)  # its only run failed
    runs = [r for r in folded_runs(**TAGS) if r.info.run_name != "run1-fold1"] + [failed]
    with pytest.raises(FoldsError, match="ranknet seed 1: fold 1"):
        group_systems(runs)


def test_two_systems_with_other_folds_are_refused_naming_the_one_lacking() -> None:
    other = {**TAGS, "setup_hash": "s2", "system_hash": "h2", "loss": "bce"}
    runs = folded_runs(**TAGS) + [r for r in folded_runs(**other) if r.data.tags["fold"] == "0"]
    with pytest.raises(FoldsError, match="bce seed 0: fold 1; bce seed 1: fold 1") as raised:
        group_systems(runs)
    assert "ranknet" not in str(raised.value)
    unfolded = [fake_run(0, **other), fake_run(1, **other)]  # a dataset without folds
    with pytest.raises(FoldsError, match=r"folds \(tag fold: ranknet\) and runs without \(bce\)"):
        group_systems(folded_runs(**TAGS) + unfolded)


def test_the_folds_of_a_seed_are_pooled_only_when_they_test_disjoint_queries() -> None:
    fold0 = ({"q1": {"d1": 1.0}}, {"q1": {"d1": 1}})
    fold1 = ({"q2": {"d2": 0.5}}, {"q2": {"d3": 2}})
    run, qrels = union_folds({0: fold0, 1: fold1}, "ranknet seed 0")
    assert run == {"q1": {"d1": 1.0}, "q2": {"d2": 0.5}}
    assert qrels == {"q1": {"d1": 1}, "q2": {"d3": 2}}
    with pytest.raises(
        FoldsError, match="ranknet seed 0: query q1 is tested in fold 0 and in fold 1"
    ):
        union_folds({0: fold0, 1: fold0}, "ranknet seed 0")


def test_a_failed_attempt_of_a_job_that_ran_again_says_nothing_is_missing() -> None:
    """A job that failed, then FINISHED when the sweep ran again: the failure stays on the record,
    saying which run took its place; a failure nothing replaced says only why it failed."""
    tags = {"system_hash": "s", "setup_hash": "u", "code_version": "c"}
    job = {"mlflow.parentRunId": "p", "sweep_job": "seed=0 loss=ranknet"}
    failed = fake_run(0, "FAILED", 1, error="FileNotFoundError: idx", **tags, **job)  # before start
    again = fake_run(0, "FINISHED", 2, config_hash="a", **tags, **job)
    lost = fake_run(1, "FAILED", 3, config_hash="b", error="OOM", **tags)
    killed = fake_run(2, "KILLED", 4, config_hash="c", error="SIGTERM", **tags)
    rerun = fake_run(2, "FINISHED", 5, config_hash="c", **tags)  # the same config, run again
    systems, excluded = group_systems([failed, again, lost, killed, rerun])
    assert sorted(systems["ranknet"].runs) == [0, 2]
    assert excluded == [
        f"{failed.info.run_name}: FAILED (FileNotFoundError: idx); the job ran again and "
        f"FINISHED as run {again.info.run_id}, which is pooled",
        f"{lost.info.run_name}: FAILED (OOM)",
        f"{killed.info.run_name}: KILLED (SIGTERM); the job ran again and FINISHED as run "
        f"{rerun.info.run_id}, which is pooled",
    ]
