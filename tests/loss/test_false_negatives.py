"""False-negative filtering (``false_negative_margin``): which negatives are dropped, by hand.

The expected masks and values are worked out from the scores below (the module docstring's rule:
absolute, drop ``c`` if ``s_qc > s_qp - m``; relative, if ``s_qc > s_qp - m * |s_qp|``), and the
losses in float64 from the cross-entropy over the candidates that remain.
"""

from __future__ import annotations

import math

import pytest
import torch

from lossbench.loss import InBatchCrossEntropy, ScoreBasedInBatchCrossEntropy
from lossbench.loss.false_negatives import false_negatives

# Q=2 queries, D=2 docs each: query q owns columns [2q, 2q+1], its positive is column 2q
SCORES = torch.tensor([[3.0, 1.0, 2.5, 0.5], [2.9, 0.0, 2.0, 1.5]])


def lse(*values: float) -> float:
    return math.log(sum(math.exp(v) for v in values))


def test_absolute_margin_drops_the_negatives_within_it_of_the_positive() -> None:
    # q0: bar 3.0 - 1.0 = 2.0 -> column 2 (2.5) goes; q1: bar 2.0 - 1.0 = 1.0 -> columns 0 and 3
    competitors = torch.tensor([[False, True, True, True], [True, True, False, True]])
    dropped = false_negatives(SCORES, torch.tensor([0, 2]), competitors, 1.0, "absolute")
    assert dropped.tolist() == [[False, False, True, False], [True, False, False, True]]


def test_relative_margin_scales_with_the_positive_and_stays_below_a_negative_one() -> None:
    competitors = torch.tensor([[False, True, True, True], [True, True, False, True]])
    # q0: bar 3.0 - 0.2 * 3.0 = 2.4 -> column 2; q1: bar 2.0 - 0.4 = 1.6 -> column 0 only
    dropped = false_negatives(SCORES, torch.tensor([0, 2]), competitors, 0.2, "relative")
    assert dropped.tolist() == [[False, False, True, False], [True, False, False, False]]
    # a negative positive score -2.0: bar -2.0 - 0.5 * 2.0 = -3.0, below the positive
    scores = torch.tensor([[-2.0, -2.9, -3.1, -1.0]])
    dropped = false_negatives(
        scores, torch.tensor([0]), torch.tensor([[0, 1, 1, 1]]).bool(), 0.5, "relative"
    )
    assert dropped.tolist() == [[False, True, False, True]]


def test_margin_zero_drops_exactly_the_negatives_that_outscore_the_positive() -> None:
    competitors = torch.tensor([[False, True, True, True], [True, True, False, True]])
    dropped = false_negatives(SCORES, torch.tensor([0, 2]), competitors, 0.0)
    assert dropped.tolist() == [[False, False, False, False], [True, False, False, False]]


def test_in_batch_cross_entropy_leaves_the_dropped_out_of_its_softmax() -> None:
    loss = InBatchCrossEntropy(false_negative_margin=1.0)
    value = loss(SCORES.double())
    # q0 keeps columns 0, 1, 3; q1 keeps columns 1, 2
    expected = ((lse(3.0, 1.0, 0.5) - 3.0) + (lse(0.0, 2.0) - 2.0)) / 2
    assert value.item() == pytest.approx(expected, abs=1e-6)
    dropped = loss.false_negatives_dropped()
    assert dropped is not None and dropped.item() == 3
    assert InBatchCrossEntropy().false_negatives_dropped() is None  # no margin, nothing counted
    unfiltered = ((lse(3.0, 1.0, 2.5, 0.5) - 3.0) + (lse(2.9, 0.0, 2.0, 1.5) - 2.0)) / 2
    assert InBatchCrossEntropy()(SCORES).item() == pytest.approx(unfiltered, abs=1e-6)


def test_score_based_filters_after_the_teacher_picks_the_positive() -> None:
    scores = torch.tensor([[1.0, 2.0, 1.8, 0.0], [0.5, 0.4, 1.0, 0.9]])
    targets = torch.tensor([[0.0, 5.0], [3.0, 2.5]])
    # q0: positive column 1 (target 5); negatives: own column 0, columns 2 and 3; bar 2.0 - 0.3:
    # column 2 (1.8) goes. q1: positive column 2; own column 3 is within min_target_diff of the
    # best (no negative); negatives columns 0, 1 (0.5, 0.4) stay below 1.0 - 0.3.
    loss = ScoreBasedInBatchCrossEntropy(1.0, false_negative_margin=0.3)
    value = loss(scores, targets)
    expected = ((lse(2.0, 1.0, 0.0) - 2.0) + (lse(1.0, 0.5, 0.4) - 1.0)) / 2
    assert value.item() == pytest.approx(expected, abs=1e-6)
    dropped = loss.false_negatives_dropped()
    assert dropped is not None and dropped.item() == 1


def test_a_padded_query_counts_no_dropped_negatives() -> None:
    mask = torch.tensor([[True, True], [False, False]])  # query 1 has no docs
    loss = InBatchCrossEntropy(false_negative_margin=10.0)
    loss(SCORES, mask=mask)
    dropped = loss.false_negatives_dropped()
    assert dropped is not None and dropped.item() == 1  # q0's own column 1; q1 counts nothing


def test_bad_margins_are_refused() -> None:
    # one case per argument and message in tests/loss/test_contract.py (ARGUMENT_ERRORS); here: the
    # same messages from both in-batch losses
    for loss_class in (InBatchCrossEntropy, ScoreBasedInBatchCrossEntropy):
        with pytest.raises(ValueError, match=r"false_negative_margin must be a finite number >= 0"):
            loss_class(false_negative_margin=-0.1)
        with pytest.raises(ValueError, match=r"false_negative_margin_type must be 'absolute' or"):
            loss_class(false_negative_margin=0.1, false_negative_margin_type="percent")
