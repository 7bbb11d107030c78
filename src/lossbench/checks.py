"""Checks of a run's combination of loss, data and model, done before anything is trained or logged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lossbench.data.collection import Collection
from lossbench.loss.base import LossFunction, Needs

TRAIN_SOURCES = ("triples", "run")


class ConfigurationError(ValueError):
    """The chosen combination cannot work; the message names the fix."""


def check_training_source(
    losses: Sequence[LossFunction],
    train_source: str,
    dataset_name: str,
    dataset_has_teacher_scores: bool,
    datasets_with_teacher_scores: Sequence[str] = (),
) -> None:
    """Fail unless the losses can train on ``train_source`` of the dataset.

    A loss that needs teacher scores must train from a run, and the dataset must have one.
    """
    if train_source not in TRAIN_SOURCES:
        raise ConfigurationError(
            f"loss.train_source={train_source!r}; valid: {', '.join(TRAIN_SOURCES)}"
        )
    needing = [type(loss).__name__ for loss in losses if Needs.TEACHER_SCORES in loss.needs]
    if not (needing or train_source == "run"):
        return
    if not dataset_has_teacher_scores:
        why = (
            f"{', '.join(needing)} needs teacher scores"
            if needing
            else "loss.train_source=run needs a teacher run"
        )
        options = (
            ", ".join(f"dataset={name}" for name in datasets_with_teacher_scores)
            or "a dataset with a run"
        )
        raise ConfigurationError(
            f"{why}, but dataset={dataset_name} has none; choose {options}, or a loss that trains on triples"
        )
    if needing and train_source != "run":
        raise ConfigurationError(
            f"{', '.join(needing)} needs teacher scores, which triples do not carry; set loss.train_source=run"
        )


def check_collection(collection: Collection, train_source: str, splits: Sequence[str]) -> None:
    """Fail unless the loaded collection has what the run will read."""
    if train_source == "run" and not collection.has_teacher_scores:
        raise ConfigurationError(
            f"collection {collection.name!r} ({collection.source}) has no teacher run"
        )
    if train_source == "triples" and not collection.triples:
        raise ConfigurationError(
            f"collection {collection.name!r} ({collection.source}) has no training triples"
        )
    for split in splits:
        if not collection.split_queries(split):
            raise ConfigurationError(
                f"collection {collection.name!r} has no judged {split!r} queries"
            )


def compatibility_warnings(losses: Sequence[LossFunction], model_config: Any) -> list[str]:
    """Combinations that run but are probably not what the user meant."""
    warnings = []
    is_sparse = "splade" in str(model_config.get("_target_", "")).lower()
    for loss in losses:
        if Needs.SPARSE in loss.needs and not is_sparse:
            warnings.append(
                f"{type(loss).__name__} is meant for sparse (SPLADE) vectors; on a dense model it only "
                "shrinks the embeddings' magnitudes"
            )
    return warnings


def check_weight_schedule(
    keys: Sequence[str], losses: Sequence[LossFunction], schedule_name: str, regularizer_name: str
) -> None:
    """Fail unless every ``loss_functions.<i>.<attribute>`` key of a weight schedule names a number.

    The pipeline's losses are ``[loss, regularizer]``: a regularizer schedule needs a regularizer.
    """
    from types import SimpleNamespace

    from lossbench.weight_schedulers import get_key

    names = ", ".join(type(loss).__name__ for loss in losses)
    for key in keys:
        if not key.startswith("loss_functions."):
            continue
        try:
            value = get_key(SimpleNamespace(loss_functions=list(losses)), key)
        except KeyError as error:
            raise ConfigurationError(
                f"regularizer_schedule={schedule_name} schedules {error.args[0]}, but the losses "
                f"are [{names}] (regularizer={regularizer_name}); add a regularizer "
                "(regularizer=flops, l1 or l2) or set regularizer_schedule=none"
            ) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                f"regularizer_schedule={schedule_name}: {key} is {value!r}, not a number"
            )


def index_warnings(model_config: Any, index_config: Any) -> list[str]:
    """A sparse model on a dense index (or the reverse) runs, but is probably not what was meant."""
    model_target = str(model_config.get("_target_", "")).lower()
    index_target = str(index_config.get("_target_", "")).lower()
    is_sparse_model = "splade" in model_target
    is_sparse_index = "sparse" in index_target
    if is_sparse_model and "faiss" in index_target:
        return [
            "a SPLADE model on a faiss index: faiss stores every doc as a dense vocabulary-sized "
            "vector (30522 floats each for BERT's vocabulary) and faiss_ivf clusters them with "
            "k-means in that many dimensions; use index=sparse (the SPLADE model configs pick it "
            "unless the command line says otherwise)"
        ]
    if is_sparse_model and not is_sparse_index:
        return [
            "a SPLADE model on a dense index holds every doc as a dense vocabulary-sized vector "
            "(30522 floats each for BERT's vocabulary); use index=sparse (the SPLADE model configs "
            "pick it unless the command line says otherwise)"
        ]
    if is_sparse_index and not is_sparse_model:
        return [
            "index=sparse with a dense model stores every dimension of every doc as a posting; "
            "use index=exact (or index=faiss_flat, index=faiss_ivf)"
        ]
    return []
