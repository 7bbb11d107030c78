"""How a run retrieves and evaluates: the test of the untrained model, of the trained one, and the
validations all go through one :class:`BiEncoderRetrieval` (encode the corpus into an index, search
a split's queries, evaluate the run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lossbench.data.collection import Collection, ScoredRun
from lossbench.evaluation import Evaluation, evaluate_run
from lossbench.retrieval import Index, index_corpus, search_split
from lossbench.retrieval.recall import recall_vs_exact


@dataclass
class Retrieved:
    """A split's run, its evaluation, and the index it was searched in."""

    run: ScoredRun
    evaluation: Evaluation
    index: Index


@dataclass
class BiEncoderRetrieval:
    """Retrieval with a bi-encoder: the corpus encoded into a new index, the queries searched in it.

    Args:
        make_index: builds an empty index (``index`` of the config).
        k: search depth.
        batch_size: texts per encoding batch.
        encode_workers: DataLoader workers tokenizing the corpus (0: the main process or a thread).
        device: where the model encodes.
    """

    make_index: Callable[[], Index]
    k: int
    batch_size: int
    encode_workers: int
    device: torch.device

    def index(self, module: Any, collection: Collection) -> Index:
        """Encode every doc of ``collection`` with ``module`` into a new index."""
        module.to(self.device)
        return index_corpus(
            module, collection, self.make_index(), self.batch_size, self.encode_workers
        )

    def search(self, module: Any, collection: Collection, index: Index, split: str) -> ScoredRun:
        """The top-``k`` docs of each judged query of ``split``."""
        return search_split(module, collection, index, split, self.k, self.batch_size)

    def evaluate(
        self,
        module: Any,
        collection: Collection,
        split: str,
        metrics: Sequence[str],
        index: Index | None = None,
    ) -> Retrieved:
        """Search ``split`` in ``index`` (a new one when None) and evaluate the run."""
        index = index if index is not None else self.index(module, collection)
        run = self.search(module, collection, index, split)
        return Retrieved(run, evaluate_run(collection.qrels[split], run, metrics), index)

    def recall_vs_exact(
        self, module: Any, collection: Collection, index: Index, split: str
    ) -> float:
        """recall@100 of an approximate index's top-100 against exhaustive search (``split``)."""
        return recall_vs_exact(module, collection, index, split, 100, self.batch_size)
