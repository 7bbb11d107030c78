"""Multi-device (DDP) helpers: who this process is, and in-batch scores against every rank's docs.

Under ``trainer=ddp`` each rank trains on its own share of the data and DDP averages the gradients
over the ranks. An in-batch loss with ``gather_across_devices=True`` scores the rank's queries
against the docs of *every* rank: :func:`gather_in_batch` all-gathers the doc embeddings with
gradients (the backward pass sums each rank's gradient for a doc and hands it to the doc's rank), and
the loss returns its queries' share of the global mean. The module multiplies that share by the world
size, so that DDP's average of the ranks' gradients is exactly the single-process gradient on the
concatenated (global) batch::

    (1/R) sum_r grad[R * sum_{q in r} loss_q / N] = grad[(1/N) sum_q loss_q]

(``R`` ranks, ``N`` queries with a positive in the global batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from lossbench.loss.base import InBatchLossFunction

if TYPE_CHECKING:  # lossbench.models imports this module
    from lossbench.models.scoring import Scoring


def dot_product() -> Scoring:
    """The scoring of single-vector models, the default of the functions below."""
    from lossbench.models.scoring import DotProduct

    return DotProduct()


def distributed_position() -> tuple[int, int]:
    """``(rank, world size)`` of this process: torch.distributed's when initialized, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """``all_gather`` whose backward sums every rank's gradient and returns this rank's slice."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        rank, world_size = distributed_position()
        ctx.rank, ctx.size = rank, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)  # (R*N, ...)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every rank's loss reaches every rank's docs
        return grad[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``(N, ...)`` of every rank in rank order: ``(R*N, ...)``.

    Every rank must pass the same shape. Gradients flow back to the rank that owns each part,
    summed over the ranks whose losses used it (an all-reduce: works with gloo and NCCL alike).
    """
    return _AllGatherWithGrad.apply(tensor)  # type: ignore[no-any-return]


def all_gather_sizes(*sizes: int, device: torch.device) -> torch.Tensor:
    """Every rank's ``sizes``: ``(R, len(sizes))`` (no gradient)."""
    _, world_size = distributed_position()
    local = torch.tensor(sizes, dtype=torch.long, device=device)
    parts = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(parts, local)
    return torch.stack(parts)


@dataclass
class InBatchScores:
    """What an in-batch loss takes; :meth:`apply` calls it.

    Attributes:
        scores: ``(Q, B*D)``: the local queries against the docs of ``B`` blocks.
        targets: ``(Q, D)`` or ``(Q, D, T)``: the local queries' own blocks, or None.
        mask: ``(B, D)`` for gathered scores, else ``(Q, D)``.
        query_offset: the block of the first local query (None: not gathered, block q is query q's).
        scale: multiplies the loss: the world size when gathered (DDP averages over the ranks).
    """

    scores: torch.Tensor
    targets: torch.Tensor | None
    mask: torch.Tensor
    query_offset: int | None = None
    scale: float = 1.0

    def apply(self, loss: InBatchLossFunction) -> torch.Tensor:
        """``loss(scores, targets, mask)``; gathered: ``scale * loss(..., query_offset)``, the local
        queries' share of the global mean times the world size (DDP averages over the ranks)."""
        if self.query_offset is None:
            return loss(self.scores, self.targets, self.mask)
        return self.scale * loss(self.scores, self.targets, self.mask, self.query_offset)


def in_batch_inputs(
    queries: torch.Tensor,
    docs: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor | None,
    gather: bool,
    scoring: Scoring | None = None,
) -> InBatchScores:
    """In-batch scores of ``queries`` ``(Q, *E)`` against the batch's docs ``(Q, D, *E)``, or, with
    ``gather`` under DDP, against every rank's docs (:func:`gather_in_batch`), compared by
    ``scoring`` (the model's: MaxSim of token vectors; None: the dot product of single vectors)."""
    if gather and distributed_position()[1] > 1:
        return gather_in_batch(queries, docs, mask, targets, scoring)
    scores = (scoring or dot_product()).all_docs(queries, docs.flatten(0, 1))  # (Q, Q*D)
    return InBatchScores(scores, targets, mask)


def gather_in_batch(
    queries: torch.Tensor,
    docs: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor | None,
    scoring: Scoring | None = None,
) -> InBatchScores:
    """The local ``queries`` ``(Q, *E)`` against the docs ``(Q, D, *E)`` of every rank.

    Ranks may hold different numbers of queries and docs per query (a rank's last batch is
    smaller), and token vectors of different lengths: every rank pads its docs with zeros to the
    largest size of each axis, ``(Q_max, D_max, *E_max)`` (padding docs are masked out, padding
    tokens are zero vectors, which no score counts), so the gathered docs are ``R * Q_max`` blocks
    of ``D_max``; this rank's queries own blocks ``rank * Q_max + q``. Falls back to the batch's
    own scores (:func:`in_batch_inputs` without gathering) when not distributed.
    """
    rank, world_size = distributed_position()
    if world_size == 1:
        return in_batch_inputs(queries, docs, mask, targets, False, scoring)
    sizes = all_gather_sizes(*docs.shape, device=docs.device)  # (R, 2 + len(E))
    largest = [int(v) for v in sizes.max(dim=0).values]
    widths: list[int] = []
    for size, target in zip(reversed(docs.shape), reversed(largest), strict=True):
        widths += [0, target - size]  # F.pad lists the last axis first
    padded_docs = F.pad(docs, widths)  # (Q_max, D_max, *E_max)
    max_queries, max_docs = largest[:2]
    pad_docs, pad_queries = max_docs - docs.shape[1], max_queries - docs.shape[0]
    padded_mask = F.pad(mask.to(torch.uint8), (0, pad_docs, 0, pad_queries))  # (Q_max, D_max)
    all_docs = all_gather_with_grad(padded_docs).flatten(0, 1)  # (R*Q_max*D_max, *E_max)
    mask_parts = [torch.empty_like(padded_mask) for _ in range(world_size)]
    dist.all_gather(mask_parts, padded_mask)
    all_mask = torch.cat(mask_parts).bool()  # (R*Q_max, D_max)
    if targets is not None and pad_docs:
        target_widths = [0, 0] * (targets.dim() - 2) + [0, pad_docs]
        targets = F.pad(targets, target_widths)  # (Q, D_max[, T])
    scores = (scoring or dot_product()).all_docs(queries, all_docs)  # (Q, R*Q_max*D_max)
    return InBatchScores(scores, targets, all_mask, rank * max_queries, float(world_size))
