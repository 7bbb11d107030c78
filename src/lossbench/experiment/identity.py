"""Run identity: the hashes that decide whether two runs computed the same thing.

A run's result depends on its config and on the code that ran it; never on the machine. So every
hash here covers

* the resolved config, minus the keys that say where a run is logged, stored or resumed from
  (:data:`IGNORED_FOR_HASH`), with every machine path in it written relative to the root it lies
  under (``paths.cache`` -> ``<paths.cache>/data``, the shipped MiniLM folder -> ``<minilm>``:
  :func:`portable_config`), so the same config from a moved checkout or another machine hashes the
  same; and
* :func:`code_version`: a fingerprint of the code, the contents of lossbench's sources, the
  ``pipeline`` entry points and ``conf/`` (not docs, tests or benchmarks), so a changed source
  file changes every hash.

The hashes (MLflow tags):

* :func:`config_hash` (``config_hash``): a job whose exact config and code already have a FINISHED
  run is skipped (:func:`find_finished_run`); ``resume=true`` finds the run it continues by it.
* :func:`system_hash` (``system_hash``): the same without the seed and the cross-validation fold
  (``dataset.collection.fold``, tagged ``fold``): ``pipeline.compare`` pools the runs of one system
  over seeds, and over folds into one table of every fold's test queries.
* :func:`setup_hash` (``setup_hash``): the system without the code: runs of one system made by
  different code share it, which lets ``pipeline.compare`` name them and refuse to pool them
  (unless ``allow_mixed_code=true``).
* ``code_version``: :func:`code_version` itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lossbench.experiment.jobs import CONF_DIR

IGNORED_FOR_HASH = ("tracking", "paths", "hydra", "resume", "checkpoint", "save_model")
"""Top-level keys that say where a run is logged, stored or resumed from, never what it computes."""
IGNORED_SETTINGS_FOR_HASH = (
    ("data", "token_cache_mib"),
    ("data", "token_store"),
    ("eval", "reuse_base"),
)
"""``(group, key)`` settings that change how fast a run computes, never what (so adding one keeps
the hashes of earlier runs)."""

PACKAGE_DIR = Path(__file__).resolve().parents[1]
"""``src/lossbench``."""
CODE_FILES = ((PACKAGE_DIR, "*.py"), (CONF_DIR.parent / "pipeline", "*.py"), (CONF_DIR, "*.yaml"))
"""What :func:`code_version` reads: (folder, pattern), searched recursively."""


def digest(payload: Any) -> str:
    """The first 16 hex digits of the SHA-256 of ``payload`` as canonical JSON (sorted keys)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint(files: Iterable[tuple[str, bytes]]) -> str:
    """16 hex digits of the SHA-256 over ``(name, content)`` pairs, in name order."""
    sha = hashlib.sha256()
    for name, content in sorted(files):
        sha.update(name.encode("utf-8") + b"\0" + hashlib.sha256(content).digest())
    return sha.hexdigest()[:16]


def code_files(sources: Iterable[tuple[Path, str]] = CODE_FILES) -> list[tuple[str, bytes]]:
    """``(name, content)`` of every file :func:`code_version` covers, named from its source folder
    (``lossbench/loss/pairwise.py``, ``conf/loss/ranknet.yaml``): where the folders are does not count."""
    files = []
    for folder, pattern in sources:
        for path in folder.rglob(pattern):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            files.append(
                (f"{folder.name}/{path.relative_to(folder).as_posix()}", path.read_bytes())
            )
    return files


@functools.cache
def code_version() -> str:
    """The fingerprint of the code this process runs: lossbench's sources, pipeline/ and conf/.

    Content only: the checkout's location, file times and git state do not count (``git_commit``
    says which commit, when there is one).
    """
    return fingerprint(code_files())


def machine_roots(cfg: DictConfig) -> dict[str, str]:
    """Absolute folders of this machine that a resolved config may contain, by placeholder:
    every ``paths.*`` folder, the checkout, and the shipped MiniLM model."""
    roots: dict[str, str] = {"<checkout>": str(CONF_DIR.parent)}
    paths = cfg.get("paths")
    if paths is not None:
        for key in paths:
            value = paths.get(key)
            if (
                isinstance(value, str)
                and Path(value).is_absolute()
                and Path(value).parent != Path(value)
            ):
                roots[f"<paths.{key}>"] = str(Path(value))
    try:
        from lossbench.models.backbone import minilm_path

        roots["<minilm>"] = str(Path(minilm_path()))
    except Exception:  # noqa: BLE001 -- the model package is absent: nothing of it in the config
        pass
    return roots


def _portable(value: Any, roots: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _portable(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v, roots) for v in value]
    if isinstance(value, str):
        for placeholder, root in roots:  # the longest root first
            if value == root or value.startswith(root.rstrip("/") + "/"):
                return placeholder + value[len(root.rstrip("/")) :]
    return value


def portable_config(cfg: DictConfig, ignored: tuple[str, ...] = IGNORED_FOR_HASH) -> dict[Any, Any]:
    """The resolved config that identifies a run: ``ignored`` keys left out, machine paths replaced
    by their placeholder (:func:`machine_roots`)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    kept = {k: v for k, v in resolved.items() if k not in ignored}
    for group, key in IGNORED_SETTINGS_FOR_HASH:
        if isinstance(kept.get(group), dict) and key in kept[group]:
            kept[group] = {k: v for k, v in kept[group].items() if k != key}
    roots = sorted(machine_roots(cfg).items(), key=lambda item: -len(item[1]))
    return dict(_portable(kept, roots))


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything that can change a run's result: the config and the code."""
    return digest({"config": portable_config(cfg), "code": code_version()})


def fold_of(cfg: DictConfig) -> int | None:
    """The cross-validation fold a run tests on (``dataset.collection.fold``); None for a
    collection without folds."""
    fold = OmegaConf.select(cfg, "dataset.collection.fold", default=None)
    return None if fold is None else int(fold)


def system_config(cfg: DictConfig) -> dict[Any, Any]:
    """:func:`portable_config` without the seed and the fold: what one system's runs share."""
    config = portable_config(cfg, (*IGNORED_FOR_HASH, "seed"))
    collection = config.get("dataset", {}).get("collection")
    if isinstance(collection, dict) and "fold" in collection:
        without_fold = {k: v for k, v in collection.items() if k != "fold"}
        config["dataset"] = {**config["dataset"], "collection": without_fold}
    return config


def system_hash(cfg: DictConfig) -> str:
    """:func:`config_hash` without the seed and the fold: runs that differ only by those are one
    system."""
    return digest({"config": system_config(cfg), "code": code_version()})


def setup_hash(cfg: DictConfig) -> str:
    """:func:`system_hash` without the code: the same system, whatever code ran it."""
    return digest({"config": system_config(cfg)})


def identity_tags(cfg: DictConfig) -> dict[str, str]:
    """The identity tags of a run: ``config_hash``, ``system_hash``, ``setup_hash``, ``code_version``."""
    return {
        "config_hash": config_hash(cfg),
        "system_hash": system_hash(cfg),
        "setup_hash": setup_hash(cfg),
        "code_version": code_version(),
    }


IDENTITY_TAGS = ("config_hash", "system_hash", "setup_hash")


def evaluation_hash(training_hash: str) -> str:
    """The hash of an evaluation-only run (``pipeline.evaluate``) of a config whose training run
    would hash to ``training_hash``: the two never match (an evaluation is not skipped for a
    training run, nor pooled with one)."""
    return digest({"evaluation": training_hash})


def find_finished_run(client: Any, experiment_id: str, config_digest: str) -> Any | None:
    """The most recent FINISHED run of the experiment with this config hash, or None."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.config_hash = '{config_digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None
