"""Pairwise losses: every ordered pair of a query's candidates whose targets differ."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from lossbench.loss.base import (
    Needs,
    ScoringLossFunction,
    TemperedScoringLossFunction,
    check_positive,
    masked_mean,
)


def pair_mask(targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bool ``(Q, D, D)``: True at ``(q, i, j)`` where ``t[q, i] > t[q, j]`` and both are real.

    Ties give no pair, padding gives no pair.
    """
    real = mask.unsqueeze(2) & mask.unsqueeze(1)  # (Q, D, D)
    return (targets.unsqueeze(2) > targets.unsqueeze(1)) & real  # (Q, D, D)


def score_differences(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``s[q, i] - s[q, j]`` as ``(Q, D, D)``, with padded scores zeroed first so no inf/NaN leaks in."""
    scores = scores.masked_fill(~mask, 0.0)  # (Q, D)
    return scores.unsqueeze(2) - scores.unsqueeze(1)  # (Q, D, D)


class RankNet(TemperedScoringLossFunction):
    """RankNet: push every better-labelled candidate above every worse one, pair by pair.

    Formula (mean over every pair of the batch, pairs are ``t_qi > t_qj``, both real)::

        L = mean_{(q,i,j)} log(1 + exp(-(s_qi - s_qj) * temperature))

    computed as ``softplus`` so large score gaps neither overflow nor underflow.

    Args:
        temperature: multiplies the score difference, so it is an *inverse* temperature (larger
            means sharper). The name and behaviour are kept from lightning-ir, whose users pass it.
            Positive and finite (a ``ValueError`` otherwise: a negative one would invert the
            objective, 0 would give zero gradients).

    References:
        Burges et al., "Learning to Rank using Gradient Descent", ICML 2005.

    Inputs:
        Targets of any kind: tuple order (positive first), relevance labels or teacher scores.
        Only their order matters.

    Relations:
        The logistic counterpart of :class:`ConstantMarginMSE` (a squared loss on the same pairs);
        with two candidates per query (triples) it is the binary cross-entropy of the positive
        beating the negative, i.e. :class:`InfoNCE` on a two-document list.

    Differs from lightning-ir:
        Ragged lists are masked instead of misaligned, and a batch with no pair (all ties) returns
        0 with zero gradients instead of NaN; the temperature is checked.

    Example:
        >>> import torch
        >>> RankNet()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.1269)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        pairs = pair_mask(targets, mask)  # (Q, D, D)
        diffs = score_differences(scores, mask)  # (Q, D, D)
        losses = F.softplus(-diffs * self.temperature)  # (Q, D, D)
        return masked_mean(losses, pairs)


class ConstantMarginMSE(ScoringLossFunction):
    """Constant Margin-MSE: every better candidate should beat every worse one by exactly ``margin``.

    Formula (mean over every pair of the batch, pairs are ``t_qi > t_qj``, both real)::

        L = mean_{(q,i,j)} ((s_qi - s_qj) - margin)^2

    Args:
        margin: the score gap each pair should show, positive and finite; ints are accepted
            (``margin=1``).

    References:
        Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
        Knowledge Distillation", arXiv:2010.02666, 2020 (Margin-MSE, here with a constant margin).

    Inputs:
        Targets of any kind (tuple order, labels, teacher scores); only their order matters.

    Relations:
        A squared counterpart of :class:`RankNet` on the same pairs. Unlike RankNet it also pushes
        pairs that are already separated by more than ``margin`` back together (a regression, not a
        classification). :class:`SupervisedMarginMSE` replaces the constant with the target gap.

    Differs from lightning-ir:
        An int margin works (the reference raises "invalid margin type" for ``margin=1``); ragged
        lists are masked; a batch with no pair returns 0 with zero gradients instead of NaN.

    Example:
        >>> import torch
        >>> ConstantMarginMSE(margin=1)(torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(4.)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def __init__(self, margin: float = 1.0) -> None:
        # > 0: a negative margin asks worse candidates to win, 0 asks every pair to tie
        self.margin = check_positive(margin, "margin")

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        pairs = pair_mask(targets, mask)  # (Q, D, D)
        diffs = score_differences(scores, mask)  # (Q, D, D)
        losses = (diffs - self.margin).square()  # (Q, D, D)
        return masked_mean(losses, pairs)


class SupervisedMarginMSE(ScoringLossFunction):
    """Margin-MSE: the student's score gap of each pair should equal the teacher's score gap.

    Formula (mean over every pair of the batch, pairs are ``t_qi > t_qj``, both real)::

        L = mean_{(q,i,j)} ((s_qi - s_qj) - (t_qi - t_qj))^2

    Args:
        None.

    References:
        Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
        Knowledge Distillation", arXiv:2010.02666, 2020.

    Inputs:
        Real-valued teacher scores as targets (a run with scores): it is a distillation loss. With
        graded labels it regresses onto label gaps, which is rarely what you want.

    Relations:
        :class:`ConstantMarginMSE` with a per-pair margin taken from the targets. Like
        :class:`KLDivergence` it matches the teacher's scores, but only through their differences,
        so it is invariant to a shift of either score list.

    Differs from lightning-ir:
        Ragged lists are masked; a batch with no pair (all ties) returns 0 with zero gradients
        instead of NaN.

    Example:
        >>> import torch
        >>> SupervisedMarginMSE()(torch.tensor([[3.0, 0.0]]), torch.tensor([[2.0, 0.0]]))
        tensor(1.)
    """

    needs: ClassVar[Needs] = Needs.TARGETS | Needs.TEACHER_SCORES

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        pairs = pair_mask(targets, mask)  # (Q, D, D)
        diffs = score_differences(scores, mask)  # (Q, D, D)
        target_diffs = score_differences(targets, mask)  # (Q, D, D)
        losses = (diffs - target_diffs).square()  # (Q, D, D)
        return masked_mean(losses, pairs)
