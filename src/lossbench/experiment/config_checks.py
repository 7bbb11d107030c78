"""Checks of what the composed config alone says: schema (unset, undeclared or unresolvable keys),
evaluation metrics and objective, trainer arguments. Their error, :class:`ConfigurationError`, is
every check's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ConfigurationError(ValueError):
    """The chosen combination cannot work; the message names the fix."""


def check_config(cfg: Any) -> None:
    """Every check the composed config alone allows: schema, evaluation settings, trainer arguments.

    Hydra has already type-checked the config against :mod:`lossbench.experiment.schema` while composing it;
    this catches what composition lets through (see :func:`check_schema`).
    """
    check_schema(cfg)
    check_eval(cfg.eval)
    check_trainer_args(cfg.trainer)
    if cfg.data.get("token_cache_mib", 0) < 0:
        raise ConfigurationError(
            f"data.token_cache_mib={cfg.data.token_cache_mib}: expected >= 0 "
            "(MiB of token ids kept per run; 0 turns the cache off)"
        )


def check_schema(cfg: Any) -> None:
    """Fail on a required value left unset (``???``), a key the schema does not declare (added
    with ``+key=value``, which Hydra allows even on typed nodes), or an interpolation that does not
    resolve to its field's type."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigurationError(f"the config does not resolve: {error}") from error
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)}: required but not set (???); set it on the command line: "
            f"{missing[0]}=..."
        )
    _check_declared_keys(cfg, "")


def _check_declared_keys(node: Any, prefix: str) -> None:
    """Recursively: each key of a node typed by a schema dataclass is one of its fields."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    schema = OmegaConf.get_type(node)
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        return  # an open node (trainer, index, a _target_ node): its consumer checks its keys
    fields = [field.name for field in dataclasses.fields(schema)]
    for key in node:
        name = f"{prefix}{key}"
        if not prefix and key == "hydra":  # present when composed with return_hydra_config=True
            continue
        if key not in fields:
            where = prefix.rstrip(".") or "the top level"
            raise ConfigurationError(
                f"{name} is not a setting: {where} takes {', '.join(fields)} "
                f"({schema.__name__} in lossbench/schema.py)"
            )
        if not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            _check_declared_keys(node[key], f"{name}.")


def check_metrics(metrics: Sequence[str], key: str) -> None:
    """Fail unless every name is a metric ranx computes (``ndcg@10``, ``recall@100``, ``map``, ...)."""
    from lossbench.evaluation import check_metric_names

    try:
        check_metric_names(metrics)
    except ValueError as error:
        raise ConfigurationError(
            f"{key}: {error}; e.g. ndcg@10, mrr@10, recall@100, map@100"
        ) from error


def check_eval(eval_cfg: Any) -> None:
    """Fail unless the metrics exist and the objective is one of the metrics of its split."""
    check_metrics(eval_cfg.metrics, "eval.metrics")
    check_metrics(eval_cfg.val_metrics, "eval.val_metrics")
    split, val_split = eval_cfg.objective_split, eval_cfg.val_split
    if split not in ("test", val_split):
        raise ConfigurationError(
            f"eval.objective_split={split!r}; valid: test, {val_split} (eval.val_split)"
        )
    key = "eval.metrics" if split == "test" else "eval.val_metrics"
    pool = list(eval_cfg.metrics if split == "test" else eval_cfg.val_metrics)
    if eval_cfg.objective not in pool:
        raise ConfigurationError(
            f"eval.objective={eval_cfg.objective!r} is not computed on the {split} split: "
            f"{key} is [{', '.join(pool)}]; pick one of them or add it to {key}"
        )
    above, depth = eval_cfg.get("val_candidates_above"), eval_cfg.get("val_candidates_depth", 1)
    if above is not None and above < 0:
        raise ConfigurationError(
            f"eval.val_candidates_above={above}: a number of docs (>= 0), or null to always "
            "validate on the whole corpus"
        )
    if depth < 1:
        raise ConfigurationError(
            f"eval.val_candidates_depth={depth}: the candidates per validation query, at least 1 "
            "(e.g. 100)"
        )


PIPELINE_TRAINER_ARGS = ("logger", "callbacks", "default_root_dir")
"""Trainer arguments that pipeline.run sets itself."""


def check_trainer_args(trainer_cfg: Any) -> None:
    """Fail unless every ``trainer.*`` key is a ``lightning.Trainer`` argument the pipeline leaves open."""
    import difflib
    import inspect

    import lightning

    accepted = [
        name for name in inspect.signature(lightning.Trainer.__init__).parameters if name != "self"
    ]
    for key in trainer_cfg:
        if key in PIPELINE_TRAINER_ARGS:
            raise ConfigurationError(f"trainer.{key} is set by pipeline.run; remove it")
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"; did you mean trainer.{close[0]}?" if close else ""
            raise ConfigurationError(f"trainer.{key} is not a lightning.Trainer argument{hint}")
