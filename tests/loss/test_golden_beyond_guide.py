"""Golden values of the losses beyond the guide: BCE, pointwise MSE, LambdaLoss, NeuralNDCG, p-ListMLE.

Each oracle is written from the paper's formula in float64 with plain Python (NeuralNDCG: numpy,
its Sinkhorn in linear space where the library works in log space), over the real entries only, so
it shares no code with the library. The cases of ``test_golden`` (ties, padding, all-zero targets,
an all-padding query) plus a few that reach the top-k and sign paths.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest
import torch

from lossbench.loss import (
    BinaryCrossEntropy,
    LambdaLoss,
    ListMLE,
    NeuralNDCG,
    PointwiseMSE,
    PositionAwareListMLE,
    RankNet,
    ScoringLossFunction,
)
from tests.helpers import Lists, assert_matches_oracle, assert_targets_reduce_by_max
from tests.loss.oracles import NEG, SCORING_CASES, lse, mean, per_query_oracle, true_ranking

# --------------------------------------------------------------------------------------------------
# Oracles (float64)
# --------------------------------------------------------------------------------------------------


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def bce_oracle(
    binarize: str = "max", threshold: float = 0.0, temperature: float = 1.0
) -> Callable[[Lists], float]:
    def oracle(lists: Lists) -> float:
        losses = []
        for s, t in lists:
            for score, target in zip(s, t, strict=True):
                label = target > threshold and (binarize == "threshold" or target == max(t))
                x = score / temperature
                losses.append(-log_sigmoid(x) if label else -log_sigmoid(-x))
        return mean(losses)

    return oracle


def mse_oracle(lists: Lists) -> float:
    return mean([(a - b) ** 2 for s, t in lists for a, b in zip(s, t, strict=True)])


def ndcg_gain(target: float, exponential: bool = True) -> float:
    target = max(target, 0.0)
    return 2.0**target - 1.0 if exponential else target


def discount(rank: int, k: int | None = None) -> float:
    """1 / log2(1 + rank), 0 beyond k."""
    return 0.0 if k is not None and rank > k else 1.0 / math.log2(1 + rank)


def ideal_dcg(targets: list[float], k: int | None, exponential: bool = True) -> float:
    gains = sorted((ndcg_gain(t, exponential) for t in targets), reverse=True)
    return sum(g * discount(r, k) for r, g in enumerate(gains, start=1))


def lambdaloss_oracle(
    weighting: str = "ndcg_loss2pp", k: int | None = None, sigma: float = 1.0, mu: float = 10.0
) -> Callable[[Lists], float]:
    """Wang et al. (CIKM 2018): sum over pairs y_i > y_j (at least one in the top k) of
    w_ij * log2(1 + exp(-sigma (s_i - s_j))), ranks by current score (ties by position)."""

    def loss(s: list[float], t: list[float]) -> float:
        n = len(s)
        by_score = sorted(range(n), key=lambda i: (-s[i], i))
        rank = {doc: position for position, doc in enumerate(by_score, start=1)}
        max_dcg = max(ideal_dcg(t, k), 1e-12)
        big_g = [ndcg_gain(v) / max_dcg for v in t]
        total = 0.0
        for i in range(n):
            for j in range(n):
                if not t[i] > t[j]:
                    continue
                if k is not None and min(rank[i], rank[j]) > k:
                    continue
                gap = abs(rank[i] - rank[j])
                delta = abs(1 / math.log2(1 + gap) - 1 / math.log2(2 + gap))
                rho = abs(discount(rank[i], k) - discount(rank[j], k))
                weight = {
                    "ranknet": 1.0,
                    "lambdarank": rho * abs(big_g[i] - big_g[j]),
                    "ndcg_loss2": delta * abs(big_g[i] - big_g[j]),
                    "ndcg_loss2pp": (rho + mu * delta) * abs(big_g[i] - big_g[j]),
                }[weighting]
                total += weight * -log_sigmoid(sigma * (s[i] - s[j])) / math.log(2)
        return total

    return per_query_oracle(loss)


def neural_sort_matrix(s: list[float], temperature: float, iterations: int) -> np.ndarray:
    """Grover et al.'s P[i, j] = softmax_j(((n + 1 - 2i) s_j - sum_l |s_j - s_l|) / tau), then
    Sinkhorn: `iterations` x (columns, then rows), in linear space."""
    scores = np.array(s, dtype=np.float64)
    n = len(s)
    spread = np.abs(scores[:, None] - scores[None, :]).sum(axis=1)  # (n,)
    logits = np.stack([((n + 1 - 2 * i) * scores - spread) / temperature for i in range(1, n + 1)])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True)
    for _ in range(iterations):
        p = p / p.sum(axis=0, keepdims=True)
        p = p / p.sum(axis=1, keepdims=True)
    return p


def neural_ndcg_oracle(
    temperature: float = 1.0, iterations: int = 50, k: int | None = None, scale_gains: bool = True
) -> Callable[[Lists], float]:
    """Pobrotyn and Bialobrzeski (2021): -mean over queries with a positive ideal DCG@k."""

    def oracle(lists: Lists) -> float:
        values = []
        for s, t in lists:
            idcg = ideal_dcg(t, k, scale_gains)
            if not s or idcg <= 0:
                continue
            p = neural_sort_matrix(s, temperature, iterations)
            gains = np.array([ndcg_gain(v, scale_gains) for v in t])
            sorted_gains = p @ gains
            dcg = sum(sorted_gains[i - 1] * discount(i, k) for i in range(1, len(s) + 1))
            values.append(-dcg / idcg)
        return mean(values)

    return oracle


def _plistmle_loss(s: list[float], t: list[float]) -> float:
    """Lan et al. (UAI 2014) with alpha(i) = 2^(n-i) - 1, normalized to sum 1."""
    order = true_ranking(t)
    n = len(order)
    alphas = [2.0 ** (n - i) - 1.0 for i in range(1, n + 1)]
    norm = sum(alphas)
    if norm == 0:
        return 0.0
    return sum(alphas[i] / norm * (lse([s[k] for k in order[i:]]) - s[order[i]]) for i in range(n))


plistmle_oracle = per_query_oracle(_plistmle_loss)

# --------------------------------------------------------------------------------------------------
# The losses against their oracles
# --------------------------------------------------------------------------------------------------

CASES = {
    **SCORING_CASES,
    "long_graded": (
        [[0.3, 1.9, -0.4, 0.8, 1.1, -1.5, 0.0]],
        [[2.0, 0.0, 3.0, 1.0, 0.0, 2.0, 1.0]],
        [[True] * 7],
    ),
    "teacher_scores_with_negatives": (
        [[0.5, -0.3, 1.2, 0.1], [2.0, -1.0, 0.4, NEG]],
        [[-1.5, 0.7, 2.2, -0.2], [-0.3, -2.0, -1.0, 4.0]],
        [[True] * 4, [True, True, True, False]],
    ),
    "single_candidates": (
        [[0.7, 1e4, NEG], [-0.2, 3.0, 1e4]],
        [[1.0, 2.0, 0.0], [0.0, 1.0, 5.0]],
        [[True, False, False], [True, True, False]],
    ),
}

LOSSES: dict[str, tuple[Callable[[], ScoringLossFunction], Callable[[Lists], float]]] = {
    "bce": (BinaryCrossEntropy, bce_oracle()),
    "bce_threshold": (lambda: BinaryCrossEntropy("threshold"), bce_oracle("threshold")),
    "bce_threshold_1_t05": (
        lambda: BinaryCrossEntropy("threshold", threshold=1.0, temperature=0.5),
        bce_oracle("threshold", 1.0, 0.5),
    ),
    "bce_max_any_value": (
        lambda: BinaryCrossEntropy(threshold=-math.inf),
        bce_oracle("max", -math.inf),
    ),
    "pointwise_mse": (PointwiseMSE, mse_oracle),
    "lambdaloss": (LambdaLoss, lambdaloss_oracle()),
    "lambdaloss_ndcg_loss2": (lambda: LambdaLoss("ndcg_loss2"), lambdaloss_oracle("ndcg_loss2")),
    "lambdaloss_lambdarank": (lambda: LambdaLoss("lambdarank"), lambdaloss_oracle("lambdarank")),
    "lambdaloss_ranknet_sigma2": (
        lambda: LambdaLoss("ranknet", sigma=2.0),
        lambdaloss_oracle("ranknet", sigma=2.0),
    ),
    "lambdaloss_k2_mu3": (lambda: LambdaLoss(k=2, mu=3.0), lambdaloss_oracle(k=2, mu=3.0)),
    "lambdaloss_lambdarank_k3": (
        lambda: LambdaLoss("lambdarank", k=3),
        lambdaloss_oracle("lambdarank", k=3),
    ),
    "lambdaloss_ndcg_loss2_k1": (
        lambda: LambdaLoss("ndcg_loss2", k=1, sigma=0.5),
        lambdaloss_oracle("ndcg_loss2", k=1, sigma=0.5),
    ),
    "neural_ndcg": (NeuralNDCG, neural_ndcg_oracle()),
    "neural_ndcg_t05_k3": (
        lambda: NeuralNDCG(temperature=0.5, k=3),
        neural_ndcg_oracle(0.5, k=3),
    ),
    "neural_ndcg_linear_3_iterations": (
        lambda: NeuralNDCG(sinkhorn_iterations=3, scale_gains=False),
        neural_ndcg_oracle(iterations=3, scale_gains=False),
    ),
    "plistmle": (PositionAwareListMLE, plistmle_oracle),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_matches_float64_oracle(loss_name: str, case: str) -> None:
    factory, oracle = LOSSES[loss_name]
    assert_matches_oracle(factory(), oracle, *CASES[case])


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_multi_column_targets_reduce_by_max(loss_name: str) -> None:
    factory, oracle = LOSSES[loss_name]
    assert_targets_reduce_by_max(factory(), oracle)


# --------------------------------------------------------------------------------------------------
# The two-document list, worked out by hand (allRank style), with and without padding
# --------------------------------------------------------------------------------------------------

TWO_SCORES, TWO_TARGETS = [[2.0, 0.0]], [[1.0, 0.0]]
PADDED_SCORES, PADDED_TARGETS = [[2.0, 1e4, 0.0]], [[1.0, 7.0, 0.0]]
PADDED_MASK = [[True, False, True]]
SOFTPLUS_MINUS_2 = math.log1p(math.exp(-2.0))  # log(1 + e^-2) = -log sigmoid(2)
SWAP = 1.0 - 1.0 / math.log2(3.0)  # |1/D(1) - 1/D(2)|: both rho and delta of a 2-list
P_TOP = 1.0 / (1.0 + math.exp(-2.0))  # NeuralSort's weight of the better doc at position 1

TWO_DOCS = {
    # label 1 for the first doc, 0 for the second: (-log sigmoid(2) - log(1 - sigmoid(0))) / 2
    "bce": (BinaryCrossEntropy, (SOFTPLUS_MINUS_2 + math.log(2.0)) / 2),
    "pointwise_mse": (PointwiseMSE, ((2.0 - 1.0) ** 2 + 0.0**2) / 2),
    # G = (1, 0) (maxDCG = 1); one pair, weight (rho + 10 delta) |G_1 - G_2| = 11 * SWAP
    "lambdaloss": (LambdaLoss, 11 * SWAP * SOFTPLUS_MINUS_2 / math.log(2.0)),
    "lambdaloss_ndcg_loss2": (
        lambda: LambdaLoss("ndcg_loss2"),
        SWAP * SOFTPLUS_MINUS_2 / math.log(2.0),
    ),
    "lambdaloss_ranknet": (lambda: LambdaLoss("ranknet"), SOFTPLUS_MINUS_2 / math.log(2.0)),
    # P = [[p, 1-p], [1-p, p]] is already doubly stochastic: NDCG = p + (1 - p) / log2(3)
    "neural_ndcg": (NeuralNDCG, -(P_TOP + (1 - P_TOP) / math.log2(3.0))),
    "neural_ndcg_at_1": (lambda: NeuralNDCG(k=1), -P_TOP),
    # weights (1, 0): the first step alone, log(e^2 + e^0) - 2
    "plistmle": (PositionAwareListMLE, SOFTPLUS_MINUS_2),
}


@pytest.mark.parametrize("loss_name", sorted(TWO_DOCS))
def test_two_documents_by_hand(loss_name: str) -> None:
    factory, expected = TWO_DOCS[loss_name]
    loss = factory()
    plain = loss(torch.tensor(TWO_SCORES), torch.tensor(TWO_TARGETS))
    padded = loss(
        torch.tensor(PADDED_SCORES), torch.tensor(PADDED_TARGETS), torch.tensor(PADDED_MASK)
    )
    assert plain.item() == pytest.approx(expected, rel=1e-6)
    assert padded.item() == pytest.approx(expected, rel=1e-6)


def test_neural_ndcg_two_documents_swapped_by_hand() -> None:
    # the better doc scored lower: position 1 holds it with weight 1 - p
    value = NeuralNDCG()(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(-((1 - P_TOP) + P_TOP / math.log2(3.0)), rel=1e-6)


def test_lambdaloss_ranknet_weighting_is_ranknet_in_bits_per_query() -> None:
    # triples: one pair per query, so the per-query sum is the mean over pairs
    scores = torch.tensor([[1.5, -0.5], [0.2, 0.9], [-1.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    ranknet = RankNet(temperature=2.0)(scores, targets)
    lambdaloss = LambdaLoss("ranknet", sigma=2.0)(scores, targets)
    assert lambdaloss.item() == pytest.approx(ranknet.item() / math.log(2.0), rel=1e-6)


def test_lambdaloss_top_k_keeps_pairs_with_one_candidate_in_the_top() -> None:
    # ranks by score: doc 0 (1), doc 1 (2), doc 2 (3). With k=1 the pair (2 over 1), both below
    # the top 1, is dropped; (2 over 0) stays though doc 2 is ranked 3rd.
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    targets = torch.tensor([[0.0, 0.0, 1.0]])
    value = LambdaLoss("ranknet", k=1)(scores, targets)
    assert value.item() == pytest.approx(math.log1p(math.exp(2.0)) / math.log(2.0), rel=1e-6)
    # lambdarank: rho = |1/D_1(3) - 1/D_1(1)| = 1, |G_2 - G_0| = 1 / maxDCG@1 = 1
    weighted = LambdaLoss("lambdarank", k=1)(scores, targets)
    assert weighted.item() == pytest.approx(value.item(), rel=1e-6)


def test_lambdaloss_ndcg_loss2_bounds_the_ndcg_cost() -> None:
    """The paper's motivation: NDCG-Loss2 is an upper bound of 1 - NDCG (sigma = 1)."""
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 8)
        s = [rng.gauss(0.0, 2.0) for _ in range(n)]
        t = [float(rng.randint(0, 3)) for _ in range(n)]
        idcg = ideal_dcg(t, None)
        if idcg == 0:
            continue
        order = sorted(range(n), key=lambda i: (-s[i], i))
        dcg = sum(ndcg_gain(t[d]) * discount(r) for r, d in enumerate(order, start=1))
        value = LambdaLoss("ndcg_loss2")(torch.tensor([s]), torch.tensor([t])).item()
        assert value >= 1.0 - dcg / idcg - 1e-6


def test_neural_ndcg_tends_to_ndcg_at_low_temperature() -> None:
    scores = torch.tensor([[0.3, 1.9, -0.4, 0.8, 1.1]])
    targets = torch.tensor([[2.0, 0.0, 3.0, 1.0, 0.0]])
    order = torch.argsort(scores[0], descending=True).tolist()
    t = targets[0].tolist()
    ndcg = sum(ndcg_gain(t[d]) * discount(r) for r, d in enumerate(order, start=1))
    ndcg /= ideal_dcg(t, None)
    value = NeuralNDCG(temperature=1e-3)(scores, targets)
    assert value.item() == pytest.approx(-ndcg, abs=1e-4)


def test_neural_ndcg_relaxed_permutation_is_doubly_stochastic_on_real_entries() -> None:
    from lossbench.loss.metric_driven import neural_sort

    scores = torch.tensor([[0.3, 1e4, -0.4, 0.8], [1.0, -2.0, NEG, NEG]])
    mask = torch.tensor([[True, False, True, True], [True, True, False, False]])
    permutation, cells = neural_sort(scores, mask, temperature=1.0, sinkhorn_iterations=50)
    assert torch.equal(permutation[~cells], torch.zeros_like(permutation[~cells]))
    rows = permutation.sum(dim=-1)  # (Q, D): 1 at positions 1..n_q, 0 beyond
    columns = permutation.sum(dim=-2)  # (Q, D): 1 at real candidates, 0 at padding
    torch.testing.assert_close(rows, torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]))
    torch.testing.assert_close(columns, mask.float(), atol=1e-5, rtol=0)


def test_plistmle_weighs_the_top_position_more_than_listmle() -> None:
    # three candidates in the right order: weights (3, 1, 0) / 4 instead of ListMLE's (1, 1, 1)
    a, b, c = 1.0, 0.5, -1.0
    scores, targets = torch.tensor([[a, b, c]]), torch.tensor([[2.0, 1.0, 0.0]])
    first = lse([a, b, c]) - a
    second = lse([b, c]) - b
    assert PositionAwareListMLE()(scores, targets).item() == pytest.approx(
        0.75 * first + 0.25 * second, rel=1e-6
    )
    assert ListMLE()(scores, targets).item() == pytest.approx(first + second, rel=1e-6)


def test_plistmle_long_lists_stay_finite() -> None:
    # 2^(n-1) - 1 overflows float32 from n = 129 on; the normalized weights do not
    num_docs = 300
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(2, num_docs, generator=generator).requires_grad_(True)
    targets = torch.randn(2, num_docs, generator=generator)
    value = PositionAwareListMLE()(scores, targets)
    value.backward()
    assert torch.isfinite(value) and scores.grad is not None and torch.isfinite(scores.grad).all()
    # a weighted mean of ListMLE's (non-negative) terms is below their sum
    assert 0.0 < value.item() < ListMLE()(scores.detach(), targets).item()


def test_bce_labels_by_binarization() -> None:
    # tuple order with two negatives: "max" labels the positive only; "threshold" would label
    # the first negative (target 1 > 0) positive too
    scores = torch.zeros(1, 3)
    targets = torch.tensor([[2.0, 1.0, 0.0]])
    log2 = math.log(2.0)  # the BCE of a zero score, whatever the label
    assert BinaryCrossEntropy()(scores, targets).item() == pytest.approx(log2, rel=1e-6)
    scores = torch.tensor([[3.0, 3.0, 3.0]])
    pos, neg = math.log1p(math.exp(-3.0)), math.log1p(math.exp(3.0))
    assert BinaryCrossEntropy()(scores, targets).item() == pytest.approx(
        (pos + 2 * neg) / 3, rel=1e-6
    )
    assert BinaryCrossEntropy("threshold")(scores, targets).item() == pytest.approx(
        (2 * pos + neg) / 3, rel=1e-6
    )
    # tied maxima are all positive; an all-zero list has no positive (with threshold 0)
    tied = BinaryCrossEntropy()(scores, torch.tensor([[1.0, 1.0, 0.0]]))
    assert tied.item() == pytest.approx((2 * pos + neg) / 3, rel=1e-6)
    none = BinaryCrossEntropy()(scores, torch.zeros(1, 3))
    assert none.item() == pytest.approx(neg, rel=1e-6)


def test_pointwise_losses_learn_from_a_single_candidate() -> None:
    for loss in (BinaryCrossEntropy(), PointwiseMSE()):
        scores = torch.tensor([[0.5]], requires_grad=True)
        loss(scores, torch.tensor([[1.0]])).backward()
        assert scores.grad is not None and scores.grad.item() != 0.0
