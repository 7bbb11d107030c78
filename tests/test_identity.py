"""Run identity = config + code, not machine: a moved checkout or another machine's paths give the
same hashes; a changed source file changes them; docs and tests do not count."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, compose_config

SOURCES = (("src/lossbench", "*.py"), ("pipeline", "*.py"), ("conf", "*.yaml"))


def copy_checkout(target: Path) -> Path:
    """The parts of the checkout a run executes, plus a doc and a test that must not count."""
    for folder in ("src/lossbench", "pipeline", "conf"):
        shutil.copytree(
            REPO / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    (target / "README.md").write_text("docs\n")
    return target


def fingerprint_of(checkout: Path) -> str:
    from lossbench.experiment.identity import code_files, fingerprint

    return fingerprint(code_files([(checkout / folder, pattern) for folder, pattern in SOURCES]))


def test_the_code_version_is_the_contents_wherever_the_checkout_is(tmp_path: Path) -> None:
    from lossbench.experiment.identity import code_version

    here, moved = copy_checkout(tmp_path / "a"), copy_checkout(tmp_path / "elsewhere" / "b")
    assert fingerprint_of(here) == fingerprint_of(moved) == code_version()
    (moved / "src/lossbench/loss/NOTES.md").write_text("not code\n")
    (moved / "conf" / "README.txt").write_text("not code\n")
    assert fingerprint_of(moved) == code_version()


@pytest.mark.parametrize(
    "changed", ["src/lossbench/loss/pairwise.py", "pipeline/run.py", "conf/loss/ranknet.yaml"]
)
def test_a_changed_source_file_changes_the_code_version(tmp_path: Path, changed: str) -> None:
    from lossbench.experiment.identity import code_version

    checkout = copy_checkout(tmp_path / "a")
    path = checkout / changed
    path.write_text(path.read_text() + "\n# a fix\n")
    assert fingerprint_of(checkout) != code_version()


def test_the_hashes_cover_the_code(compose, monkeypatch) -> None:
    from lossbench.experiment import identity

    cfg = compose()
    before = identity.identity_tags(cfg)
    monkeypatch.setattr(identity, "code_version", lambda: "another version")
    after = identity.identity_tags(cfg)
    for tag in ("config_hash", "system_hash", "code_version"):
        assert after[tag] != before[tag], tag
    assert after["setup_hash"] == before["setup_hash"]  # the same system, other code


def test_machine_paths_do_not_count(tmp_path: Path, monkeypatch) -> None:
    """Another root, cache and output folder, and the model in another virtualenv: the same hashes."""
    from lossbench.experiment import identity
    from lossbench.models import backbone

    first = compose_config(tmp_path / "one", tmp_path / "one" / ".cache")
    real = backbone.minilm_path()
    monkeypatch.setattr(backbone, "minilm_path", lambda: "/other/venv/site-packages/minilm")
    second = compose_config(tmp_path / "two" / "deeper", tmp_path / "elsewhere" / "cache")
    assert second.model.model_name_or_path != real  # the resolved configs do differ
    assert second.dataset.collection.cache_dir != first.dataset.collection.cache_dir
    monkeypatch.setattr(backbone, "minilm_path", lambda: real)
    tags_first = identity.identity_tags(first)
    monkeypatch.setattr(backbone, "minilm_path", lambda: "/other/venv/site-packages/minilm")
    assert identity.identity_tags(second) == tags_first
    portable = identity.portable_config(second)
    assert portable["dataset"]["collection"]["cache_dir"] == "<paths.cache>/data"
    assert portable["model"]["model_name_or_path"] == "<minilm>"


def test_what_a_run_computes_changes_the_hash_and_the_seed_only_the_config_hash(compose) -> None:
    from lossbench.experiment.identity import identity_tags

    base = identity_tags(compose())
    other_loss = identity_tags(compose("loss=infonce"))
    other_seed = identity_tags(compose("seed=5"))
    assert other_loss["config_hash"] != base["config_hash"]
    assert other_loss["system_hash"] != base["system_hash"]
    assert other_seed["config_hash"] != base["config_hash"]
    assert other_seed["system_hash"] == base["system_hash"]


def test_the_fold_is_part_of_the_run_not_of_the_system(compose) -> None:
    """Cross-validation: the runs of one config on each fold are one system (pipeline.compare pools
    them), each run tagged with its fold; a collection without folds keeps its hashes."""
    from lossbench.experiment.identity import fold_of, identity_tags, portable_config

    folds = ["dataset=cranfield", "dataset.collection.fold=0"]
    first = compose(*folds, small=False)
    other = compose(folds[0], "dataset.collection.fold=3", small=False)
    assert (fold_of(first), fold_of(other)) == (0, 3)
    assert identity_tags(other)["config_hash"] != identity_tags(first)["config_hash"]
    for tag in ("system_hash", "setup_hash"):
        assert identity_tags(other)[tag] == identity_tags(first)[tag], tag
    assert portable_config(other)["dataset"]["collection"]["fold"] == 3  # still in config_hash
    other_loss = compose(folds[0], "dataset.collection.fold=3", "loss=infonce", small=False)
    assert identity_tags(other_loss)["system_hash"] != identity_tags(first)["system_hash"]
    assert fold_of(compose()) is None  # the synthetic collection has no folds


@pytest.mark.slow  # two new processes that import Hydra and transformers
def test_a_moved_checkout_computes_the_same_hashes_in_a_new_process(
    tmp_path: Path, data_cache: Path
) -> None:
    """The whole path: compose conf/ of a copied checkout, from its own folder, in a new process."""
    script = (
        "import sys; from hydra import compose, initialize_config_dir\n"
        "from lossbench.experiment.config import register_resolvers\n"
        "from lossbench.experiment.identity import identity_tags\n"
        "register_resolvers()\n"
        "with initialize_config_dir(config_dir=sys.argv[1], version_base='1.3'):\n"
        "    cfg = compose(config_name='config', overrides=['loss=infonce'])\n"
        "print(sorted(identity_tags(cfg).items()))\n"
    )
    outputs = []
    for checkout in (copy_checkout(tmp_path / "a"), copy_checkout(tmp_path / "x" / "y" / "b")):
        done = subprocess.run(
            [sys.executable, "-c", script, str(checkout / "conf")],
            cwd=checkout,  # paths.root is the folder the command runs in
            env={"PYTHONPATH": str(checkout / "src"), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(done.stdout.strip().splitlines()[-1])
    from lossbench.experiment.identity import code_version

    assert outputs[0] == outputs[1]
    assert f"('code_version', '{code_version()}')" in outputs[0]
