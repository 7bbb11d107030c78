"""Pointwise losses: each candidate on its own, against a label or a teacher score.

They are the baselines of cross-encoder training (monoBERT): no candidate is compared with another,
so a list of one candidate, or of negatives only, still has something to learn.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from lossbench.loss.base import Needs, ScoringLossFunction, check_temperature, masked_mean

Binarize = Literal["max", "threshold"]
BINARIZE: tuple[str, ...] = ("max", "threshold")


def check_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float, raising a ``ValueError`` unless it is a number (not NaN)."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError(f"threshold must be a number, not NaN, got {threshold!r}")
    return threshold


def binary_labels(
    targets: torch.Tensor, mask: torch.Tensor, binarize: Binarize, threshold: float
) -> torch.Tensor:
    """Float ``(Q, D)`` labels in {0, 1} from ``targets``; 0 at padded entries.

    ``"threshold"``: 1 where ``t > threshold``. ``"max"``: 1 where ``t`` equals the largest target of
    the query's real candidates and ``t > threshold`` (tied maxima are all positive).
    """
    positive = (targets > threshold) & mask  # (Q, D)
    if binarize == "max":
        best = targets.masked_fill(~mask, float("-inf")).amax(dim=-1, keepdim=True)  # (Q, 1)
        positive = positive & (targets == best)  # (Q, D)
    return positive.to(targets.dtype)


class BinaryCrossEntropy(ScoringLossFunction):
    """Binary cross-entropy: classify every candidate on its own as relevant or not (monoBERT).

    Formula (``y_qd`` in {0, 1} from the targets, see ``binarize``; mean over every real
    ``(q, d)`` of the batch)::

        L = mean_{(q,d)} - [ y_qd * log sigmoid(s_qd / T) + (1 - y_qd) * log(1 - sigmoid(s_qd / T)) ]

    computed from the logits (``softplus``), so that large scores neither overflow nor lose
    precision. Labels: with ``binarize="max"`` (default) a candidate is positive when its target is
    the largest of its list and above ``threshold``: the positive of a tuple (targets
    ``n-1, ..., 1, 0``, positive first), whatever the number of negatives; tied maxima are all
    positive; a list whose best target is ``<= threshold`` (e.g. all-zero labels) has no positive.
    With ``binarize="threshold"`` every candidate with ``t > threshold`` is positive: graded qrels
    with the TREC convention (grade >= 1 is relevant) at the default ``threshold=0``.

    Args:
        binarize: ``"max"`` (the list's best candidates, if above ``threshold``) or
            ``"threshold"`` (every candidate above ``threshold``).
        threshold: a target must be strictly greater than this to be positive (any number;
            ``-inf`` makes ``"max"`` label the best candidate whatever its value).
        temperature: divides the scores before the sigmoid (for similarity scores with a small
            range, e.g. cosine, a temperature below 1 spreads them out). Default 1: the paper.

    References:
        Nogueira and Cho, "Passage Re-ranking with BERT", arXiv:1901.04085, 2019. Pradeep, Liu,
        Zhang, Li, Lin, Nogueira and Lin, "Squeezing Water from a Stone: A Bag of Tricks for Further
        Improving Cross-Encoder Effectiveness for Reranking", ECIR 2022.

    Inputs:
        Tuple order (triples: the positive is the first candidate) or relevance labels (a run with
        ``targets: relevance`` and ``binarize="threshold"``). Teacher scores have no natural
        threshold: distil them with :class:`PointwiseMSE` instead.

    Relations:
        The pointwise baseline of the pairwise :class:`RankNet` (which sees the same sigmoid, but of
        a score *difference*) and of the listwise :class:`InfoNCE` (a softmax over the list). Unlike
        them it learns from negatives alone and ties scores to an absolute scale (0 = undecided).
        :class:`PointwiseMSE` is its regression counterpart for teacher scores.

    Differs from lightning-ir:
        Not in lightning-ir (it goes beyond the guide). Padded candidates take no part; the mean is
        over real candidates.

    Example:
        >>> import torch
        >>> BinaryCrossEntropy()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.4100)
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def __init__(
        self, binarize: Binarize = "max", threshold: float = 0.0, temperature: float = 1.0
    ) -> None:
        if binarize not in BINARIZE:
            raise ValueError(f"binarize must be 'max' or 'threshold', got {binarize!r}")
        self.binarize: Binarize = binarize
        self.threshold = check_threshold(threshold)
        self.temperature = check_temperature(temperature)

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        labels = binary_labels(targets, mask, self.binarize, self.threshold)  # (Q, D)
        logits = scores.masked_fill(~mask, 0.0) / self.temperature  # (Q, D)
        losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")  # (Q, D)
        return masked_mean(losses, mask)


class PointwiseMSE(ScoringLossFunction):
    """Pointwise MSE: regress every candidate's score onto its teacher score.

    Formula (mean over every real ``(q, d)`` of the batch)::

        L = mean_{(q,d)} (s_qd - t_qd)^2

    Args:
        None.

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", NIPS Deep
        Learning Workshop, 2015 (matching the teacher's logits by squared error is the
        high-temperature limit of distillation).

    Inputs:
        Real-valued teacher scores (a run with scores, ``targets: score``). The student must match
        the teacher's scale and offset, not only its order: normalize the teacher's scores upstream
        (``dataset.run_sampling.normalize_targets``) if they are far from the student's range.

    Relations:
        The teacher-score counterpart of :class:`BinaryCrossEntropy`. :class:`SupervisedMarginMSE`
        matches score *differences* instead (free of the teacher's offset); :class:`KLDivergence`
        and :class:`PearsonCorrelation` are invariant to an offset too (and Pearson to a scale).

    Differs from lightning-ir:
        Not in lightning-ir (it goes beyond the guide). Padded candidates take no part; the mean is
        over real candidates.

    Example:
        >>> import torch
        >>> PointwiseMSE()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.5]]))
        tensor(0.6250)
    """

    needs: ClassVar[Needs] = Needs.TARGETS | Needs.TEACHER_SCORES

    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        scores = scores.masked_fill(~mask, 0.0)  # (Q, D)
        targets = targets.masked_fill(~mask, 0.0)  # (Q, D)
        return masked_mean((scores - targets).square(), mask)
