"""Data: the Collection contract, its sources, the training/inference datasets and the data module."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lossbench.data.collection import Collection
from lossbench.data.datamodule import LightningIRDataModule
from lossbench.data.datasets import DocDataset, QueryDataset, RunDataset, TupleDataset
from lossbench.data.sources.irds_collections import ir_datasets_collection, msmarco_collection
from lossbench.data.sources.local import load_local
from lossbench.data.token_cache import TokenCache


def synthetic_collection(cache_dir: str | Path, **spec: Any) -> Collection:
    """The embedded synthetic collection for ``spec`` (see :mod:`lossbench.data.sources.synthetic`), cached."""
    from lossbench.data.sources.synthetic import SyntheticSpec, cached

    folder = cached(SyntheticSpec(**spec), Path(cache_dir))
    collection = load_local(folder, name="synthetic")
    collection.source = f"synthetic:{folder.name}"
    return collection


def local_collection(
    path: str | Path | None,
    name: str = "local",
    relevance_map: Mapping[int, int] | None = None,
    **options: Any,
) -> Collection:
    """A collection from a local folder (BEIR or TREC/TSV layout); see :func:`lossbench.data.sources.local.load_local`.

    ``options`` are :func:`~lossbench.data.sources.local.load_local`'s (file names, ``dev_percent``, mining).
    """
    if path is None:
        raise ValueError("dataset=local needs the collection's folder: add dataset.path=DIR")
    grades = None if relevance_map is None else {int(k): int(v) for k, v in relevance_map.items()}
    return load_local(path, name=name, relevance_map=grades, **options)


__all__ = [
    "Collection",
    "DocDataset",
    "LightningIRDataModule",
    "QueryDataset",
    "RunDataset",
    "TokenCache",
    "TupleDataset",
    "ir_datasets_collection",
    "local_collection",
    "load_local",
    "msmarco_collection",
    "synthetic_collection",
]
