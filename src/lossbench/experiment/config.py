"""Hydra/OmegaConf glue: resolvers used by ``conf/`` and the checks of a composed config."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

# MLflow draws a progress bar for every artifact it copies; runs log a handful of small files.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def register_resolvers() -> None:
    """``${cwd:}`` (the directory the command runs in), ``${minilm:}`` (the shipped MiniLM folder),
    ``${tiny_bert:}`` (the tiny test model's shape, :data:`lossbench.models.backbone.TINY_BERT`), and
    the schema that ``conf/config.yaml`` composes into (:mod:`lossbench.experiment.schema`)."""
    from lossbench.experiment.schema import register_schema

    register_schema()
    if not OmegaConf.has_resolver("cwd"):
        OmegaConf.register_new_resolver("cwd", os.getcwd)
    if not OmegaConf.has_resolver("minilm"):

        def minilm() -> str:
            from lossbench.models.backbone import minilm_path

            return minilm_path()

        OmegaConf.register_new_resolver("minilm", minilm)
    if not OmegaConf.has_resolver("tiny_bert"):

        def tiny_bert() -> dict[str, int]:
            from lossbench.models.backbone import TINY_BERT

            return dict(TINY_BERT)

        OmegaConf.register_new_resolver("tiny_bert", tiny_bert)


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


def plain_dict(node: Any) -> dict[str, Any]:
    """A resolved config node as plain Python containers."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(key): value for key, value in container.items()}
