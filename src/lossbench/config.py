"""Hydra/OmegaConf glue: resolvers used by ``conf/`` and the checks of a composed config."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

# MLflow draws a progress bar for every artifact it copies; runs log a handful of small files.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def coalesce(*values: Any) -> Any:
    """The first value that is not None (``${coalesce:${model.lr},1e-4}``); None if all are."""
    return next((value for value in values if value is not None), None)


def register_resolvers() -> None:
    """``${cwd:}`` (the directory the command runs in), ``${minilm:}`` (the shipped MiniLM folder),
    ``${coalesce:a,b,...}`` (the first that is not null), and the schema that ``conf/config.yaml``
    composes into (:mod:`lossbench.schema`)."""
    from lossbench.schema import register_schema

    register_schema()
    if not OmegaConf.has_resolver("coalesce"):
        OmegaConf.register_new_resolver("coalesce", coalesce)
    if not OmegaConf.has_resolver("cwd"):
        OmegaConf.register_new_resolver("cwd", os.getcwd)
    if not OmegaConf.has_resolver("minilm"):

        def minilm() -> str:
            from lossbench.models.backbone import minilm_path

            return minilm_path()

        OmegaConf.register_new_resolver("minilm", minilm)


def instantiate_unwrapped(node: Any) -> Any:
    """``hydra.utils.instantiate(node)``, re-raising the target's own error when it names the
    problem itself: a missing file (OSError) or a malformed line or bad value (ValueError, e.g.
    ``DataFormatError``), whose type Hydra's InstantiationException would hide. Other errors (an
    unknown argument, a ``_target_`` that does not import) keep Hydra's message with the key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except InstantiationException as error:
        if isinstance(error.__cause__, OSError | ValueError):
            raise error.__cause__ from None
        raise
