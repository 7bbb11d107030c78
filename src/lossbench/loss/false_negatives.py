"""False-negative filtering for in-batch losses: drop a negative that scores too close to the positive.

In-batch negatives are other queries' docs, chosen by nobody: some of them answer the query as well
as its own positive does (a duplicate question, a second relevant passage). Training pushes those
down. The filter drops a negative ``c`` of query ``q`` from the softmax when a guide scores it
within a margin of the query's positive ``p_q`` (NV-Retriever's "TopK-MarginPos" / "TopK-PercPos",
GISTEmbed's guided in-batch masking)::

    absolute:  drop c  if  g(q, c) > g(q, p_q) - margin
    relative:  drop c  if  g(q, c) > g(q, p_q) - margin * |g(q, p_q)|

``relative`` keeps ``(1 - margin)`` of a positive score as the bar (PercPos with
``percentage = 1 - margin``); the ``|.|`` keeps the bar below the positive when a dot product is
negative. ``margin = 0`` drops exactly the negatives that outscore the positive.

The guide ``g`` is the model being trained, its scores detached (no gradient flows through the
choice). A teacher run cannot be the guide here: it scores each query's own candidates only, never
the other queries' docs, which are the in-batch negatives; a fixed guide model would have to be
loaded and run beside the model at every step. (Own-block negatives of
:class:`~lossbench.loss.ScoreBasedInBatchCrossEntropy` are also chosen by the teacher's scores,
with ``min_target_diff``.)

References:
    Moreira, Osmulski, Xu, Ak, Schifferer and Oldridge, "NV-Retriever: Improving text embedding
    models with effective hard-negative mining", arXiv:2407.15831, 2024. Solatorio, "GISTEmbed:
    Guided In-sample Selection of Training Negatives for Text Embedding Fine-tuning",
    arXiv:2402.16829, 2024.
"""

from __future__ import annotations

from typing import Literal

import torch

from lossbench.loss.base import check_non_negative

MarginType = Literal["absolute", "relative"]
MARGIN_TYPES: tuple[MarginType, ...] = ("absolute", "relative")


def check_margin(margin: float | None, margin_type: str) -> float | None:
    """Return ``margin`` as a float (or None: no filtering); a ``ValueError`` for a negative or
    non-finite margin or an unknown ``margin_type``."""
    if margin_type not in MARGIN_TYPES:
        raise ValueError(
            f"false_negative_margin_type must be 'absolute' or 'relative', got {margin_type!r}"
        )
    return None if margin is None else check_non_negative(margin, "false_negative_margin")


def false_negatives(
    guide_scores: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    margin: float,
    margin_type: MarginType = "absolute",
) -> torch.Tensor:
    """The ``negatives`` to drop: those the guide scores within ``margin`` of the positive.

    Args:
        guide_scores: ``(Q, N)`` the guide's score of each query against each column (detached
            here: the choice carries no gradient).
        positive: ``(Q,)`` the column of each query's positive.
        negatives: ``(Q, N)`` bool, the columns that would be negatives.
        margin: see the module docstring; ``>= 0``.
        margin_type: ``"absolute"`` or ``"relative"``.

    Returns:
        ``(Q, N)`` bool, a subset of ``negatives``.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[1.0, 0.95, 0.5]])
        >>> false_negatives(scores, torch.tensor([0]), torch.tensor([[False, True, True]]), 0.1)
        tensor([[False,  True, False]])
    """
    guide = guide_scores.detach().float()  # (Q, N)
    positive_score = guide.gather(-1, positive.unsqueeze(-1))  # (Q, 1)
    slack = margin * positive_score.abs() if margin_type == "relative" else margin
    return negatives & (guide > positive_score - slack)  # (Q, N)
