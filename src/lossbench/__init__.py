"""lossbench: train neural rankers with every loss of the guide, and compare them.

The public names mirror lightning-ir's (``from lossbench import BiEncoderModule, RankNet, ...``).
They are loaded on first use, so ``import lossbench`` stays cheap for code that needs only the losses.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # models
    "BiEncoderModule": "lossbench.models.module",
    "BiEncoderConfig": "lossbench.models.config",
    "DprConfig": "lossbench.models.config",
    "SpladeConfig": "lossbench.models.config",
    "ColConfig": "lossbench.models.config",
    "CrossEncoderModule": "lossbench.models.cross_encoder",
    "CrossEncoderConfig": "lossbench.models.config",
    # data
    "Collection": "lossbench.data.collection",
    "TupleDataset": "lossbench.data.datasets",
    "RunDataset": "lossbench.data.datasets",
    "DocDataset": "lossbench.data.datasets",
    "QueryDataset": "lossbench.data.datasets",
    "LightningIRDataModule": "lossbench.data.datamodule",
    # training
    "LightningIRTrainer": "lossbench.training.trainer",
    "RetrievalValidation": "lossbench.training.validation",
    "GenericConstantSchedulerWithLinearWarmup": "lossbench.training.weight_schedulers",
    "GenericConstantSchedulerWithQuadraticWarmup": "lossbench.training.weight_schedulers",
    "GenericLinearSchedulerWithLinearWarmup": "lossbench.training.weight_schedulers",
    # retrieval and evaluation
    "ExactDenseIndex": "lossbench.retrieval.dense",
    "SparseIndex": "lossbench.retrieval.sparse",
    "MaxSimIndex": "lossbench.retrieval.maxsim",
    "MaxSimANNIndex": "lossbench.retrieval.maxsim_ann",
    "evaluate_run": "lossbench.evaluation",
}


def _loss_names() -> list[str]:
    from lossbench import loss

    return [name for name in loss.__all__ if name[0].isupper()]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: lossbench.loss
        return importlib.import_module(f"{__name__}.{name}")
    from lossbench import loss

    if name in loss.__all__:
        return getattr(loss, name)
    raise AttributeError(f"module 'lossbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_loss_names()])
