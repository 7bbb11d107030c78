"""Shared fixtures: a small synthetic collection, the tiny model, a temporary MLflow store, composed configs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"

# Small enough that a whole pipeline run on the tiny model takes seconds.
SMALL_SYNTHETIC = [
    "dataset.collection.num_docs=150",
    "dataset.collection.num_train_queries=48",
    "dataset.collection.num_dev_queries=10",
    "dataset.collection.num_test_queries=16",
]


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for generated collections, shared by the whole test session."""
    return tmp_path_factory.mktemp("data-cache")


def compose_config(root: Path, cache: Path, *overrides: str, small: bool = True):  # noqa: ANN201
    """Compose ``conf/`` like ``python -m pipeline.run`` would, with every path under ``root``."""
    from hydra import compose, initialize_config_dir

    from lossbench.config import register_resolvers

    register_resolvers()
    base = [
        f"paths.root={root}",
        f"paths.cache={cache}",
        f"paths.output={root / 'output'}",
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
        f"tracking.artifact_root={root / 'artifacts'}",
    ]
    if small:
        base += SMALL_SYNTHETIC
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[*base, *overrides])


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    """The sqlite MLflow store that :func:`compose` points runs at."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def compose(tmp_path: Path, data_cache: Path) -> Callable[..., object]:
    """Compose ``conf/`` for one test, pointed at its temporary folder."""

    def _compose(*overrides: str, small: bool = True) -> object:
        return compose_config(tmp_path, data_cache, *overrides, small=small)

    return _compose


TINY_BACKBONE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture
def tiny_module():  # noqa: ANN201
    """A tiny random-init bi-encoder with MiniLM's tokenizer (no download), seeded."""
    import torch

    from lossbench.models import BiEncoderModule, DprConfig
    from lossbench.models.backbone import minilm_path

    torch.manual_seed(0)
    config = DprConfig(
        query_length=16, doc_length=32, pooling="mean", random_init=True, backbone_overrides=TINY_BACKBONE
    )
    return BiEncoderModule(model_name_or_path=minilm_path(), config=config)
