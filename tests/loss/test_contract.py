"""The loss contract, checked for every registered loss (and a few configurations of each).

Finite values and gradients, padding and permutation invariance, float32 under bf16 autocast,
zero gradients when there is nothing to learn, and the registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from lossbench.loss import (
    LOSSES,
    ApproxMRR,
    ApproxNDCG,
    ApproxRankMSE,
    BinaryCrossEntropy,
    ConstantMarginMSE,
    FLOPSRegularization,
    InBatchCrossEntropy,
    InBatchLossFunction,
    InfoNCE,
    KLDivergence,
    L1Regularization,
    L2Regularization,
    LambdaLoss,
    ListNet,
    LossFunction,
    Needs,
    NeuralNDCG,
    PearsonCorrelation,
    PointwiseMSE,
    RankNet,
    RegularizationLossFunction,
    ScoreBasedInBatchCrossEntropy,
    ScoringLossFunction,
    SupervisedMarginMSE,
    loss_class,
)

EXPECTED_NAMES = {
    "ranknet",
    "constant_margin_mse",
    "supervised_margin_mse",
    "kl_divergence",
    "infonce",
    "pearson",
    "listnet",
    "listmle",
    "plistmle",
    "approx_ndcg",
    "approx_mrr",
    "approx_rank_mse",
    "lambdaloss",
    "neural_ndcg",
    "bce",
    "pointwise_mse",
    "in_batch_ce",
    "score_based_in_batch_ce",
    "flops",
    "l1",
    "l2",
}

# Every registered loss with its defaults, plus configurations that take other code paths.
CONFIGS: dict[str, Callable[[], LossFunction]] = {name: cls for name, cls in LOSSES.items()}
CONFIGS.update(
    {
        "ranknet_t2": lambda: RankNet(temperature=2.0),
        "kl_divergence_t05": lambda: KLDivergence(temperature=0.5),
        "infonce_t005": lambda: InfoNCE(temperature=0.05),
        "listnet_t2": lambda: ListNet(temperature=2.0),
        "approx_ndcg_linear": lambda: ApproxNDCG(temperature=0.5, scale_gains=False),
        "approx_rank_mse_log2": lambda: ApproxRankMSE(discount="log2"),
        "approx_rank_mse_reciprocal": lambda: ApproxRankMSE(discount="reciprocal"),
        "in_batch_ce_first_all": lambda: InBatchCrossEntropy("first", "all"),
        "in_batch_ce_first_first": lambda: InBatchCrossEntropy("first", "first"),
        "in_batch_ce_all_first": lambda: InBatchCrossEntropy("all", "first"),
        "in_batch_ce_non_first": lambda: InBatchCrossEntropy("first", "all_and_non_first"),
        "in_batch_ce_t005": lambda: InBatchCrossEntropy(temperature=0.05),
        "score_based_in_batch_ce_t05": lambda: ScoreBasedInBatchCrossEntropy(0.5, temperature=0.5),
        "bce_threshold": lambda: BinaryCrossEntropy("threshold", threshold=1.0),
        "bce_t05": lambda: BinaryCrossEntropy(threshold=float("-inf"), temperature=0.5),
        "lambdaloss_ndcg_loss2": lambda: LambdaLoss("ndcg_loss2"),
        "lambdaloss_lambdarank": lambda: LambdaLoss("lambdarank"),
        "lambdaloss_ranknet": lambda: LambdaLoss("ranknet", sigma=2.0),
        "lambdaloss_k2": lambda: LambdaLoss(k=2, mu=5.0),
        "lambdaloss_lambdarank_k2": lambda: LambdaLoss("lambdarank", k=2),
        "lambdaloss_ranknet_k1": lambda: LambdaLoss("ranknet", k=1),
        "neural_ndcg_k2": lambda: NeuralNDCG(k=2),
        "neural_ndcg_linear": lambda: NeuralNDCG(temperature=0.1, scale_gains=False),
        "neural_ndcg_one_iteration": lambda: NeuralNDCG(sinkhorn_iterations=1),
    }
)
NAMES = sorted(CONFIGS)


@dataclass
class Inputs:
    """Inputs of one call. Scoring: (Q, D); in-batch: scores (Q, Q*D), targets/mask (Q, D);
    regularization: ``scores`` are the query embeddings and ``targets`` the doc embeddings."""

    scores: torch.Tensor
    targets: torch.Tensor | None
    mask: torch.Tensor | None = None


def family(loss: LossFunction) -> str:
    if isinstance(loss, ScoringLossFunction):
        return "scoring"
    if isinstance(loss, InBatchLossFunction):
        return "in_batch"
    assert isinstance(loss, RegularizationLossFunction)
    return "regularization"


def call(loss: LossFunction, inputs: Inputs) -> torch.Tensor:
    if isinstance(loss, RegularizationLossFunction):
        assert inputs.targets is not None
        return loss(inputs.scores, inputs.targets)
    if isinstance(loss, InBatchLossFunction):
        return loss(inputs.scores, inputs.targets, inputs.mask)
    assert isinstance(loss, ScoringLossFunction) and inputs.targets is not None
    return loss(inputs.scores, inputs.targets, inputs.mask)


def value_and_grad(loss: LossFunction, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    scores = inputs.scores.detach().clone().requires_grad_(True)
    value = call(loss, Inputs(scores, inputs.targets, inputs.mask))
    value.backward()
    assert scores.grad is not None
    return value.detach(), scores.grad


NUM_QUERIES, NUM_DOCS, DIM = 3, 5, 8


def tie_free_targets(generator: torch.Generator, num_queries: int, num_docs: int) -> torch.Tensor:
    """Distinct graded targets in [0, 3] per query (no ties, so the order is unambiguous)."""
    levels = torch.linspace(0.0, 3.0, num_docs)
    return torch.stack(
        [levels[torch.randperm(num_docs, generator=generator)] for _ in range(num_queries)]
    )


@pytest.fixture(params=NAMES)
def loss(request: pytest.FixtureRequest) -> LossFunction:
    return CONFIGS[request.param]()


@pytest.fixture
def inputs(loss: LossFunction) -> Inputs:
    """Proper, tie-free, unpadded inputs for the loss's family."""
    generator = torch.Generator().manual_seed(0)
    kind = family(loss)
    if kind == "regularization":
        queries = torch.randn(4, DIM, generator=generator).relu()  # sparse-ish, like SPLADE
        docs = torch.randn(6, DIM, generator=generator).relu()
        return Inputs(queries, docs)
    targets = tie_free_targets(generator, NUM_QUERIES, NUM_DOCS)
    if kind == "in_batch":
        scores = torch.randn(NUM_QUERIES, NUM_QUERIES * NUM_DOCS, generator=generator) * 2
        return Inputs(scores, targets, torch.ones(NUM_QUERIES, NUM_DOCS, dtype=torch.bool))
    scores = torch.randn(NUM_QUERIES, NUM_DOCS, generator=generator) * 2
    return Inputs(scores, targets, torch.ones(NUM_QUERIES, NUM_DOCS, dtype=torch.bool))


# --------------------------------------------------------------------------------------------------


def test_value_is_finite_float32_scalar_with_finite_gradients(
    loss: LossFunction, inputs: Inputs
) -> None:
    value, grad = value_and_grad(loss, inputs)
    assert value.dim() == 0 and value.dtype == torch.float32
    assert torch.isfinite(value)
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0  # there is something to learn from these inputs


def test_mask_none_equals_all_true(loss: LossFunction, inputs: Inputs) -> None:
    if family(loss) == "regularization":
        pytest.skip("no mask")
    with_mask = call(loss, inputs)
    without = call(loss, Inputs(inputs.scores, inputs.targets, None))
    torch.testing.assert_close(with_mask, without)


def test_large_scores_stay_finite(loss: LossFunction, inputs: Inputs) -> None:
    big = Inputs(inputs.scores * 1e4, inputs.targets, inputs.mask)
    value, grad = value_and_grad(loss, big)
    assert torch.isfinite(value) and torch.isfinite(grad).all()


def _pad_scoring(inputs: Inputs, positions: list[int]) -> tuple[Inputs, torch.Tensor]:
    """Insert padded candidates at ``positions`` (of the new list); return inputs and real columns."""
    assert inputs.targets is not None
    num_queries, num_docs = inputs.scores.shape
    width = num_docs + len(positions)
    real = torch.ones(width, dtype=torch.bool)
    real[positions] = False
    junk_scores = torch.tensor([1e30, -1e30, float("nan"), 7.0])
    junk_targets = torch.tensor([100.0, -5.0, float("nan"), 3.0])
    scores = junk_scores[torch.arange(num_queries * width) % 4].reshape(num_queries, width)
    targets = junk_targets[torch.arange(num_queries * width) % 4].reshape(num_queries, width)
    scores[:, real] = inputs.scores
    targets[:, real] = inputs.targets
    mask = real.expand(num_queries, width).clone()
    # and a whole query of padding
    scores = torch.cat([scores, torch.full((1, width), 1e30)])
    targets = torch.cat([targets, torch.full((1, width), 50.0)])
    mask = torch.cat([mask, torch.zeros(1, width, dtype=torch.bool)])
    return Inputs(scores, targets, mask), real


def _pad_in_batch(inputs: Inputs, positions: list[int]) -> tuple[Inputs, torch.Tensor]:
    """Insert padded docs at ``positions`` of every block (never 0: the positive) and add an
    all-padding query; return inputs and the real columns of the original queries' rows."""
    assert inputs.targets is not None and 0 not in positions
    num_queries, num_docs = inputs.targets.shape
    width = num_docs + len(positions)
    real_in_block = torch.ones(width, dtype=torch.bool)
    real_in_block[positions] = False
    new_queries = num_queries + 1
    real_in_block_all = real_in_block.repeat(new_queries)  # (new_queries * width,)
    real_in_block_all[num_queries * width :] = False  # the extra query's block is all padding
    junk = torch.tensor([1e30, -1e30, float("nan"), 7.0])
    scores = junk[torch.arange(new_queries * new_queries * width) % 4].reshape(new_queries, -1)
    scores[:num_queries, real_in_block_all] = inputs.scores
    targets = torch.full((new_queries, width), 100.0)
    targets[:num_queries, real_in_block] = inputs.targets
    mask = real_in_block_all.reshape(new_queries, width)
    return Inputs(scores, targets, mask), real_in_block_all


def test_padding_changes_neither_value_nor_gradient(loss: LossFunction, inputs: Inputs) -> None:
    kind = family(loss)
    if kind == "regularization":
        pytest.skip("embeddings have no padding")
    value, grad = value_and_grad(loss, inputs)
    if kind == "scoring":
        padded, real = _pad_scoring(inputs, positions=[1, 4, 7])
        padded_value, padded_grad = value_and_grad(loss, padded)
        real_grad = padded_grad[: inputs.scores.shape[0], real]
    else:
        padded, real = _pad_in_batch(inputs, positions=[2, 5])
        padded_value, padded_grad = value_and_grad(loss, padded)
        real_grad = padded_grad[: inputs.scores.shape[0], real]
        assert torch.equal(padded_grad[:, ~real], torch.zeros_like(padded_grad[:, ~real]))
    torch.testing.assert_close(padded_value, value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(real_grad, grad, rtol=1e-5, atol=1e-7)
    assert torch.isfinite(padded_grad).all()
    assert padded_grad.abs().sum() == pytest.approx(grad.abs().sum().item(), rel=1e-5)


def test_permuting_candidates_permutes_gradients(loss: LossFunction, inputs: Inputs) -> None:
    generator = torch.Generator().manual_seed(1)
    value, grad = value_and_grad(loss, inputs)
    assert inputs.targets is not None
    kind = family(loss)
    if kind == "regularization":
        query_perm = torch.randperm(inputs.scores.shape[0], generator=generator)
        doc_perm = torch.randperm(inputs.targets.shape[0], generator=generator)
        permuted = Inputs(inputs.scores[query_perm], inputs.targets[doc_perm])
        permuted_value, permuted_grad = value_and_grad(loss, permuted)
        expected_grad = grad[query_perm]
    elif kind == "scoring":
        # a different permutation for every query
        perms = torch.stack(
            [torch.randperm(NUM_DOCS, generator=generator) for _ in range(NUM_QUERIES)]
        )
        permuted = Inputs(
            inputs.scores.gather(1, perms), inputs.targets.gather(1, perms), inputs.mask
        )
        permuted_value, permuted_grad = value_and_grad(loss, permuted)
        expected_grad = grad.gather(1, perms)
    else:
        # permute the queries (rows and blocks) and the docs inside every block; InBatchCrossEntropy
        # takes the first doc of a block as the positive, so that one stays in place
        query_perm = torch.randperm(NUM_QUERIES, generator=generator)
        if isinstance(loss, InBatchCrossEntropy):
            doc_perm = torch.cat(
                [
                    torch.zeros(1, dtype=torch.long),
                    1 + torch.randperm(NUM_DOCS - 1, generator=generator),
                ]
            )
        else:
            doc_perm = torch.randperm(NUM_DOCS, generator=generator)
        columns = (query_perm.unsqueeze(1) * NUM_DOCS + doc_perm.unsqueeze(0)).reshape(-1)
        permuted = Inputs(
            inputs.scores[query_perm][:, columns],
            inputs.targets[query_perm][:, doc_perm],
            inputs.mask,
        )
        permuted_value, permuted_grad = value_and_grad(loss, permuted)
        expected_grad = grad[query_perm][:, columns]
    torch.testing.assert_close(permuted_value, value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(permuted_grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_float32_under_bf16_autocast(loss: LossFunction, inputs: Inputs) -> None:
    scores = inputs.scores.to(torch.bfloat16).requires_grad_(True)
    targets = inputs.targets.to(torch.bfloat16) if inputs.targets is not None else None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = call(loss, Inputs(scores, targets, inputs.mask))
    assert value.dtype == torch.float32 and value.dim() == 0
    assert torch.isfinite(value)
    value.backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    reference = call(
        loss,
        Inputs(
            scores.detach().float(), targets.float() if targets is not None else None, inputs.mask
        ),
    )
    torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6)


TIES_TEACH_NOTHING = (
    RankNet,
    ConstantMarginMSE,
    SupervisedMarginMSE,
    PearsonCorrelation,
    LambdaLoss,
)
POINTWISE = (BinaryCrossEntropy, PointwiseMSE)


def _nothing_to_learn(loss: LossFunction, inputs: Inputs) -> list[Inputs]:
    """Inputs with nothing to learn from, for the loss's family."""
    assert inputs.targets is not None
    kind = family(loss)
    if kind == "regularization":
        return [
            Inputs(torch.zeros(4, DIM), torch.zeros(6, DIM)),
            Inputs(torch.zeros(0, DIM), torch.zeros(0, DIM)),
        ]
    num_queries, num_docs = inputs.targets.shape
    huge = inputs.scores * 1e4
    no_real = torch.zeros(num_queries, num_docs, dtype=torch.bool)
    one_real = no_real.clone()
    one_real[:, 0] = True
    cases = [Inputs(huge, inputs.targets, no_real), Inputs(huge, inputs.targets, one_real)]
    if kind == "in_batch":
        return cases[:1]  # with one real doc per query, the other queries' docs are still negatives
    if isinstance(loss, POINTWISE):
        return cases[:1]  # every real candidate is a lesson on its own, alone in its list or not
    if isinstance(loss, TIES_TEACH_NOTHING):
        # all-equal targets: no pair (pairwise), a zero-variance target (Pearson)
        cases.append(Inputs(huge, torch.ones_like(inputs.targets), inputs.mask))
    if isinstance(loss, ApproxNDCG | ApproxMRR | NeuralNDCG):
        # all-zero relevance: no gain to win
        cases.append(Inputs(huge, torch.zeros_like(inputs.targets), inputs.mask))
    return cases


def test_nothing_to_learn_gives_finite_value_and_zero_gradients(
    loss: LossFunction, inputs: Inputs
) -> None:
    for case in _nothing_to_learn(loss, inputs):
        value, grad = value_and_grad(loss, case)
        assert torch.isfinite(value), case
        assert torch.equal(grad, torch.zeros_like(grad)), case


def test_single_query_in_batch_has_no_negatives() -> None:
    scores = torch.tensor([[3.0, -1.0]], requires_grad=True)  # Q=1, D=2
    value = InBatchCrossEntropy("first", "all")(scores)
    value.backward()
    assert (
        value.item() == 0.0
        and scores.grad is not None
        and torch.equal(scores.grad, torch.zeros(1, 2))
    )


def test_in_batch_random_negatives_use_the_global_rng() -> None:
    generator = torch.Generator().manual_seed(3)
    scores = torch.randn(4, 16, generator=generator)
    loss = InBatchCrossEntropy("first", "all", max_num_neg_samples=2)
    torch.manual_seed(7)
    first = loss(scores)
    torch.manual_seed(7)
    assert torch.equal(loss(scores), first)


# --------------------------------------------------------------------------------------------------
# Construction errors and the registry
# --------------------------------------------------------------------------------------------------


# Every argument of every loss, one case per message: the message names the argument and its valid
# values. Keys are "<class>.<argument>[ <variant>]"; a test below checks that every constructor
# argument of every registered loss has at least one case.
POSITIVE = "must be a positive finite number"
NON_NEGATIVE = "must be a finite number >= 0"
BOOLEAN = "must be true or false"
EVERY_POSITION = "must be None (every position) or an integer >= 1"
EVERY_NEGATIVE = "must be None (every negative) or an integer >= 1"
MARGIN_TYPE = "must be 'absolute' or 'relative'"
ArgumentError = tuple[Callable[[], LossFunction], str]


def wrong(
    cls: type[LossFunction], argument: str, value: object, must: str, variant: str = ""
) -> tuple[str, ArgumentError]:
    """The case `cls(argument=value)`, whose whole message is "<argument> <must>, got <value!r>"."""
    key = f"{cls.__name__}.{argument}" + (f" {variant}" if variant else "")
    message = "^" + re.escape(f"{argument} {must}, got {value!r}") + "$"
    return key, (lambda: cls(**{argument: value}), message)


ARGUMENT_ERRORS: dict[str, ArgumentError] = dict(
    [
        # the temperatures: 0 divides by zero, a negative one inverts the objective
        wrong(RankNet, "temperature", -1.0, POSITIVE),
        wrong(RankNet, "temperature", 0, POSITIVE, "zero"),
        wrong(RankNet, "temperature", "0.5", POSITIVE, "text"),
        wrong(KLDivergence, "temperature", 0.0, POSITIVE),
        wrong(InfoNCE, "temperature", float("inf"), POSITIVE),
        wrong(ListNet, "temperature", -0.1, POSITIVE),
        wrong(ApproxNDCG, "temperature", -1.0, POSITIVE),
        wrong(ApproxMRR, "temperature", 0.0, POSITIVE),
        wrong(ApproxRankMSE, "temperature", True, POSITIVE),
        wrong(InBatchCrossEntropy, "temperature", 0.0, POSITIVE),
        wrong(ScoreBasedInBatchCrossEntropy, "temperature", float("nan"), POSITIVE),
        wrong(BinaryCrossEntropy, "temperature", 0.0, POSITIVE),
        wrong(NeuralNDCG, "temperature", -1.0, POSITIVE),
        # the other arguments
        wrong(ConstantMarginMSE, "margin", -1.0, POSITIVE),
        wrong(ConstantMarginMSE, "margin", 0, POSITIVE, "zero"),
        wrong(ApproxNDCG, "scale_gains", "false", BOOLEAN),
        wrong(ApproxRankMSE, "discount", "sqrt", "must be None, 'log2' or 'reciprocal'"),
        wrong(InBatchCrossEntropy, "max_num_neg_samples", 0, EVERY_NEGATIVE),
        wrong(InBatchCrossEntropy, "max_num_neg_samples", 2.5, EVERY_NEGATIVE, "float"),
        wrong(InBatchCrossEntropy, "gather_across_devices", "yes", BOOLEAN),
        wrong(InBatchCrossEntropy, "false_negative_margin", -0.1, NON_NEGATIVE),
        wrong(InBatchCrossEntropy, "false_negative_margin", "high", NON_NEGATIVE, "text"),
        wrong(InBatchCrossEntropy, "false_negative_margin_type", "percent", MARGIN_TYPE),
        wrong(ScoreBasedInBatchCrossEntropy, "false_negative_margin", float("inf"), NON_NEGATIVE),
        wrong(ScoreBasedInBatchCrossEntropy, "false_negative_margin_type", "abs", MARGIN_TYPE),
        wrong(ScoreBasedInBatchCrossEntropy, "min_target_diff", -1.0, NON_NEGATIVE),
        wrong(ScoreBasedInBatchCrossEntropy, "max_num_neg_samples", -1, EVERY_NEGATIVE),
        wrong(ScoreBasedInBatchCrossEntropy, "gather_across_devices", 1, BOOLEAN),
        wrong(FLOPSRegularization, "query_weight", -1e-4, NON_NEGATIVE),
        wrong(FLOPSRegularization, "doc_weight", float("inf"), NON_NEGATIVE),
        wrong(L1Regularization, "query_weight", "1e-4", NON_NEGATIVE),
        wrong(L1Regularization, "doc_weight", -1, NON_NEGATIVE),
        wrong(L2Regularization, "query_weight", float("nan"), NON_NEGATIVE),
        wrong(L2Regularization, "doc_weight", -0.5, NON_NEGATIVE),
        wrong(BinaryCrossEntropy, "binarize", "top", "must be 'max' or 'threshold'"),
        wrong(BinaryCrossEntropy, "threshold", "0.5", "must be a number"),
        wrong(BinaryCrossEntropy, "threshold", float("nan"), "must be a number, not NaN", "nan"),
        wrong(LambdaLoss, "k", 0, EVERY_POSITION),
        wrong(LambdaLoss, "k", 2.5, EVERY_POSITION, "float"),
        wrong(LambdaLoss, "sigma", -1.0, POSITIVE),
        wrong(LambdaLoss, "sigma", float("inf"), POSITIVE, "inf"),
        wrong(LambdaLoss, "mu", -0.5, NON_NEGATIVE),
        wrong(NeuralNDCG, "sinkhorn_iterations", 0, "must be an integer >= 1"),
        wrong(NeuralNDCG, "k", -3, EVERY_POSITION),
        wrong(NeuralNDCG, "scale_gains", "false", BOOLEAN),
    ]
)
# Positional calls and messages of another form.
ARGUMENT_ERRORS.update(
    {
        "InBatchCrossEntropy.pos_sampling_technique": (
            lambda: InBatchCrossEntropy("some", "all"),  # type: ignore[arg-type]
            r"^pos_sampling_technique must be 'all' or 'first', got 'some'$",
        ),
        "InBatchCrossEntropy.neg_sampling_technique": (
            lambda: InBatchCrossEntropy("all", "most"),  # type: ignore[arg-type]
            r"^neg_sampling_technique must be 'all', 'first' or 'all_and_non_first', got 'most'$",
        ),
        "InBatchCrossEntropy.neg_sampling_technique with pos all": (
            lambda: InBatchCrossEntropy("all", "all_and_non_first"),
            r"^neg_sampling_technique='all_and_non_first' needs pos_sampling_technique='first'",
        ),
        "LambdaLoss.weighting": (
            lambda: LambdaLoss(weighting="ndcg_loss1"),  # type: ignore[arg-type]
            r"^weighting must be one of ndcg_loss2pp, ndcg_loss2, lambdarank, ranknet; "
            r"got 'ndcg_loss1'$",
        ),
    }
)


@pytest.mark.parametrize("case", sorted(ARGUMENT_ERRORS))
def test_invalid_argument_error_names_the_argument_and_valid_values(case: str) -> None:
    make, message = ARGUMENT_ERRORS[case]
    with pytest.raises(ValueError, match=message):
        make()


def test_every_constructor_argument_of_every_loss_has_a_validation_case() -> None:
    import inspect

    covered = {case.split(" ")[0] for case in ARGUMENT_ERRORS}
    arguments = {
        f"{cls.__name__}.{name}"
        for cls in LOSSES.values()
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    }
    assert arguments - covered == set()


def test_valid_arguments_are_kept() -> None:
    assert RankNet(temperature=2).temperature == 2.0
    assert ConstantMarginMSE(margin=1).margin == 1.0
    assert FLOPSRegularization(0, 6e-4).query_weight == 0.0  # a weight schedule starts from 0
    assert ScoreBasedInBatchCrossEntropy(min_target_diff=0).min_target_diff == 0.0
    assert InBatchCrossEntropy(max_num_neg_samples=3).max_num_neg_samples == 3


def test_all_and_non_first_error_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="pos_sampling_technique='first'"):
        InBatchCrossEntropy("all", "all_and_non_first")


def test_score_based_needs_targets() -> None:
    with pytest.raises(ValueError, match="targets"):
        ScoreBasedInBatchCrossEntropy()(torch.zeros(2, 4))


def test_registry_lists_every_loss() -> None:
    assert set(LOSSES) == EXPECTED_NAMES
    for name, cls in LOSSES.items():
        assert loss_class(name) is cls
        assert isinstance(cls.needs, Needs)
        instance = cls()
        assert family(instance) in ("scoring", "in_batch", "regularization")
        assert repr(instance).startswith(cls.__name__)


def test_registry_needs() -> None:
    assert LOSSES["supervised_margin_mse"].needs == Needs.TARGETS | Needs.TEACHER_SCORES
    assert LOSSES["kl_divergence"].needs == Needs.TARGETS | Needs.TEACHER_SCORES
    assert LOSSES["score_based_in_batch_ce"].needs == (
        Needs.IN_BATCH | Needs.TARGETS | Needs.TEACHER_SCORES
    )
    assert LOSSES["in_batch_ce"].needs == Needs.IN_BATCH
    assert Needs.EMBEDDINGS in LOSSES["flops"].needs and Needs.SPARSE in LOSSES["flops"].needs
    assert LOSSES["pointwise_mse"].needs == Needs.TARGETS | Needs.TEACHER_SCORES
    for name in ("bce", "lambdaloss", "neural_ndcg", "plistmle"):
        assert LOSSES[name].needs == Needs.TARGETS, name


def test_unknown_name_lists_valid_names_sorted() -> None:
    with pytest.raises(ValueError) as error:
        loss_class("rank_net")
    message = str(error.value)
    assert "rank_net" in message
    assert ", ".join(sorted(EXPECTED_NAMES)) in message
