"""Metric-driven losses: NDCG itself shapes the loss, through weighted pairs or a relaxed sort.

:class:`LambdaLoss` weighs every pair by how much swapping it changes NDCG at the current ranking;
:class:`NeuralNDCG` computes NDCG with a differentiable (NeuralSort + Sinkhorn) permutation
matrix. Both build ``(Q, D, D)`` tensors, which is fine for lists of up to a few hundred candidates.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from lossbench.loss.approximate import true_ranks
from lossbench.loss.base import (
    Needs,
    ScoringLossFunction,
    check_count,
    check_flag,
    check_non_negative,
    check_optional_count,
    check_positive,
    check_temperature,
    masked_log_softmax,
    masked_mean,
)
from lossbench.loss.pairwise import pair_mask, score_differences

Weighting = Literal["ndcg_loss2pp", "ndcg_loss2", "lambdarank", "ranknet"]
WEIGHTINGS: tuple[str, ...] = ("ndcg_loss2pp", "ndcg_loss2", "lambdarank", "ranknet")


def check_cutoff(k: int | None) -> int | None:
    """Return ``k`` unless it is neither None nor an integer >= 1 (then a ``ValueError``)."""
    return check_optional_count(k, "k", "every position")


def gains_of(targets: torch.Tensor, mask: torch.Tensor, exponential: bool) -> torch.Tensor:
    """NDCG gains ``2^t - 1`` (or ``t``) of ``max(t, 0)``; 0 at padded entries. ``(Q, D)``."""
    targets = targets.clamp(min=0.0).masked_fill(~mask, 0.0)  # (Q, D)
    return torch.exp2(targets) - 1.0 if exponential else targets


def position_discounts(num_positions: int, k: int | None, device: torch.device) -> torch.Tensor:
    """``1 / log2(1 + r)`` for positions ``r = 1..num_positions``, 0 beyond ``k``. ``(D,)``."""
    ranks = torch.arange(1, num_positions + 1, device=device, dtype=torch.float32)  # (D,)
    discounts = 1.0 / torch.log2(1.0 + ranks)  # (D,)
    if k is not None:
        discounts = discounts.masked_fill(ranks > k, 0.0)
    return discounts


def ideal_dcg(gains: torch.Tensor, discounts: torch.Tensor) -> torch.Tensor:
    """DCG of the gains sorted in descending order (padded gains are 0, so they sort last). ``(Q,)``."""
    ideal = torch.sort(gains, dim=-1, descending=True).values  # (Q, D)
    return (ideal * discounts).sum(dim=-1)


class LambdaLoss(ScoringLossFunction):
    """LambdaLoss: RankNet's pairs, each weighted by its effect on NDCG at the current ranking.

    Formula (``r_qi`` = rank 1..n_q of candidate i by its current score, ties by position, used as
    a constant; ``D(r) = log2(1 + r)``; ``1/D_k(r) = 1/D(r)`` for ``r <= k``, 0 beyond; pairs are
    ``t_qi > t_qj``, both real, at least one of them ranked in the top ``k``; ``mean_q`` over
    queries with at least one real candidate)::

        G_qi     = (2^max(t_qi, 0) - 1) / maxDCG_q@k
        rho_ij   = |1/D_k(r_i) - 1/D_k(r_j)|                     (LambdaRank: |delta NDCG@k| of a swap)
        delta_ij = |1/D(|r_i - r_j|) - 1/D(|r_i - r_j| + 1)|     (NDCG-Loss2)
        w_ij     = 1                                  weighting="ranknet"
                   rho_ij * |G_i - G_j|               weighting="lambdarank"
                   delta_ij * |G_i - G_j|             weighting="ndcg_loss2"
                   (rho_ij + mu * delta_ij) * |G_i - G_j|   weighting="ndcg_loss2pp"
        L        = mean_q sum_{(i,j)} w_ij * log2(1 + exp(-sigma * (s_qi - s_qj)))

    ``log2(1 + exp(-x))`` is computed as ``softplus(-x) / ln 2``: finite for any score gap. The
    weights carry no gradient (the paper's EM-style view: the ranking is fixed within a step).

    Args:
        weighting: the paper's weighting scheme; ``"ndcg_loss2pp"`` (default) was its best.
            NDCG-Loss1 is left out (weaker in the paper, and it pairs every two candidates).
        k: optimize NDCG@k: gains are normalized by the ideal DCG@k and only pairs with at least
            one candidate in the current top k count (swapping two candidates below k changes no
            NDCG@k; TF-Ranking's reading of the paper's Eq. 18); ``None`` means every position.
        sigma: scales the score difference inside the logistic (RankNet's sigma; larger is
            sharper).
        mu: weight of the NDCG-Loss2 term in NDCG-Loss2++ (``mu >= 0``; 0 gives "lambdarank").

    References:
        Wang, Li, Golbandi, Bendersky and Najork, "The LambdaLoss Framework for Ranking Metric
        Optimization", CIKM 2018. Burges, "From RankNet to LambdaRank to LambdaMART: An Overview",
        Microsoft Research Technical Report MSR-TR-2010-82, 2010.

    Inputs:
        Graded relevance labels, tuple order or teacher scores: the pairs use their order, the
        weights their gains ``2^t - 1`` (negative targets count as 0, so among candidates with
        ``t <= 0`` only ``weighting="ranknet"`` still learns). Longer lists give it more to work
        with than triples: with two candidates every weighting is a per-query constant times
        RankNet.

    Relations:
        With ``weighting="ranknet"`` it is :class:`RankNet` (``temperature=sigma``) summed per query
        in bits instead of averaged over the batch's pairs: on triples ``RankNet / ln 2``.
        :class:`ApproxNDCG` and :class:`NeuralNDCG` optimize the same metric through smooth ranks
        or a relaxed sort instead of weighted pairs.

    Differs from lightning-ir:
        Not in lightning-ir (it goes beyond the guide). Padded candidates neither get a rank nor
        form pairs; ties in targets form no pair. allRank and sentence-transformers keep only pairs
        with *both* candidates in the top k (so a relevant candidate ranked below k is never pulled
        up), and reduce by a batch sum (allRank) or a mean over pairs (sentence-transformers);
        here each query's pairs are summed, as in the paper, and queries are averaged.

    Example:
        >>> import torch
        >>> LambdaLoss()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.7434)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def __init__(
        self,
        weighting: Weighting = "ndcg_loss2pp",
        k: int | None = None,
        sigma: float = 1.0,
        mu: float = 10.0,
    ) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}; got {weighting!r}")
        self.weighting: Weighting = weighting
        self.k = check_cutoff(k)
        self.sigma = check_positive(sigma, "sigma")
        self.mu = check_non_negative(mu, "mu")

    def _weights(
        self, targets: torch.Tensor, mask: torch.Tensor, ranks: torch.Tensor
    ) -> torch.Tensor:
        """The pair weights ``w_ij`` of the NDCG schemes. ``(Q, D, D)``."""
        gains = gains_of(targets, mask, exponential=True)  # (Q, D)
        discounts = position_discounts(gains.shape[-1], self.k, gains.device)  # (D,)
        max_dcg = ideal_dcg(gains, discounts)  # (Q,)
        normalized = gains / max_dcg.clamp(min=1e-12).unsqueeze(-1)  # (Q, D): G
        gain_gaps = (normalized.unsqueeze(2) - normalized.unsqueeze(1)).abs()  # (Q, D, D)
        weights = torch.zeros_like(gain_gaps)  # (Q, D, D)
        if self.weighting in ("lambdarank", "ndcg_loss2pp"):
            inverse = 1.0 / torch.log2(1.0 + ranks)  # (Q, D): 1/D(r_i)
            if self.k is not None:
                inverse = inverse.masked_fill(ranks > self.k, 0.0)  # (Q, D): 1/D_k(r_i)
            weights = weights + (inverse.unsqueeze(2) - inverse.unsqueeze(1)).abs()  # rho
        if self.weighting in ("ndcg_loss2", "ndcg_loss2pp"):
            # |r_i - r_j| >= 1 for i != j; the clamp only keeps the (never paired) diagonal finite.
            gaps = (ranks.unsqueeze(2) - ranks.unsqueeze(1)).abs().clamp(min=1.0)  # (Q, D, D)
            delta = (1.0 / torch.log2(1.0 + gaps) - 1.0 / torch.log2(2.0 + gaps)).abs()
            scale = self.mu if self.weighting == "ndcg_loss2pp" else 1.0
            weights = weights + scale * delta  # (Q, D, D)
        return weights * gain_gaps

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        targets = targets.masked_fill(~mask, 0.0)  # (Q, D)
        ranks = true_ranks(scores.detach().masked_fill(~mask, 0.0), mask)  # (Q, D): 1..n_q first
        pairs = pair_mask(targets, mask)  # (Q, D, D)
        if self.k is not None:
            in_top = ranks <= self.k  # (Q, D)
            pairs = pairs & (in_top.unsqueeze(2) | in_top.unsqueeze(1))  # (Q, D, D)
        diffs = score_differences(scores, mask)  # (Q, D, D): s_qi - s_qj
        losses = F.softplus(-self.sigma * diffs) / math.log(2.0)  # (Q, D, D): in bits
        if self.weighting != "ranknet":
            losses = losses * self._weights(targets, mask, ranks)  # (Q, D, D)
        per_query = losses.masked_fill(~pairs, 0.0).sum(dim=(-2, -1))  # (Q,)
        return masked_mean(per_query, mask.any(dim=-1))


def neural_sort(
    scores: torch.Tensor, mask: torch.Tensor, temperature: float, sinkhorn_iterations: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeuralSort's relaxed permutation matrix, Sinkhorn-scaled, over each query's real candidates.

    Returns ``(P, cells)``, both ``(Q, D, D)``: ``P[q, i, j]`` is the weight of candidate j at
    position i + 1 (positions 1..n_q, n_q real candidates); ``cells`` is True where position i
    exists and candidate j is real, and ``P`` is exactly 0 elsewhere. Scaling runs in log space
    (columns, then rows, ``sinkhorn_iterations`` times), so its rows sum to 1 exactly and small
    temperatures cannot underflow a row to 0.
    """
    num_docs = scores.shape[-1]
    scores = scores.masked_fill(~mask, 0.0)  # (Q, D)
    counts = mask.sum(dim=-1, keepdim=True)  # (Q, 1)
    real_pairs = mask.unsqueeze(2) & mask.unsqueeze(1)  # (Q, D, D)
    spread = (scores.unsqueeze(2) - scores.unsqueeze(1)).abs().masked_fill(~real_pairs, 0.0)
    spread = spread.sum(dim=-1)  # (Q, D): sum_l |s_j - s_l| over real l
    positions = torch.arange(1, num_docs + 1, device=scores.device)  # (D,)
    scaling = (counts + 1 - 2 * positions).to(scores.dtype)  # (Q, D): n_q + 1 - 2i per row i
    logits = scaling.unsqueeze(2) * scores.unsqueeze(1) - spread.unsqueeze(1)  # (Q, D, D)
    cells = (positions <= counts).unsqueeze(2) & mask.unsqueeze(1)  # (Q, D, D)
    log_p = masked_log_softmax(logits / temperature, cells, dim=-1)  # (Q, D, D): rows sum to 1
    for _ in range(sinkhorn_iterations):
        log_p = masked_log_softmax(log_p, cells, dim=-2)  # columns sum to 1
        log_p = masked_log_softmax(log_p, cells, dim=-1)  # rows sum to 1
    return log_p.exp() * cells, cells


class NeuralNDCG(ScoringLossFunction):
    """NeuralNDCG: NDCG computed with a differentiable sort (NeuralSort + Sinkhorn), maximized.

    Formula (``n_q`` real candidates of q, positions ``i = 1..n_q``; ``mean_q`` over queries whose
    ideal DCG is positive)::

        P_q[i, j] = softmax_j( ((n_q + 1 - 2i) * s_qj - sum_l |s_qj - s_ql|) / temperature )
        P_q       <- Sinkhorn(P_q): sinkhorn_iterations x (normalize columns, then rows)
        g_qj      = 2^max(t_qj, 0) - 1          (or max(t_qj, 0) when scale_gains=False)
        d_i       = 1 / log2(1 + i) for i <= k, 0 beyond
        NeuralNDCG_q = sum_i d_i * (P_q g_q)_i / IDCG_q@k
        L         = - mean_q NeuralNDCG_q

    ``P_q`` is NeuralSort's relaxation of the sorting permutation (row i: which candidate sits at
    position i); as ``temperature -> 0`` it tends to the hard sort and NeuralNDCG to NDCG@k.

    Variant: this is the paper's (non-transposed) NeuralNDCG. Its transposed variant
    NeuralNDCG^T computes ``g^T (P^T d)`` (each candidate's expected discount), which is the same
    number ``d^T P g`` for the same matrix: the variants differ only in which marginal of an
    imperfectly scaled ``P`` is exact. Here the rows are (the last step normalizes them), as the
    non-transposed form reads them; with enough iterations the columns sum to 1 too.

    Args:
        temperature: NeuralSort's temperature (smaller is closer to the hard sort, with steeper
            gradients). Default 1, the paper's and allRank's.
        sinkhorn_iterations: column-then-row normalizations (an integer >= 1; allRank stops at a
            tolerance of 1e-6 or after 50, here always this many, so the value does not depend on a
            data-dependent stop).
        k: NDCG@k (positions beyond k get discount 0; the ideal DCG is @k too); ``None`` = all.
        scale_gains: exponential gains ``2^t - 1`` (True) or linear gains ``t``.

    References:
        Pobrotyn and Białobrzeski, "NeuralNDCG: Direct Optimisation of a Ranking Metric via
        Differentiable Relaxation of Sorting", arXiv:2102.07831, 2021. Grover, Wang, Zweig and
        Ermon, "Stochastic Optimization of Sorting Networks via Continuous Relaxations", ICLR 2019.
        Sinkhorn, "A Relationship Between Arbitrary Positive Matrices and Doubly Stochastic
        Matrices", The Annals of Mathematical Statistics 35(2), 1964.

    Inputs:
        Graded relevance labels, tuple order or teacher scores (negative targets count as 0; keep
        ``scale_gains=False`` for large teacher scores, ``2^t`` grows fast).

    Relations:
        Like :class:`ApproxNDCG` a smooth NDCG, but through a relaxed permutation instead of
        sigmoid-smoothed ranks; :class:`LambdaLoss` optimizes NDCG through weighted pairs. Unlike
        ApproxNDCG it skips queries without any gain (NDCG is undefined there, as in allRank)
        instead of counting them as NDCG 0, and its value is ``-NDCG`` (from -1 to 0) instead of
        ``1 - NDCG`` (an offset, which changes no gradient).

    Differs from lightning-ir:
        Not in lightning-ir (it goes beyond the guide). Padded candidates are neither sorted nor
        counted in ``n_q``; a batch without any gain gives 0 with zero gradients.

    Example:
        >>> import torch
        >>> NeuralNDCG()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(-0.9560)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def __init__(
        self,
        temperature: float = 1.0,
        sinkhorn_iterations: int = 50,
        k: int | None = None,
        scale_gains: bool = True,
    ) -> None:
        self.temperature = check_temperature(temperature)
        self.sinkhorn_iterations = check_count(sinkhorn_iterations, "sinkhorn_iterations")
        self.k = check_cutoff(k)
        self.scale_gains = check_flag(scale_gains, "scale_gains")

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        gains = gains_of(targets, mask, self.scale_gains)  # (Q, D)
        discounts = position_discounts(scores.shape[-1], self.k, scores.device)  # (D,)
        idcg = ideal_dcg(gains, discounts)  # (Q,)
        permutation, _ = neural_sort(scores, mask, self.temperature, self.sinkhorn_iterations)
        # a product and a sum, not a matmul: autocast would run a matmul in bf16
        sorted_gains = (permutation * gains.unsqueeze(1)).sum(dim=-1)  # (Q, D): by position
        dcg = (sorted_gains * discounts).sum(dim=-1)  # (Q,)
        ndcg = dcg / idcg.clamp(min=1e-12)  # (Q,)
        return masked_mean(-ndcg, idcg > 0)
