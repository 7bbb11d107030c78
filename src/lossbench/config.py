"""Hydra/OmegaConf glue: resolvers used by ``conf/`` and the checks of a composed config."""

from __future__ import annotations

import os

from omegaconf import OmegaConf

# MLflow draws a progress bar for every artifact it copies; runs log a handful of small files.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def register_resolvers() -> None:
    """``${cwd:}`` (the directory the command runs in) and ``${minilm:}`` (the shipped MiniLM folder)."""
    if not OmegaConf.has_resolver("cwd"):
        OmegaConf.register_new_resolver("cwd", os.getcwd)
    if not OmegaConf.has_resolver("minilm"):

        def minilm() -> str:
            from lossbench.models.backbone import minilm_path

            return minilm_path()

        OmegaConf.register_new_resolver("minilm", minilm)
