"""What a run asks Hydra about its job: its name (and its sweep's), whether it is part of a sweep,
its output folder, and the options of a config group (for messages that name the option that fits)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
"""The repository's ``conf/`` folder (``pipeline.run`` and ``pipeline.compare`` compose it)."""

HIDDEN_OVERRIDES = ("tracking.", "paths.", "hydra.", "hydra/", "checkpoint.", "resume")
"""Overrides that say where a run is stored, logged or resumed from, left out of every name."""

SEPARATOR = " · "


def hydra_config() -> Any | None:
    """Hydra's runtime config of the job, or None outside ``@hydra.main`` (tests, the library)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def override_key(override: str) -> str:
    """``loss`` for ``loss=ranknet``, ``+x=1`` and ``~loss``."""
    return override.lstrip("+~").split("=", 1)[0]


def override_value(override: str) -> str:
    """The text after the first ``=`` (empty for a deletion such as ``~x``)."""
    return override.split("=", 1)[1] if "=" in override else ""


def shown_overrides(overrides: Sequence[Any]) -> list[str]:
    """The overrides that say what a run computes (never where it is stored or logged)."""
    return [str(o) for o in overrides if not override_key(str(o)).startswith(HIDDEN_OVERRIDES)]


def swept_values(
    overrides: Sequence[Any], sweeper_params: Mapping[str, Any] | None
) -> dict[str, str]:
    """What a sweep varies: key -> its values as written (``loss`` -> ``ranknet,infonce``), from
    the command line's sweep overrides (lists, ``glob``, ``range``, ...) and the sweeper's params;
    a single value on the command line fixes a key the params vary (``seed=0``), as in Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept = {str(key): str(value) for key, value in (sweeper_params or {}).items()}
    for override in OverridesParser.create().parse_overrides(shown_overrides(overrides)):
        if override.is_sweep_override():
            swept[override.key_or_group] = override_value(str(override.input_line))
        else:
            swept.pop(override.key_or_group, None)
    return {key: value for key, value in swept.items() if not key.startswith(HIDDEN_OVERRIDES)}


def sweep_name(config: DictConfig) -> str:
    """A sweep's parent run name: its swept values (``loss ranknet, infonce × seed 0, 1``), else
    its overrides; never storage settings."""
    params = config.hydra.sweeper.get("params")
    swept = swept_values(config.hydra.overrides.task, params)
    if swept:
        return " × ".join(f"{key} {values.replace(',', ', ')}" for key, values in swept.items())
    shown = shown_overrides(config.hydra.overrides.task)
    return "sweep " + " ".join(shown) if shown else "sweep"


def sweep_description(config: DictConfig, run_id: str) -> str:
    """The sweep parent's description (Markdown): its command, what its children vary, how to compare."""
    shown = " ".join(shown_overrides(config.hydra.overrides.task))
    swept = swept_values(config.hydra.overrides.task, config.hydra.sweeper.get("params"))
    varied = ", ".join(f"`{key}`" for key in swept) or "nothing"
    return (
        f"Sweep `python -m pipeline.run -m {shown}`: one child run per job (expand this row); "
        f"the jobs vary {varied}, and each job's name says its values.\n\n"
        f"Compare them with significance tests: `python -m pipeline.compare sweep={run_id}` "
        "(a comparison run appears under this one)."
    )


def _swept_keys_of_this_sweep(hydra: Any) -> set[str] | None:
    """The keys the running sweep varies, read from Hydra's ``multirun.yaml`` in the sweep folder
    (and the sweeper's params); None when it cannot be read."""
    params = hydra.sweeper.get("params") if hydra.get("sweeper") is not None else None
    path = Path(str(hydra.sweep.dir)) / "multirun.yaml"
    if not path.exists():
        return set(swept_values([], params)) or None
    saved = OmegaConf.load(path)
    return set(swept_values(saved.hydra.overrides.task, params))


def job_name(cfg: DictConfig) -> str:
    """The run's name: ``tracking.run_name``, else ``<loss> · seed <n>`` followed by the overrides
    that tell this job apart -- under ``-m`` only what the sweep varies, alone every override."""
    if cfg.tracking.get("run_name"):
        return str(cfg.tracking.run_name)
    parts = [str(cfg.loss.name), f"seed {cfg.seed}"]
    hydra = hydra_config()
    if hydra is not None:
        overrides = [
            o
            for o in shown_overrides(hydra.overrides.task)
            if override_key(o) not in ("loss", "seed")
        ]
        swept = _swept_keys_of_this_sweep(hydra) if in_multirun() else None
        if swept is not None:
            overrides = [o for o in overrides if override_key(o) in swept]
        parts += overrides
    return SEPARATOR.join(parts)[:250]


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
