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

from tests.helpers import (  # noqa: E402 (after IR_DATASETS_HOME is set)
    SHARED_DATA,
    compose_config,
    gloo_rank_results,
)


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


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for generated collections, shared by the whole test session."""
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(scope="module")
def gloo_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list:
    """What each rank saved of the requesting module's ``_worker(rank, world_size, folder)``, run
    once per module on ``WORLD_SIZE`` (the module's, else 2) gloo processes."""
    world_size = getattr(request.module, "WORLD_SIZE", 2)
    return gloo_rank_results(request.module._worker, tmp_path_factory.mktemp("gloo"), world_size)


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


@pytest.fixture
def tiny_module():  # noqa: ANN201
    """A tiny random-init bi-encoder with MiniLM's tokenizer (no download), seeded."""
    from tests.helpers import tiny_bi_encoder

    return tiny_bi_encoder()


@pytest.fixture
def tiny_cross_module():  # noqa: ANN201
    """A tiny random-init cross-encoder with MiniLM's tokenizer (no download), seeded."""
    import torch

    from lossbench.models import CrossEncoderConfig, CrossEncoderModule
    from lossbench.models.backbone import TINY_BERT, minilm_path

    torch.manual_seed(0)
    config = CrossEncoderConfig(
        query_length=16, doc_length=32, random_init=True, backbone_overrides=TINY_BERT
    )
    return CrossEncoderModule(model_name_or_path=minilm_path(), config=config)
