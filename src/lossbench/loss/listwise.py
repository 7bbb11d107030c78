"""Listwise losses: each query's whole candidate list at once, through a softmax or a correlation."""

from __future__ import annotations

from typing import ClassVar

import torch

from lossbench.loss.base import (
    Needs,
    ScoringLossFunction,
    TemperedScoringLossFunction,
    masked_log_softmax,
    masked_logsumexp,
    masked_mean,
)


def _target_distribution(
    targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, p)`` of ``softmax(targets)`` over the real entries, both 0 at padded entries."""
    log_probs = masked_log_softmax(targets, mask)  # (Q, D)
    probs = log_probs.exp() * mask  # (Q, D)
    return log_probs, probs


def plackett_luce_terms(
    scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ListMLE terms ``logsumexp_{k >= i} s_pi(k) - s_pi(i)`` of every position, and the positions.

    ``pi`` sorts each query's real candidates by descending target, ties by position (earlier
    first). Returns ``(terms, positions)``, both ``(Q, D)`` in sorted order: ``positions`` counts
    1..n over the real entries (0 at padding); ``terms`` is 0 at padding and at the last real
    position (a one-candidate softmax), exactly.
    """
    # Every term is a difference of scores, so shifting each list by its (detached) maximum
    # changes nothing but keeps logcumsumexp and its backward precise for large scores.
    top = scores.masked_fill(~mask, float("-inf")).amax(dim=-1, keepdim=True).detach()  # (Q, 1)
    top = top.clamp(min=torch.finfo(scores.dtype).min)  # (Q, 1): finite for all-padding rows
    scores = (scores - top).masked_fill(~mask, 0.0)  # (Q, D)
    # Padded entries sort first so that no suffix starting at a real position contains them.
    keys = targets.masked_fill(~mask, float("inf"))  # (Q, D)
    order = torch.sort(keys, dim=-1, descending=True, stable=True).indices  # (Q, D)
    sorted_scores = scores.gather(-1, order)  # (Q, D)
    sorted_mask = mask.gather(-1, order)  # (Q, D)
    positions = sorted_mask.cumsum(dim=-1) * sorted_mask  # (Q, D): 1..n at real entries
    suffix_lse = torch.logcumsumexp(sorted_scores.flip(-1), dim=-1).flip(-1)  # (Q, D)
    # The last position is always 0 (a one-candidate softmax): leave it out exactly.
    sorted_mask[:, -1] = False
    terms = (suffix_lse - sorted_scores).masked_fill(~sorted_mask, 0.0)  # (Q, D)
    return terms, positions


class KLDivergence(TemperedScoringLossFunction):
    """KL divergence: make the student's softmax over the list match the teacher's softmax.

    Formula (targets are taken as logits; ``mean_q`` over queries with at least one real doc)::

        p_q = softmax(t_q),  log r_q = log_softmax(s_q / temperature)
        L   = mean_q sum_d p_qd * (log p_qd - log r_qd)       # mean_q KL(p_q || r_q)

    Args:
        temperature: divides the student's scores before the softmax (larger means a flatter
            student distribution). Default 1 equals the reference. The targets are not scaled:
            scale the teacher's scores upstream if you want a temperature on both sides.

    References:
        Kullback and Leibler, "On Information and Sufficiency", The Annals of Mathematical
        Statistics 22(1), 1951. Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
        Network", NIPS Deep Learning Workshop, 2015.

    Inputs:
        Real-valued teacher scores as targets (a run with scores, ``targets: score``). Labels work
        mechanically but give a flat, uninformative teacher distribution.

    Relations:
        :class:`ListNet` is this loss plus the (constant) entropy of the teacher distribution: same
        gradients, different value. :class:`InfoNCE` is the limit of a one-hot teacher.
        :class:`SupervisedMarginMSE` also distils, pair by pair on score gaps.

    Differs from lightning-ir:
        Ragged lists are masked (the softmax runs over real candidates only) and the mean is over
        queries with at least one real candidate (the reference divides by every query of the
        batch; the same without padding). Adds ``temperature``.

    Example:
        >>> import torch
        >>> KLDivergence()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.1109)
    """

    needs: ClassVar[Needs] = Needs.TARGETS | Needs.TEACHER_SCORES

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        scores = scores.masked_fill(~mask, 0.0) / self.temperature  # (Q, D)
        log_student = masked_log_softmax(scores, mask)  # (Q, D)
        log_teacher, teacher = _target_distribution(targets, mask)  # (Q, D) each
        kl = (teacher * (log_teacher - log_student)).sum(dim=-1)  # (Q,)
        return masked_mean(kl, mask.any(dim=-1))


class InfoNCE(TemperedScoringLossFunction):
    """InfoNCE: softmax cross-entropy that picks the best-labelled candidate out of the list.

    Formula (``p_q`` = first real candidate with the highest target; ``mean_q`` over queries with
    at least one real candidate)::

        L = mean_q [ logsumexp_{d real} (s_qd / temperature) - s_q,p_q / temperature ]

    Args:
        temperature: divides the scores before the softmax (smaller means sharper; 0.05 is common
            for cosine-similarity models). Default 1 equals the reference.

    References:
        van den Oord, Li and Vinyals, "Representation Learning with Contrastive Predictive Coding",
        arXiv:1807.03748, 2018.

    Inputs:
        Targets of any kind; only the index of the (first) maximum is used, so tuple order
        (positive first) or labels are enough.

    Relations:
        The one-hot limit of :class:`KLDivergence` and :class:`ListNet`. On a two-document list it
        equals :class:`RankNet`. :class:`InBatchCrossEntropy` is the same cross-entropy over the
        docs of the whole batch instead of the query's own list.

    Differs from lightning-ir:
        Padded candidates are out of the softmax and cannot be chosen as the positive; a query with
        no real candidate is skipped. Adds ``temperature``.

    Example:
        >>> import torch
        >>> InfoNCE()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.1269)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        scores = scores.masked_fill(~mask, 0.0) / self.temperature  # (Q, D)
        best = targets.masked_fill(~mask, float("-inf")).argmax(dim=-1, keepdim=True)  # (Q, 1)
        positive = scores.gather(-1, best).squeeze(-1)  # (Q,)
        losses = masked_logsumexp(scores, mask) - positive  # (Q,)
        return masked_mean(losses, mask.any(dim=-1))


class PearsonCorrelation(ScoringLossFunction):
    """Pearson correlation: the scores should rise and fall linearly with the targets.

    Formula (centring and norms over each query's real candidates; ``mean_q`` over queries with at
    least one real candidate)::

        r_q = <s_q - mean(s_q), t_q - mean(t_q)> / (max(|s_q - mean(s_q)|, eps) * max(|t_q - mean(t_q)|, eps))
        L   = mean_q (1 - r_q),   eps = 1e-8

    Args:
        None.

    References:
        Pearson, "Notes on Regression and Inheritance in the Case of Two Parents", Proceedings of
        the Royal Society of London 58, 1895.

    Inputs:
        Real-valued targets, ideally teacher scores; with binary labels it is a point-biserial
        correlation. Invariant to shifting or positively scaling either scores or targets.

    Relations:
        A scale-free alternative to :class:`SupervisedMarginMSE` (which matches score gaps in
        absolute terms) and to :class:`KLDivergence` (which matches a softmax, so it is sensitive to
        the teacher's scale).

    Differs from lightning-ir:
        Centring and norms use real candidates only; the norm is clamped before its square root, so
        a constant list (e.g. all-equal targets, r = 0, loss 1) has finite, zero gradients.

    Example:
        >>> import torch
        >>> PearsonCorrelation()(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]))
        tensor(2.)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    eps: ClassVar[float] = 1e-8

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        counts = mask.sum(dim=-1, keepdim=True).clamp(min=1)  # (Q, 1)
        scores = scores.masked_fill(~mask, 0.0)  # (Q, D)
        targets = targets.masked_fill(~mask, 0.0)  # (Q, D)
        centred_scores = (scores - scores.sum(-1, keepdim=True) / counts).masked_fill(~mask, 0.0)
        centred_targets = (targets - targets.sum(-1, keepdim=True) / counts).masked_fill(~mask, 0.0)
        numerator = (centred_scores * centred_targets).sum(dim=-1)  # (Q,)
        min_sq = self.eps**2
        score_norm = centred_scores.square().sum(dim=-1).clamp(min=min_sq).sqrt()  # (Q,)
        target_norm = centred_targets.square().sum(dim=-1).clamp(min=min_sq).sqrt()  # (Q,)
        correlation = numerator / (score_norm * target_norm)  # (Q,)
        return masked_mean(1.0 - correlation, mask.any(dim=-1))


class ListNet(TemperedScoringLossFunction):
    """ListNet: cross-entropy between the top-one probabilities of the targets and of the scores.

    Formula (targets are taken as logits; ``mean_q`` over queries with at least one real doc)::

        L = mean_q [ - sum_d softmax(t_q)_d * log_softmax(s_q / temperature)_d ]

    Args:
        temperature: divides the scores before the softmax (targets are not scaled). Default 1 is
            the loss of the paper.

    References:
        Cao, Qin, Liu, Tsai and Li, "Learning to Rank: From Pairwise Approach to Listwise
        Approach", ICML 2007.

    Inputs:
        Targets of any kind: labels (``softmax`` of graded labels, as in the paper) or teacher
        scores.

    Relations:
        Equals :class:`KLDivergence` plus the entropy of ``softmax(t_q)``, which does not depend on
        the scores: the gradients are identical, only the value is offset (it is not 0 at the
        optimum). With one-hot-like targets it approaches :class:`InfoNCE`.

    Differs from lightning-ir:
        Not in lightning-ir. Masked like the other listwise losses.

    Example:
        >>> import torch
        >>> ListNet()(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]]))
        tensor(0.6931)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        scores = scores.masked_fill(~mask, 0.0) / self.temperature  # (Q, D)
        log_student = masked_log_softmax(scores, mask)  # (Q, D)
        _, teacher = _target_distribution(targets, mask)  # (Q, D)
        cross_entropy = -(teacher * log_student).sum(dim=-1)  # (Q,)
        return masked_mean(cross_entropy, mask.any(dim=-1))


class ListMLE(ScoringLossFunction):
    """ListMLE: maximise the Plackett-Luce likelihood of the list sorted by its targets.

    Formula (``pi_q`` sorts the real candidates of q by descending target, ties by position,
    earlier first; ``n_q`` real candidates; ``mean_q`` over queries with at least one)::

        L = mean_q sum_{i=1}^{n_q} [ logsumexp_{k >= i} s_q,pi(k) - s_q,pi(i) ]

    computed for all positions at once with a reversed ``logcumsumexp``. It is a sum over
    positions, so longer lists give larger values.

    Args:
        None.

    References:
        Xia, Liu, Wang, Zhang and Li, "Listwise Approach to Learning to Rank: Theory and
        Algorithm", ICML 2008.

    Inputs:
        Targets of any kind; only the order they induce is used. Ties are broken by position, so
        with tied targets the value depends on candidate order.

    Relations:
        The full-permutation extension of :class:`InfoNCE`, which is its first term (top-one)
        alone. Unlike :class:`ListNet` it uses only the order of the targets, not their values.

    Differs from lightning-ir:
        Not in lightning-ir. Padded candidates take no part in any term.

    Example:
        >>> import torch
        >>> ListMLE()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.1269)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        terms, _ = plackett_luce_terms(scores, targets, mask)  # (Q, D)
        return masked_mean(terms.sum(dim=-1), mask.any(dim=-1))


def position_weights(positions: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """p-ListMLE weights ``(2^(n-i) - 1) / sum_j (2^(n-j) - 1)`` of positions ``i`` in 1..n.

    ``positions`` ``(Q, D)`` (0 at padding), ``counts`` ``(Q, 1)`` real candidates per query. Both
    sides are divided by ``2^n`` so that nothing overflows for long lists::

        w_i = (2^-i - 2^-n) / (1 - (n + 1) 2^-n)

    The denominator is at least 1/4 for every ``n >= 2``; with ``n <= 1`` every weight is 0.
    """
    n = counts.to(torch.float32)  # (Q, 1)
    numerator = torch.exp2(-positions.to(torch.float32)) - torch.exp2(-n)  # (Q, D)
    denominator = (1.0 - (n + 1.0) * torch.exp2(-n)).clamp(min=0.25)  # (Q, 1)
    return (numerator / denominator).masked_fill(positions == 0, 0.0)  # (Q, D)


class PositionAwareListMLE(ScoringLossFunction):
    """Position-aware ListMLE (p-ListMLE): ListMLE whose top positions weigh exponentially more.

    Formula (``pi_q`` sorts the real candidates of q by descending target, ties by position,
    earlier first; ``n_q`` real candidates; ``mean_q`` over queries with at least one)::

        alpha(i) = 2^(n_q - i) - 1,      w_qi = alpha(i) / sum_{j=1}^{n_q} alpha(j)
        L        = mean_q sum_{i=1}^{n_q} w_qi * [ logsumexp_{k >= i} s_q,pi(k) - s_q,pi(i) ]

    The paper weighs the i-th step of the sequential (Plackett-Luce) likelihood by a decreasing
    ``alpha(i)``, which makes the loss consistent with NDCG; ``2^(n-i) - 1`` is the weight
    TF-Ranking uses for it. Normalizing the weights to sum to 1 per query keeps them decreasing
    (the paper's condition) and keeps the value on the scale of one softmax cross-entropy whatever
    the list length (``alpha(1)`` alone is ``2^(n-1) - 1``, which overflows float32 from 129 candidates
    on); the weights are computed in a form that never overflows.

    Args:
        None.

    References:
        Lan, Zhu, Guo, Niu and Cheng, "Position-Aware ListMLE: A Sequential Learning Process for
        Ranking", UAI 2014. Xia, Liu, Wang, Zhang and Li, "Listwise Approach to Learning to Rank:
        Theory and Algorithm", ICML 2008.

    Inputs:
        Targets of any kind; only the order they induce is used (teacher scores, a teacher's
        ranking or labels). Ties are broken by position, as in :class:`ListMLE`.

    Relations:
        :class:`ListMLE` with position weights (ListMLE weighs every step 1 and sums, so its value
        grows with the list length). Its first step alone is :class:`InfoNCE`; with two candidates
        the weights are (1, 0) and it equals InfoNCE and ListMLE. TF-Ranking weighs by the padded
        list size and does not normalize; sentence-transformers' PListMLELoss normalizes
        ``2^(n-i+1) - 1``: the same family of decreasing weights, different constants.

    Differs from lightning-ir:
        Not in lightning-ir (it goes beyond the guide). Padded candidates take no part in any
        term, and ``n_q`` counts real candidates only.

    Example:
        >>> import torch
        >>> PositionAwareListMLE()(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([[2.0, 0.0, 1.0]]))
        tensor(0.3840)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        terms, positions = plackett_luce_terms(scores, targets, mask)  # (Q, D) each
        weights = position_weights(positions, mask.sum(dim=-1, keepdim=True))  # (Q, D)
        return masked_mean((weights * terms).sum(dim=-1), mask.any(dim=-1))
