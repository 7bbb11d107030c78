"""Golden values: every loss against a value worked out by hand or by an independent float64 oracle.

The oracles (:mod:`tests.loss.oracles`) are written from the formulas in the loss docstrings (each
from its paper) with plain Python loops over the real entries only (no masks, no torch), so they
share no code with the library.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from lossbench.loss import (
    ApproxMRR,
    ApproxNDCG,
    ApproxRankMSE,
    ConstantMarginMSE,
    FLOPSRegularization,
    InBatchCrossEntropy,
    InfoNCE,
    KLDivergence,
    L1Regularization,
    L2Regularization,
    ListMLE,
    ListNet,
    PearsonCorrelation,
    RankNet,
    ScoreBasedInBatchCrossEntropy,
    ScoringLossFunction,
    SupervisedMarginMSE,
)
from tests.helpers import Lists, assert_matches_oracle, assert_targets_reduce_by_max
from tests.loss.oracles import (
    SCORING_CASES,
    approx_mrr_oracle,
    approx_ndcg_oracle,
    approx_rank_mse_oracle,
    constant_margin_oracle,
    infonce_oracle,
    kl_oracle,
    listmle_oracle,
    listnet_oracle,
    lse,
    mean,
    pearson_oracle,
    ranknet_oracle,
    supervised_margin_oracle,
)

SCORING_LOSSES: dict[str, tuple[Callable[[], ScoringLossFunction], Callable[[Lists], float]]] = {
    "ranknet": (RankNet, ranknet_oracle()),
    "ranknet_t3": (lambda: RankNet(temperature=3.0), ranknet_oracle(3.0)),
    "constant_margin_mse": (ConstantMarginMSE, constant_margin_oracle(1.0)),
    "constant_margin_mse_int": (lambda: ConstantMarginMSE(margin=2), constant_margin_oracle(2.0)),
    "supervised_margin_mse": (SupervisedMarginMSE, supervised_margin_oracle),
    "kl_divergence": (KLDivergence, kl_oracle()),
    "kl_divergence_t2": (lambda: KLDivergence(temperature=2.0), kl_oracle(2.0)),
    "infonce": (InfoNCE, infonce_oracle()),
    "infonce_t05": (lambda: InfoNCE(temperature=0.5), infonce_oracle(0.5)),
    "pearson": (PearsonCorrelation, pearson_oracle),
    "listnet": (ListNet, listnet_oracle()),
    "listnet_t2": (lambda: ListNet(temperature=2.0), listnet_oracle(2.0)),
    "listmle": (ListMLE, listmle_oracle),
    "approx_ndcg": (ApproxNDCG, approx_ndcg_oracle()),
    "approx_ndcg_linear": (
        lambda: ApproxNDCG(temperature=0.5, scale_gains=False),
        approx_ndcg_oracle(0.5, scale_gains=False),
    ),
    "approx_mrr": (ApproxMRR, approx_mrr_oracle()),
    "approx_mrr_t2": (lambda: ApproxMRR(temperature=2.0), approx_mrr_oracle(2.0)),
    "approx_rank_mse": (ApproxRankMSE, approx_rank_mse_oracle()),
    "approx_rank_mse_log2": (
        lambda: ApproxRankMSE(discount="log2"),
        approx_rank_mse_oracle(1.0, "log2"),
    ),
    "approx_rank_mse_reciprocal": (
        lambda: ApproxRankMSE(temperature=0.5, discount="reciprocal"),
        approx_rank_mse_oracle(0.5, "reciprocal"),
    ),
}


@pytest.mark.parametrize("case", sorted(SCORING_CASES))
@pytest.mark.parametrize("loss_name", sorted(SCORING_LOSSES))
def test_scoring_loss_matches_float64_oracle(loss_name: str, case: str) -> None:
    factory, oracle = SCORING_LOSSES[loss_name]
    assert_matches_oracle(factory(), oracle, *SCORING_CASES[case])


@pytest.mark.parametrize("loss_name", sorted(SCORING_LOSSES))
def test_multi_column_targets_reduce_by_max(loss_name: str) -> None:
    factory, oracle = SCORING_LOSSES[loss_name]
    assert_targets_reduce_by_max(factory(), oracle)


# Hand-worked values ------------------------------------------------------------------------------


def test_ranknet_two_docs_by_hand() -> None:
    value = RankNet()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_ranknet_padding_by_hand() -> None:
    mask = torch.tensor([[True, True, False]])
    value = RankNet()(torch.tensor([[2.0, 0.0, -1e4]]), torch.tensor([[1.0, 0.0, 0.0]]), mask)
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_constant_margin_mse_by_hand() -> None:
    value = ConstantMarginMSE(margin=1)(torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(4.0)


def test_supervised_margin_mse_by_hand() -> None:
    # pairs (0,1): (3-0)-(2-0) = 1; (0,2): (3-1)-(2-1) = 1; (2,1): (1-0)-(1-0) = 0 -> mean 2/3
    scores, targets = torch.tensor([[3.0, 0.0, 1.0]]), torch.tensor([[2.0, 0.0, 1.0]])
    assert SupervisedMarginMSE()(scores, targets).item() == pytest.approx(2.0 / 3.0)


def test_kl_divergence_by_hand() -> None:
    p = math.e / (1 + math.e)
    expected = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    value = KLDivergence()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_kl_divergence_zero_when_student_equals_teacher() -> None:
    scores = torch.tensor([[0.3, 1.4, -2.0]])
    assert KLDivergence()(scores, scores.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_infonce_first_of_tied_targets_is_the_positive() -> None:
    value = InfoNCE()(torch.tensor([[0.0, 2.0, 1.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
    assert value.item() == pytest.approx(math.log(1 + math.exp(2) + math.exp(1)), rel=1e-6)


def test_pearson_by_hand() -> None:
    anti = PearsonCorrelation()(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]))
    linear = PearsonCorrelation()(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 6.0]]))
    constant = PearsonCorrelation()(
        torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 1.0, 1.0]])
    )
    assert anti.item() == pytest.approx(2.0)
    assert linear.item() == pytest.approx(0.0, abs=1e-6)
    assert constant.item() == pytest.approx(1.0)


def test_listnet_uniform_by_hand() -> None:
    assert ListNet()(torch.zeros(1, 2), torch.zeros(1, 2)).item() == pytest.approx(math.log(2))


def test_listmle_by_hand() -> None:
    two = ListMLE()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert two.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    # targets [0, 2, 1] -> order (1, 2, 0): [lse(a,b,c) - b] + [lse(a,c) - c] + 0
    a, b, c = 0.5, 1.0, -1.0
    three = ListMLE()(torch.tensor([[a, b, c]]), torch.tensor([[0.0, 2.0, 1.0]]))
    expected = (math.log(math.exp(a) + math.exp(b) + math.exp(c)) - b) + (
        math.log(math.exp(a) + math.exp(c)) - c
    )
    assert three.item() == pytest.approx(expected, rel=1e-6)


def test_listmle_ties_are_broken_by_position() -> None:
    # tied targets: the earlier candidate is ranked first -> [lse(0, 3) - 0]
    value = ListMLE()(torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 1.0]]))
    assert value.item() == pytest.approx(math.log(1 + math.exp(3)), rel=1e-6)


def test_approx_ndcg_by_hand() -> None:
    value = ApproxNDCG()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(1 - 1 / math.log2(2.5), rel=1e-6)


def test_approx_ndcg_all_zero_targets_is_one_with_zero_gradient() -> None:
    scores = torch.tensor([[0.5, -0.2, 1.0]], requires_grad=True)
    value = ApproxNDCG()(scores, torch.zeros(1, 3))
    value.backward()
    assert value.item() == pytest.approx(1.0)
    assert scores.grad is not None and torch.equal(scores.grad, torch.zeros(1, 3))


def test_approx_mrr_by_hand() -> None:
    value = ApproxMRR()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(1 - 1 / 1.5, rel=1e-6)


def test_approx_rank_mse_by_hand_with_ties() -> None:
    # both smooth ranks are 1.5; true ranks 1, 2 (tie broken by position) -> mean 0.25
    value = ApproxRankMSE()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    assert value.item() == pytest.approx(0.25)
    weighted = ApproxRankMSE(discount="reciprocal")(
        torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    )
    assert weighted.item() == pytest.approx((0.25 + 0.25 / 2) / 2)


def test_approx_rank_mse_ties_by_position_beyond_16_docs() -> None:
    num_docs = 40
    scores = torch.linspace(1.0, -1.0, num_docs).unsqueeze(0)
    targets = torch.zeros(1, num_docs)
    value = ApproxRankMSE()(scores, targets)
    expected = approx_rank_mse_oracle()([(scores[0].tolist(), targets[0].tolist())])
    assert value.item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------------------------------
# In-batch losses
# --------------------------------------------------------------------------------------------------


def in_batch_oracle(
    scores: list[list[float]],
    mask: list[list[bool]],
    pos: str,
    neg: str,
    temperature: float = 1.0,
) -> float:
    num_queries, num_docs = len(mask), len(mask[0])
    real = [mask[c // num_docs][c % num_docs] for c in range(num_queries * num_docs)]
    losses = []
    for q in range(num_queries):
        if not mask[q][0]:
            continue
        own = list(range(q * num_docs, (q + 1) * num_docs))
        positives = own if pos == "all" else own[:1]
        if neg == "all":
            negatives = [c for c in range(len(real)) if c not in own]
        elif neg == "first":
            negatives = [c for c in range(len(real)) if c % num_docs == 0 and c not in own]
        else:
            negatives = [c for c in range(len(real)) if c != q * num_docs]
        candidates = [c for c in positives + negatives if real[c]]
        logits = [scores[q][c] / temperature for c in candidates]
        losses.append(lse(logits) - logits[0])
    return mean(losses)


IN_BATCH_SCORES = [
    [2.0, 0.1, -0.5, 0.0, 0.4, 0.2],
    [0.4, -1.0, 1.1, 0.0, -0.7, -0.2],
    [0.0, 0.8, -0.3, 0.0, 1.3, 2.2],
]  # Q=3, D=2; column 3 (query 1's second doc) is padded and set to 1e4 in the test
IN_BATCH_MASK = [[True, True], [True, False], [True, True]]


@pytest.mark.parametrize(
    ("pos", "neg"),
    [
        ("all", "all"),
        ("all", "first"),
        ("first", "all"),
        ("first", "first"),
        ("first", "all_and_non_first"),
    ],
)
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_in_batch_cross_entropy_matches_oracle(pos: str, neg: str, temperature: float) -> None:
    scores = [row[:] for row in IN_BATCH_SCORES]
    for row in scores:
        row[3] = 1e4  # query 1's padded doc: huge in EVERY row, must be out of every softmax
    loss = InBatchCrossEntropy(pos, neg, temperature=temperature)  # type: ignore[arg-type]
    value = loss(torch.tensor(scores), mask=torch.tensor(IN_BATCH_MASK))
    expected = in_batch_oracle(scores, IN_BATCH_MASK, pos, neg, temperature)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_in_batch_cross_entropy_by_hand() -> None:
    scores = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])  # Q=2, D=2
    # pos first, neg first: each query sees its positive (2) and the other's first doc (0)
    value = InBatchCrossEntropy("first", "first")(scores)
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    # default (all, all): every doc of the batch competes: log(e^2 + 3) - 2
    assert InBatchCrossEntropy()(scores).item() == pytest.approx(
        math.log(math.exp(2) + 3) - 2, rel=1e-6
    )


def test_in_batch_all_padded_query_is_skipped() -> None:
    scores = torch.tensor([[2.0, 0.0, 1e4, 1e4], [1e4, 1e4, 1e4, 1e4]])
    mask = torch.tensor([[True, True], [False, False]])
    value = InBatchCrossEntropy()(scores, mask=mask)
    assert value.item() == pytest.approx(math.log(math.exp(2) + 1) - 2, rel=1e-6)


def test_in_batch_max_num_neg_samples_keeps_that_many() -> None:
    torch.manual_seed(0)
    num_queries, num_docs = 3, 4
    scores = torch.zeros(num_queries, num_queries * num_docs)
    for q in range(num_queries):
        scores[q, q * num_docs] = 1.0  # positives 1, every negative 0: any subset gives one value
    for k in (1, 3, 8, 100):
        loss = InBatchCrossEntropy("first", "all", max_num_neg_samples=k)
        kept = min(k, (num_queries - 1) * num_docs)
        assert loss(scores).item() == pytest.approx(math.log(math.e + kept) - 1.0, rel=1e-6)


def score_based_oracle(
    scores: list[list[float]],
    targets: list[list[float]],
    mask: list[list[bool]],
    min_target_diff: float,
    temperature: float = 1.0,
) -> float:
    num_queries, num_docs = len(mask), len(mask[0])
    losses = []
    for q in range(num_queries):
        real_docs = [d for d in range(num_docs) if mask[q][d]]
        if not real_docs:
            continue
        best_target = max(targets[q][d] for d in real_docs)
        best = next(d for d in real_docs if targets[q][d] == best_target)
        negatives = [
            q * num_docs + d for d in real_docs if best_target - targets[q][d] >= min_target_diff
        ]
        for other in range(num_queries):
            if other != q:
                negatives += [other * num_docs + d for d in range(num_docs) if mask[other][d]]
        logits = [scores[q][c] / temperature for c in [q * num_docs + best, *negatives]]
        losses.append(lse(logits) - logits[0])
    return mean(losses)


@pytest.mark.parametrize("min_target_diff", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_score_based_in_batch_matches_oracle(min_target_diff: float, temperature: float) -> None:
    scores = [
        [0.3, 1.2, -0.7, 0.5, 0.8, 0.0, 0.0, 0.0, 0.0],
        [1.0, 0.2, 0.4, -0.3, 0.9, 0.0, 0.0, 0.0, 0.0],
        [0.6, -0.1, 0.3, 0.2, 0.7, 0.0, 0.0, 0.0, 0.0],
    ]  # Q=3, D=3
    targets = [[1.0, 3.0, 3.0], [2.0, 0.5, 99.0], [0.0, 0.0, 0.0]]  # ties, padding, all zero
    mask = [[True, True, True], [True, True, False], [False, False, False]]
    for row in scores:  # padded columns (5, 6, 7, 8) huge in every row
        for col in (5, 6, 7, 8):
            row[col] = 1e4
    loss = ScoreBasedInBatchCrossEntropy(min_target_diff, temperature=temperature)
    value = loss(torch.tensor(scores), torch.tensor(targets), torch.tensor(mask))
    expected = score_based_oracle(scores, targets, mask, min_target_diff, temperature)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_score_based_in_batch_by_hand() -> None:
    scores = torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([[0.0, 5.0], [5.0, 5.0]])
    # q0: positive doc 1, negatives its doc 0 and both docs of q1: log(e^2 + 3) - 2
    # q1: positive doc 0 (first on ties), its doc 1 is too close; negatives q0's docs: log 3
    expected = ((math.log(math.exp(2) + 3) - 2) + math.log(3)) / 2
    assert ScoreBasedInBatchCrossEntropy(1.0)(scores, targets).item() == pytest.approx(
        expected, rel=1e-6
    )


# --------------------------------------------------------------------------------------------------
# Regularization
# --------------------------------------------------------------------------------------------------

QUERY_EMB = [[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]]
DOC_EMB = [[0.0, 0.0, 0.0], [2.0, 1.0, -1.0], [0.0, 4.0, 0.0]]


def l1_oracle(vectors: list[list[float]]) -> float:
    return mean([sum(abs(v) for v in row) for row in vectors])


def l2_oracle(vectors: list[list[float]]) -> float:
    return mean([math.sqrt(sum(v * v for v in row)) for row in vectors])


def flops_oracle(vectors: list[list[float]]) -> float:
    dims = len(vectors[0])
    return sum(mean([abs(row[k]) for row in vectors]) ** 2 for k in range(dims))


@pytest.mark.parametrize(
    ("cls", "oracle"),
    [
        (L1Regularization, l1_oracle),
        (L2Regularization, l2_oracle),
        (FLOPSRegularization, flops_oracle),
    ],
)
def test_regularization_matches_oracle(
    cls: type, oracle: Callable[[list[list[float]]], float]
) -> None:
    loss = cls(query_weight=0.3, doc_weight=2)
    value = loss(torch.tensor(QUERY_EMB), torch.tensor(DOC_EMB))
    expected = 0.3 * oracle(QUERY_EMB) + 2.0 * oracle(DOC_EMB)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert isinstance(loss.query_weight, float) and isinstance(loss.doc_weight, float)


def test_regularization_by_hand() -> None:
    q = torch.tensor([[3.0, -4.0]])
    zeros = torch.zeros(1, 2)
    assert L1Regularization(1.0, 0.0)(q, zeros).item() == pytest.approx(7.0)
    assert L2Regularization(1.0, 0.0)(q, zeros).item() == pytest.approx(5.0)
    assert FLOPSRegularization(1.0, 0.0)(q, zeros).item() == pytest.approx(25.0)
    # FLOPS squares the per-dimension mean over the batch: (1/2)^2 + (1/2)^2
    spread = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert FLOPSRegularization(0.0, 1.0)(zeros, spread).item() == pytest.approx(0.5)


def test_regularization_weights_can_be_changed_by_a_scheduler() -> None:
    loss = FLOPSRegularization(query_weight=1.0, doc_weight=1.0)
    q = torch.tensor([[1.0, 1.0]])
    before = loss(q, q).item()
    loss.query_weight = 0.0
    assert loss(q, q).item() == pytest.approx(before / 2)
