"""The shape of an in-batch loss's input: which columns are real docs and which block each query owns.

Shared by every :class:`~lossbench.loss.base.InBatchLossFunction`, which checks its input with
:func:`in_batch_layout` before computing anything (the contract is in :mod:`lossbench.loss.in_batch`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class InBatchLayout(NamedTuple):
    """An in-batch loss's checked input, for ``Q`` local queries against ``B`` blocks of ``D`` docs."""

    scores: torch.Tensor
    """``(Q, B*D)`` float32, zero in the columns of padded docs."""
    local_mask: torch.Tensor
    """``(Q, D)``: the real docs of each query's own block."""
    mask: torch.Tensor
    """``(B, D)``: the real docs of every block (``B = Q`` unless gathered across devices)."""
    real_columns: torch.Tensor
    """``(Q, B*D)``: True where a column is a real doc (the same for every row)."""
    own: torch.Tensor
    """``(Q, B*D)``: True on each query's own block."""
    offset: int
    """The block of local query 0 (0 unless gathered across devices)."""


def in_batch_layout(
    scores: torch.Tensor, mask: torch.Tensor | None, query_offset: int | None = None
) -> InBatchLayout:
    """Check the in-batch shapes and describe the batch (:class:`InBatchLayout`).

    Without ``query_offset``, ``scores`` is ``(Q, Q*D)`` and ``mask`` ``(Q, D)`` (or None: all
    real). With it (gathered across devices), ``scores`` is ``(Q, B*D)`` against ``B`` blocks,
    ``mask`` ``(B, D)`` covers every block, and local query q owns block ``query_offset + q``.
    A malformed input raises a ``ValueError`` naming the shapes it needs.
    """
    if scores.dim() != 2 or scores.shape[0] == 0:
        raise ValueError(
            f"in-batch scores must have shape (Q, Q*D), got {tuple(scores.shape)}: query q against "
            "every doc of the batch, owning columns [q*D, (q+1)*D)"
        )
    num_queries, num_columns = scores.shape
    if query_offset is None:
        if num_columns % num_queries != 0:
            raise ValueError(
                f"in-batch scores must have shape (Q, Q*D), got {tuple(scores.shape)}: query q "
                "against every doc of the batch, owning columns [q*D, (q+1)*D)"
            )
        shape = (num_queries, num_columns // num_queries)
        if mask is None:
            mask = torch.ones(shape, dtype=torch.bool, device=scores.device)
        elif mask.shape != shape:
            raise ValueError(
                f"in-batch mask must have shape (Q, D) = {shape}, got {tuple(mask.shape)}"
            )
        query_offset = 0
    elif (
        mask is None
        or mask.dim() != 2
        or mask.numel() != num_columns
        or not 0 <= query_offset <= mask.shape[0] - num_queries
    ):
        raise ValueError(
            f"gathered in-batch scores {tuple(scores.shape)} with query_offset={query_offset} need "
            f"a (B, D) mask of every block with B*D = {num_columns} and B >= query_offset + Q; "
            f"got {None if mask is None else tuple(mask.shape)}"
        )
    mask = mask.to(dtype=torch.bool, device=scores.device)
    num_docs = mask.shape[1]
    real_columns = mask.reshape(1, num_columns).expand(num_queries, num_columns)  # (Q, B*D)
    owner = torch.arange(num_columns, device=scores.device) // num_docs  # (B*D,)
    rows = query_offset + torch.arange(num_queries, device=scores.device)  # (Q,)
    own = owner.unsqueeze(0) == rows.unsqueeze(1)  # (Q, B*D)
    scores = scores.float().masked_fill(~real_columns, 0.0)  # (Q, B*D)
    local_mask = mask[query_offset : query_offset + num_queries]  # (Q, D)
    return InBatchLayout(scores, local_mask, mask, real_columns, own, query_offset)
