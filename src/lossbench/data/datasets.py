"""The datasets, by name: what training (TupleDataset, RunDataset) and inference (DocDataset,
QueryDataset) read, and the samples they yield.

TupleDataset streams (an iterable dataset sharded over workers and ranks); RunDataset is map-style
(one item per query; Lightning's DistributedSampler shards it under DDP).
"""

from __future__ import annotations

from lossbench.data.run_dataset import RunDataset
from lossbench.data.samples import TextSample, TrainSample
from lossbench.data.text_datasets import DocDataset, QueryDataset, TextDataset
from lossbench.data.tuple_dataset import TupleDataset

__all__ = [
    "DocDataset",
    "QueryDataset",
    "RunDataset",
    "TextDataset",
    "TextSample",
    "TrainSample",
    "TupleDataset",
]
