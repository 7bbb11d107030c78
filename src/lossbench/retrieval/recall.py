r"""How much an approximate index misses: recall@k of its top-k lists against exact search.

For queries :math:`Q`, the approximate top-k :math:`A_q` and the exact top-k :math:`E_q` of the
same vectors (:math:`|E_q| = \min(k, N)`):

.. math::

    \text{recall@k vs exact} = \frac{1}{|Q|} \sum_{q \in Q} \frac{|A_q \cap E_q|}{|E_q|}

It needs no relevance judgements: 1.0 means the index returned exactly the docs an exhaustive
search would have (then its ranking metrics equal exact search's, up to ties).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import torch

from lossbench.data.collection import Collection
from lossbench.data.datasets import QueryDataset
from lossbench.models.module import BiEncoderModule
from lossbench.retrieval.encode import iter_encoded


@runtime_checkable
class ExhaustiveSearch(Protocol):
    """An index that can also search exactly (``with index.exhaustive(): ...``)."""

    def search_tensors(
        self, queries: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def exhaustive(self) -> AbstractContextManager[None]: ...


def overlap_at_k(approximate: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Per query, the share of the exact top-k found by the approximate one: ``(Q,)``.

    Both are ``(Q, k)`` doc positions; -1 marks an empty slot and matches nothing.
    """
    if approximate.shape[0] != exact.shape[0]:
        raise ValueError(f"{approximate.shape[0]} approximate rows, {exact.shape[0]} exact rows")
    found = (approximate.unsqueeze(2) == exact.unsqueeze(1)) & (
        exact.unsqueeze(1) >= 0
    )  # (Q, k, k)
    hits = found.any(dim=1).sum(dim=1)  # (Q,) exact docs found
    wanted = (exact >= 0).sum(dim=1).clamp(min=1)  # (Q,)
    return hits.float() / wanted.float()


def recall_vs_exact(
    module: BiEncoderModule,
    collection: Collection,
    index: object,
    split: str,
    k: int = 100,
    batch_size: int = 128,
) -> float:
    """Mean recall@``k`` of ``index``'s search against its exhaustive search, over ``split``'s queries.

    The queries are encoded once; each batch is searched twice, as configured and exhaustively.
    ``index`` must have ``search_tensors`` and ``exhaustive`` (the faiss indexes do).
    """
    if not isinstance(index, ExhaustiveSearch):
        raise TypeError(
            f"{type(index).__name__} cannot search exhaustively (it has no exhaustive()), so its "
            "recall against exact search cannot be measured; set index.report_recall_vs_exact=false"
        )
    overlaps = []
    dataset = QueryDataset(collection, split)
    for _, vectors in iter_encoded(
        module, dataset.items_as_samples(), "query", batch_size=batch_size, progress=False
    ):
        _, approximate = index.search_tensors(vectors, k)
        with index.exhaustive():
            _, exact = index.search_tensors(vectors, k)
        overlaps.append(overlap_at_k(approximate, exact))
    if not overlaps:
        raise ValueError(f"split {split!r} has no queries to measure recall against exact search")
    return float(torch.cat(overlaps).mean())
