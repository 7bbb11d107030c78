"""Shared fixtures: a small synthetic collection, the tiny model, a temporary MLflow store, composed configs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ir_datasets reads IR_DATASETS_HOME once, when first imported (ranx imports it): point it, before
# any test module loads, at an empty folder of this session, so tests never read or write
# ~/.ir_datasets; tests that need a dataset copy it in (fixture `ir_datasets_home`).
IR_DATASETS_HOME = Path(tempfile.mkdtemp(prefix="lossbench-irds-"))
os.environ["IR_DATASETS_HOME"] = str(IR_DATASETS_HOME)
atexit.register(shutil.rmtree, IR_DATASETS_HOME, ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ir_datasets_home() -> Path:
    """IR_DATASETS_HOME of this session with Cranfield copied in from ../shared/data (else skip)."""
    source = SHARED_DATA / "ir_datasets" / "cranfield"
    if not (source / "cran.tar.gz").is_file():
        pytest.skip(f"{source} is absent: the shared test collections are not next to this clone")
    target = IR_DATASETS_HOME / "cranfield"
    if not target.exists():
        shutil.copytree(source, target)
        for path in [target, *target.rglob("*")]:  # the shared copy is read-only
            path.chmod(path.stat().st_mode | 0o200)
    return IR_DATASETS_HOME


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


TINY_BACKBONE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@pytest.fixture
def tiny_module():  # noqa: ANN201
    """A tiny random-init bi-encoder with MiniLM's tokenizer (no download), seeded."""
    import torch

    from lossbench.models import BiEncoderModule, DprConfig
    from lossbench.models.backbone import minilm_path

    torch.manual_seed(0)
    config = DprConfig(
        query_length=16,
        doc_length=32,
        pooling="mean",
        random_init=True,
        backbone_overrides=TINY_BACKBONE,
    )
    return BiEncoderModule(model_name_or_path=minilm_path(), config=config)


def free_port() -> int:
    """A local port nothing listens on (bound, read, released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def all_runs(uri: str) -> list:
    """Every run of every experiment in the MLflow store at ``uri``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])
