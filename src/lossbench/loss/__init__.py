"""Ranking losses, under the module paths of the guide (``loss.pairwise``, ``loss.listwise``, ...).

:data:`LOSSES` maps the config names (``conf/loss/<name>.yaml``) to the loss classes;
:func:`loss_class` looks one up with a helpful error.
"""

from __future__ import annotations

from lossbench.loss.approximate import ApproxMRR, ApproxNDCG, ApproxRankMSE
from lossbench.loss.base import (
    InBatchLossFunction,
    LossFunction,
    Needs,
    RegularizationLossFunction,
    ScoringLossFunction,
)
from lossbench.loss.in_batch import InBatchCrossEntropy, ScoreBasedInBatchCrossEntropy
from lossbench.loss.listwise import (
    InfoNCE,
    KLDivergence,
    ListMLE,
    ListNet,
    PearsonCorrelation,
    PositionAwareListMLE,
)
from lossbench.loss.metric_driven import LambdaLoss, NeuralNDCG
from lossbench.loss.pairwise import ConstantMarginMSE, RankNet, SupervisedMarginMSE
from lossbench.loss.pointwise import BinaryCrossEntropy, PointwiseMSE
from lossbench.loss.regularization import (
    FLOPSRegularization,
    L1Regularization,
    L2Regularization,
)

LOSSES: dict[str, type[LossFunction]] = {
    "ranknet": RankNet,
    "constant_margin_mse": ConstantMarginMSE,
    "supervised_margin_mse": SupervisedMarginMSE,
    "kl_divergence": KLDivergence,
    "infonce": InfoNCE,
    "pearson": PearsonCorrelation,
    "listnet": ListNet,
    "listmle": ListMLE,
    "plistmle": PositionAwareListMLE,
    "approx_ndcg": ApproxNDCG,
    "approx_mrr": ApproxMRR,
    "approx_rank_mse": ApproxRankMSE,
    "lambdaloss": LambdaLoss,
    "neural_ndcg": NeuralNDCG,
    "bce": BinaryCrossEntropy,
    "pointwise_mse": PointwiseMSE,
    "in_batch_ce": InBatchCrossEntropy,
    "score_based_in_batch_ce": ScoreBasedInBatchCrossEntropy,
    "flops": FLOPSRegularization,
    "l1": L1Regularization,
    "l2": L2Regularization,
}
"""Config name -> loss class, for every loss of the library."""


def loss_class(name: str) -> type[LossFunction]:
    """The loss class registered under ``name``; a ``ValueError`` listing the valid names otherwise."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(LOSSES))
        raise ValueError(f"unknown loss {name!r}; valid names: {valid}") from None


__all__ = [
    "LOSSES",
    "ApproxMRR",
    "ApproxNDCG",
    "ApproxRankMSE",
    "BinaryCrossEntropy",
    "ConstantMarginMSE",
    "FLOPSRegularization",
    "InBatchCrossEntropy",
    "InBatchLossFunction",
    "InfoNCE",
    "KLDivergence",
    "L1Regularization",
    "L2Regularization",
    "LambdaLoss",
    "ListMLE",
    "ListNet",
    "LossFunction",
    "Needs",
    "NeuralNDCG",
    "PearsonCorrelation",
    "PointwiseMSE",
    "PositionAwareListMLE",
    "RankNet",
    "RegularizationLossFunction",
    "ScoreBasedInBatchCrossEntropy",
    "ScoringLossFunction",
    "SupervisedMarginMSE",
    "loss_class",
]
