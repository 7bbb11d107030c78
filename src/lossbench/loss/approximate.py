"""Approximate-ranking losses: ranking metrics made differentiable through sigmoid-smoothed ranks.

Every loss here builds the ``(Q, D, D)`` matrix of score differences, which is fine for lists of up
to a few hundred candidates.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from lossbench.loss.base import (
    Needs,
    TemperedScoringLossFunction,
    check_flag,
    masked_mean,
)


def approx_ranks(scores: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Smooth ranks ``r_qa = 1 + sum_{b != a, b real} sigmoid((s_qb - s_qa) / temperature)``.

    Returns ``(Q, D)``; values at padded positions are meaningless (callers mask them).
    """
    scores = scores.masked_fill(~mask, 0.0)  # (Q, D)
    diffs = (scores.unsqueeze(1) - scores.unsqueeze(2)) / temperature  # (Q, D, D): s_qb - s_qa
    eye = torch.eye(scores.shape[-1], dtype=torch.bool, device=scores.device)  # (D, D)
    others = mask.unsqueeze(1) & ~eye  # (Q, D, D): b real and b != a
    beaten_by = torch.sigmoid(diffs).masked_fill(~others, 0.0)  # (Q, D, D)
    return 1.0 + beaten_by.sum(dim=-1)  # (Q, D)


def true_ranks(targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of the real candidates by descending target, ties by position (earlier first).

    Padded candidates get the ranks after every real one. Returns a float ``(Q, D)`` tensor.
    """
    targets = targets.masked_fill(~mask, 0.0)  # (Q, D)
    order = torch.sort(targets, dim=-1, descending=True, stable=True).indices  # (Q, D)
    # A second stable sort moves padded candidates behind every real one, keeping the order above.
    is_real = mask.gather(-1, order).to(torch.uint8)  # (Q, D)
    real_first = torch.sort(is_real, dim=-1, descending=True, stable=True).indices  # (Q, D)
    order = order.gather(-1, real_first)  # (Q, D)
    positions = torch.arange(1, targets.shape[-1] + 1, device=targets.device, dtype=targets.dtype)
    ranks = torch.empty_like(targets)  # (Q, D)
    return ranks.scatter_(-1, order, positions.expand_as(targets))  # (Q, D)


class _ApproxLoss(TemperedScoringLossFunction):
    needs: ClassVar[Needs] = Needs.TARGETS


class ApproxNDCG(_ApproxLoss):
    """ApproxNDCG: maximise nDCG computed with smooth ranks instead of sorting.

    Formula (smooth rank ``r``, true ranks ``R`` of the real candidates by descending target;
    ``mean_q`` over queries with at least one real candidate)::

        r_qa  = 1 + sum_{b != a} sigmoid((s_qb - s_qa) / temperature)
        g_qd  = 2^max(t_qd, 0) - 1     (or max(t_qd, 0) when scale_gains=False)
        DCG_q = sum_d g_qd / log2(1 + r_qd),   IDCG_q = sum_d g_qd / log2(1 + R_qd)
        L     = mean_q (1 - DCG_q / max(IDCG_q, 1e-12))

    Args:
        temperature: divides the score differences inside the sigmoid; smaller values make the
            smooth ranks closer to the true ranks but the gradients steeper.
        scale_gains: exponential gains ``2^t - 1`` (True, the usual nDCG) or linear gains ``t``.

    References:
        Qin, Liu and Li, "A General Approximation Framework for Direct Optimization of Information
        Retrieval Measures", Information Retrieval 13(4), 2010. Järvelin and Kekäläinen,
        "Cumulated Gain-Based Evaluation of IR Techniques", ACM TOIS 20(4), 2002.

    Inputs:
        Relevance labels (graded or binary) or tuple order; negative targets count as 0. With
        teacher scores as targets keep ``scale_gains=False`` unless they are small: ``2^t`` grows
        fast.

    Relations:
        :class:`ApproxMRR` uses the same smooth ranks for reciprocal rank; :class:`ApproxRankMSE`
        regresses the smooth ranks onto the true ranks. :class:`RankNet` uses the same sigmoid of
        score differences, unweighted by position.

    Differs from lightning-ir:
        Padded candidates neither compete for ranks nor contribute gains. A query with all-zero
        relevance has nDCG 0 (loss 1, as in the reference) and zero gradients; a query with no real
        candidate is skipped.

    Example:
        >>> import torch
        >>> ApproxNDCG()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.2435)
    """

    def __init__(self, temperature: float = 1.0, scale_gains: bool = True) -> None:
        super().__init__(temperature)
        self.scale_gains = check_flag(scale_gains, "scale_gains")

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        targets = targets.clamp(min=0.0).masked_fill(~mask, 0.0)  # (Q, D)
        gains = torch.exp2(targets) - 1.0 if self.scale_gains else targets  # (Q, D)
        ranks = approx_ranks(scores, mask, self.temperature)  # (Q, D)
        ideal_ranks = true_ranks(targets, mask)  # (Q, D)
        dcg = (gains / torch.log2(1.0 + ranks)).sum(dim=-1)  # (Q,)
        idcg = (gains / torch.log2(1.0 + ideal_ranks)).sum(dim=-1)  # (Q,)
        ndcg = dcg / idcg.clamp(min=1e-12)  # (Q,)
        return masked_mean(1.0 - ndcg, mask.any(dim=-1))


class ApproxMRR(_ApproxLoss):
    """ApproxMRR: maximise the reciprocal rank of the best relevant candidate, with smooth ranks.

    Formula (smooth rank ``r`` as in :class:`ApproxNDCG`; ``mean_q`` over queries with at least one
    real candidate)::

        MRR_q = max_{d real} min(t_qd, 1) / r_qd
        L     = mean_q (1 - MRR_q)

    Args:
        temperature: divides the score differences inside the sigmoid.

    References:
        Qin, Liu and Li, "A General Approximation Framework for Direct Optimization of Information
        Retrieval Measures", Information Retrieval 13(4), 2010.

    Inputs:
        Binary relevance labels or tuple order (positive first, target 1); labels above 1 are
        clipped to 1.

    Relations:
        :class:`ApproxNDCG` with a metric that only looks at the top relevant candidate; its
        gradient flows through the single candidate that attains the maximum (split evenly on ties).

    Differs from lightning-ir:
        Padded candidates neither compete for ranks nor can attain the maximum; the maximum's
        gradient is split evenly among tied maximisers (``amax``) instead of going to one of them,
        which keeps the gradient independent of candidate order. Same value.

    Example:
        >>> import torch
        >>> ApproxMRR()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.3333)
    """

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        has_real = mask.any(dim=-1)  # (Q,)
        targets = targets.clamp(max=1.0).masked_fill(~mask, 0.0)  # (Q, D)
        ranks = approx_ranks(scores, mask, self.temperature)  # (Q, D)
        reciprocal = (targets / ranks).masked_fill(~mask, float("-inf"))  # (Q, D)
        reciprocal = reciprocal.masked_fill(~has_real.unsqueeze(-1), 0.0)  # (Q, D)
        mrr = reciprocal.amax(dim=-1)  # (Q,)
        return masked_mean(1.0 - mrr, has_real)


class ApproxRankMSE(_ApproxLoss):
    """ApproxRankMSE: regress each candidate's smooth rank onto its true rank.

    Formula (smooth rank ``r`` as in :class:`ApproxNDCG`; ``R`` = true rank 1..n by descending
    target, ties by position, earlier first; mean over every real ``(q, d)`` of the batch)::

        L = mean_{(q,d)} w(R_qd) * (r_qd - R_qd)^2,
        w(R) = 1 / log2(R + 1) ("log2"), 1 / R ("reciprocal"), or 1 (None)

    Args:
        temperature: divides the score differences inside the sigmoid.
        discount: weight errors at the top of the ranking more: ``"log2"``, ``"reciprocal"`` or
            ``None`` (no weighting).

    References:
        Schlatt, Fröbe, Scells, Zhuang, Koopman, Zuccon, Stein, Potthast and Hagen, "Rank-DistiLLM:
        Closing the Effectiveness Gap Between Cross-Encoders and LLMs for Passage Re-ranking",
        ECIR 2025.

    Inputs:
        Targets of any kind that induce an order: teacher scores or a teacher's ranking (the
        intended use: distilling a listwise LLM ranking), or labels. Ties are broken by position,
        so with tied targets the value depends on candidate order.

    Relations:
        Uses the smooth ranks of :class:`ApproxNDCG`, but as a regression on ranks instead of a
        metric; like :class:`ListMLE` it only needs the target order.

    Differs from lightning-ir:
        Ties are broken by position for every list length (the reference's unstable sort does so on
        CPU only up to 16 candidates). Padded candidates get no rank and no error term; the mean is
        over real entries.

    Example:
        >>> import torch
        >>> ApproxRankMSE()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.2500)
    """

    def __init__(
        self,
        temperature: float = 1.0,
        discount: Literal["log2", "reciprocal"] | None = None,
    ) -> None:
        super().__init__(temperature)
        if discount not in (None, "log2", "reciprocal"):
            raise ValueError(f"discount must be None, 'log2' or 'reciprocal', got {discount!r}")
        self.discount = discount

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        ranks = approx_ranks(scores, mask, self.temperature)  # (Q, D)
        target_ranks = true_ranks(targets, mask)  # (Q, D)
        errors = (ranks - target_ranks).square()  # (Q, D)
        if self.discount == "log2":
            errors = errors / torch.log2(target_ranks + 1.0)  # (Q, D)
        elif self.discount == "reciprocal":
            errors = errors / target_ranks  # (Q, D)
        return masked_mean(errors, mask)
