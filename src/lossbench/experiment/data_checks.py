"""Checks of a run's data: the training source its losses need (triples, or a teacher run the dataset
has), the loaded collection (training triples, judged queries per split, judgements of missing
docs) and ``dataset.run_sampling``."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from lossbench.data.collection import Collection
from lossbench.data.streams import is_random_access
from lossbench.experiment.config_checks import ConfigurationError
from lossbench.loss.base import LossFunction, Needs

PEEKED_TUPLES = 1000
"""Tuples of a streamed triples file parsed before the run starts: a file in the wrong format fails
at once; a bad line further down fails when training reaches it (the message names file and line)."""


def check_training_source(
    losses: Sequence[LossFunction],
    train_source: str,
    dataset_has_teacher_scores: bool,
    dataset_name: str = "",
) -> None:
    """Fail unless the losses can train on ``train_source`` of the dataset (whose config says
    whether it has teacher scores: ``dataset.teacher_scores``).

    A loss that needs teacher scores must train from a run, and the dataset must have one.
    """
    from lossbench.experiment.schema import TrainSource

    valid = [source.value for source in TrainSource]
    if train_source not in valid:
        raise ConfigurationError(f"loss.train_source={train_source!r}; valid: {', '.join(valid)}")
    needing = [type(loss).__name__ for loss in losses if Needs.TEACHER_SCORES in loss.needs]
    if not (needing or train_source == "run"):
        return
    if not dataset_has_teacher_scores:
        raise ConfigurationError(missing_teacher_scores(needing, dataset_name))
    if needing and train_source != "run":
        raise ConfigurationError(
            f"{', '.join(needing)} needs teacher scores, which triples do not carry; set loss.train_source=run"
        )


def missing_teacher_scores(
    needing: Sequence[str], dataset_name: str, collection: Collection | None = None
) -> str:
    """Why a run cannot train: it needs a teacher run the dataset lacks; names datasets that have one."""
    from lossbench.experiment.jobs import group_options

    why = (
        f"{', '.join(needing)} needs teacher scores"
        if needing
        else "loss.train_source=run needs a teacher run"
    )
    where = f"dataset={dataset_name}"
    if collection is not None:
        where += f" (collection {collection.name!r}, {collection.source})"
    having = [
        f"dataset={name}"
        for name, option in group_options("dataset").items()
        if option.get("teacher_scores", False)
    ]
    options = ", ".join(having) or "a dataset with a teacher run"
    return f"{why}, but {where} has none; choose {options}, or a loss that trains on triples"


def check_collection(
    collection: Collection,
    train_source: str | None,
    splits: Sequence[str],
    losses: Sequence[LossFunction] = (),
    dataset_name: str = "",
) -> None:
    """Fail unless the loaded collection has what the run will read (it knows its own teacher run;
    ``train_source=None``: nothing is trained)."""
    if train_source == "run" and not collection.has_teacher_scores:
        needing = [type(loss).__name__ for loss in losses if Needs.TEACHER_SCORES in loss.needs]
        name = dataset_name or collection.name
        raise ConfigurationError(missing_teacher_scores(needing, name, collection))
    if train_source == "triples":
        if not collection.triples:
            raise ConfigurationError(
                f"collection {collection.name!r} ({collection.source}) has no training triples"
            )
        if not is_random_access(collection.triples):
            for _ in itertools.islice(iter(collection.triples), PEEKED_TUPLES):
                pass  # a streamed file: parse its head now rather than in a DataLoader worker
    for split in splits:
        if not collection.split_queries(split):
            raise ConfigurationError(
                f"collection {collection.name!r} has no judged {split!r} queries"
            )
    warn_missing_judged_docs(collection, splits)


def missing_judged_docs(collection: Collection, split: str) -> int:
    """How many (query, doc) judgements of ``split`` name a doc the corpus lacks."""
    docs = collection.docs
    return sum(
        doc_id not in docs
        for judged in collection.qrels.get(split, {}).values()
        for doc_id in judged
    )


def warn_missing_judged_docs(collection: Collection, splits: Sequence[str]) -> None:
    """A warning per split whose qrels name docs the corpus lacks (real collections have some):
    those judgements still count (a relevant one lowers recall and nDCG), but no run can find them."""
    import logging

    for split in splits:
        missing = missing_judged_docs(collection, split)
        if missing:
            logging.getLogger("lossbench").warning(
                "collection %r: %d judgement(s) of its %r qrels name docs missing from the corpus; "
                "they count in the metrics but can never be retrieved",
                collection.name,
                missing,
                split,
            )


def check_run_sampling(sampling: Any) -> None:
    """Fail on a ``dataset.run_sampling`` that RunDataset would refuse once the run has opened."""
    from lossbench.data.run_dataset import check_sampling

    try:
        check_sampling(sampling.sampling_strategy, sampling.targets, sampling.sample_size)
    except ValueError as error:
        raise ConfigurationError(f"dataset.run_sampling: {error}") from None
    if sampling.depth == 0 or sampling.depth < -1:
        raise ConfigurationError(
            f"dataset.run_sampling.depth={sampling.depth}: use -1 (the whole run) or a positive rank"
        )
