"""What a run asks Hydra about its job: its name, whether it is part of a sweep, its output folder,
and the options of a config group (for messages that name the option that fits)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
"""The repository's ``conf/`` folder (``pipeline.run`` and ``pipeline.compare`` compose it)."""

HIDDEN_OVERRIDES = ("tracking.", "paths.", "hydra.")
"""Overrides that say where a run is stored or logged, left out of its name."""


def hydra_config() -> Any | None:
    """Hydra's runtime config of the job, or None outside ``@hydra.main`` (tests, the library)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def job_name(cfg: DictConfig) -> str:
    """The run's name: ``tracking.run_name``, else the job's command-line overrides, else ``default``."""
    if cfg.tracking.get("run_name"):
        return str(cfg.tracking.run_name)
    hydra = hydra_config()
    if hydra is not None:
        overrides = [
            o for o in hydra.overrides.task if not o.lstrip("+~").startswith(HIDDEN_OVERRIDES)
        ]
        if overrides:
            return " ".join(overrides)[:250]
    return "default"


def in_multirun() -> bool:
    """Whether this job is one of a ``-m`` sweep."""
    from hydra.types import RunMode

    hydra = hydra_config()
    return hydra is not None and hydra.mode == RunMode.MULTIRUN


def sweep_parent_run_id() -> str | None:
    """Under ``-m``: the sweep's MLflow parent run (created by ``MlflowSweepCallback``)."""
    if not in_multirun():
        return None
    from lossbench.experiment.sweeps import parent_run_id

    hydra = hydra_config()
    assert hydra is not None
    return parent_run_id(hydra.sweep.dir)


def output_folder(cfg: DictConfig, create: bool = True) -> Path:
    """Where the run's files go: ``paths.output``, else Hydra's job folder, else a new temp folder."""
    hydra = hydra_config()
    if cfg.paths.get("output"):
        folder = Path(cfg.paths.output)
    elif hydra is not None:
        folder = Path(hydra.runtime.output_dir)
    else:
        folder = Path(tempfile.mkdtemp(prefix="lossbench-"))
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def group_choice(group: str, default: str) -> str:
    """The option chosen for ``group`` (``exact`` for ``index=exact``), ``default`` outside Hydra."""
    hydra = hydra_config()
    choice = hydra.runtime.choices.get(group) if hydra is not None else None
    return str(choice) if choice else default


def explicit_choice(group: str) -> str | None:
    """How ``group`` was set when it was not left at ``conf/config.yaml``'s default: the command
    line's override (``index=faiss_flat``, ``index.nprobe=8``) or a preset's choice; else None (also
    outside Hydra)."""
    hydra = hydra_config()
    if hydra is None:
        return None
    for override in hydra.overrides.task:
        key = override.lstrip("+~").split("=", 1)[0]
        if key == group or key.startswith(f"{group}."):
            return str(override)
    chosen = hydra.runtime.choices.get(group)
    if chosen and chosen != primary_default(group):
        return f"{group}={chosen}"
    return None


def primary_default(group: str) -> str | None:
    """The option ``conf/config.yaml``'s defaults list picks for ``group``."""
    primary = OmegaConf.load(CONF_DIR / "config.yaml")
    assert isinstance(primary, DictConfig)
    for entry in primary.get("defaults", []):
        if isinstance(entry, DictConfig) and group in entry:
            return str(entry[group])
    return None


def group_options(group: str) -> dict[str, DictConfig]:
    """Every option of a config group, by name, as written in its YAML file (unresolved)."""
    from hydra.core.global_hydra import GlobalHydra

    options: dict[str, DictConfig] = {}
    if GlobalHydra.instance().is_initialized():
        loader = GlobalHydra.instance().config_loader()
        for name in loader.get_group_options(group):
            for source in loader.get_sources():
                if source.is_config(f"{group}/{name}"):
                    node = source.load_config(f"{group}/{name}").config
                    if isinstance(node, DictConfig):
                        options[name] = node
                    break
        return options
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        if isinstance(node, DictConfig):
            options[path.stem] = node
    return options
