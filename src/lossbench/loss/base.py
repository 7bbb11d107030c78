"""The loss contract: what every loss takes, returns and declares.

Three families, told apart by their base class (the training module dispatches on the base class and
on the declared needs, never on a loss's name):

* :class:`ScoringLossFunction` -- ``loss(scores, targets, mask=None)`` with ``scores`` ``(Q, D)``: each
  query against its own D candidates. ``targets`` is ``(Q, D)`` or ``(Q, D, T)`` (T qrels columns,
  reduced by max). ``mask`` is a bool ``(Q, D)``, True where a candidate is real; a padded entry
  changes neither the value nor the gradient.
* :class:`InBatchLossFunction` -- ``loss(scores, targets=None, mask=None)`` with ``scores``
  ``(Q, Q*D)``: query q against every doc of the flattened batch, query q owning columns
  ``[q*D, (q+1)*D)``; ``targets``/``mask`` ``(Q, D)`` describe each query's own block. With
  ``gather_across_devices=True`` under DDP, the module passes the docs of every rank instead:
  ``scores`` ``(Q, B*D)``, ``mask`` ``(B, D)`` and ``query_offset`` (the first own block).
* :class:`RegularizationLossFunction` -- ``loss(query_embeddings, doc_embeddings)`` on ``(Nq, dim)`` and
  ``(Nd, dim)``; weights are plain float attributes so weight schedulers can change them. A
  multi-vector model (ColBERT: a vector per token) has no such embeddings and refuses them.

The scores come from the model (its scoring: the dot product of single vectors, MaxSim of token
vectors); a loss never sees how they were computed.

Every loss returns a 0-dim float32 tensor, computed in float32 even under bf16 autocast, and a batch
with nothing to learn from gives a finite value with zero gradients, never NaN.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from lossbench.loss.in_batch_layout import InBatchLayout, in_batch_layout


class Needs(enum.Flag):
    """What a loss needs from the data and the model, checked before training starts."""

    NOTHING = 0
    TARGETS = enum.auto()
    """Per-candidate targets: relevance labels, tuple order or teacher scores all do."""
    TEACHER_SCORES = enum.auto()
    """Real-valued teacher scores (a run with scores), not just binary order or labels."""
    EMBEDDINGS = enum.auto()
    """The query and doc embeddings themselves (regularizers)."""
    IN_BATCH = enum.auto()
    """Scores of every query against every doc of the batch (bi-encoders only)."""
    SPARSE = enum.auto()
    """Embeddings of a sparse (SPLADE-style, non-negative, vocabulary-sized) model."""


class LossFunction(ABC):  # noqa: B024 (abstract by convention: subclasses add __call__)
    """Base class of every loss. Subclasses set :attr:`needs` and implement ``__call__``."""

    needs: ClassVar[Needs] = Needs.NOTHING

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class ScoringLossFunction(LossFunction):
    """A loss over each query's own candidate list: ``(scores (Q, D), targets, mask) -> scalar``.

    Calling it brings the inputs to one form (:func:`prepare`); subclasses implement :meth:`compute`
    on that form only.
    """

    needs: ClassVar[Needs] = Needs.TARGETS

    def __call__(
        self,
        scores: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.compute(*prepare(scores, targets, mask))

    @abstractmethod
    def compute(
        self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The loss on prepared inputs: float32 ``(Q, D)`` scores and targets, a bool ``(Q, D)`` mask
        (True where a candidate is real)."""


class TemperedScoringLossFunction(ScoringLossFunction):
    """A scoring loss whose scores are divided by (or, for pairs, scaled by) a ``temperature``,
    checked to be positive and finite (:func:`check_temperature`)."""

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = check_temperature(temperature)


class InBatchLossFunction(LossFunction):
    """A loss over every query against every doc of the batch: ``scores (Q, Q*D) -> scalar``.

    ``gather_across_devices`` (False unless a subclass's constructor sets it): under DDP the module
    then scores the local queries against the docs of every rank, ``scores`` ``(Q, B*D)`` with the
    ``(B, D)`` mask of all ``B`` blocks and ``query_offset`` (local query q owns block
    ``query_offset + q``), and the loss returns the local queries' share of the global mean.

    ``false_negative_margin`` (None unless a subclass's constructor sets it): drop the negatives
    whose (detached) score comes within this margin of the query's positive
    (:mod:`lossbench.loss.false_negatives`); :meth:`false_negatives_dropped` then counts the
    negatives the last call dropped.

    Calling it checks the shapes (:func:`~lossbench.loss.in_batch_layout.in_batch_layout`);
    subclasses implement :meth:`compute` on the checked layout only.
    """

    needs: ClassVar[Needs] = Needs.IN_BATCH
    gather_across_devices: bool = False
    false_negative_margin: float | None = None
    _dropped: torch.Tensor | None = None

    def false_negatives_dropped(self) -> torch.Tensor | None:
        """How many negatives the last call dropped as false negatives (a 0-dim tensor on the
        scores' device), or None when the loss does not filter."""
        return self._dropped if self.false_negative_margin is not None else None

    def __call__(
        self,
        scores: torch.Tensor,
        targets: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        query_offset: int | None = None,
    ) -> torch.Tensor:
        return self.compute(in_batch_layout(scores, mask, query_offset), targets)

    @abstractmethod
    def compute(self, layout: InBatchLayout, targets: torch.Tensor | None) -> torch.Tensor:
        """The loss on a checked layout (:class:`~lossbench.loss.in_batch_layout.InBatchLayout`:
        float32 scores, which columns are real and which block each query owns) and the targets of
        the local queries' own blocks, ``(Q, D)`` or ``(Q, D, T)``, or None."""


class RegularizationLossFunction(LossFunction):
    """A penalty on the embeddings: ``(query_embeddings (Nq, dim), doc_embeddings (Nd, dim)) -> scalar``."""

    needs: ClassVar[Needs] = Needs.EMBEDDINGS

    def __init__(self, query_weight: float = 1e-4, doc_weight: float = 1e-4) -> None:
        # >= 0: a negative weight would reward what the penalty is meant to shrink
        self.query_weight = check_non_negative(query_weight, "query_weight")
        self.doc_weight = check_non_negative(doc_weight, "doc_weight")

    @abstractmethod
    def __call__(
        self, query_embeddings: torch.Tensor, doc_embeddings: torch.Tensor
    ) -> torch.Tensor: ...


def prepare(
    scores: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bring ``(scores, targets, mask)`` to float32 ``(Q, D)`` tensors and a bool ``(Q, D)`` mask.

    ``targets`` of shape ``(Q, D, T)`` are reduced by max over T (several qrels iterations). A missing
    mask means every entry is real. Scores are upcast to float32 so that a loss computed under bf16
    autocast keeps full precision.
    """
    if targets.dim() == scores.dim() + 1:
        targets = targets.amax(dim=-1)
    if targets.shape != scores.shape:
        raise ValueError(
            f"targets have shape {tuple(targets.shape)} but scores have {tuple(scores.shape)}; "
            "a scoring loss needs (Q, D) scores with (Q, D) or (Q, D, T) targets"
        )
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    else:
        mask = mask.to(dtype=torch.bool, device=scores.device)
        if mask.shape != scores.shape:
            raise ValueError(
                f"mask has shape {tuple(mask.shape)} but scores have {tuple(scores.shape)}"
            )
    return scores.float(), targets.to(device=scores.device, dtype=torch.float32), mask


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``weights`` is non-zero (weights in {0, 1}).

    With no such entry the result is ``0 * sum(values)``: finite, zero, and still attached to the
    graph so that ``backward`` gives zero gradients instead of failing or producing NaN.
    """
    weights = weights.to(values.dtype)
    total = weights.sum()
    safe = torch.where(weights > 0, values, torch.zeros_like(values))
    return (safe * weights).sum() / total.clamp(min=1.0)


def masked_logsumexp(values: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``logsumexp`` over the entries of ``values`` where ``mask`` is True, along ``dim``.

    Masked entries are replaced by ``-inf`` (their gradient is exactly zero). A slice with no real
    entry gets a finite placeholder (the logsumexp of zeros) instead of ``-inf``, so that nothing
    non-finite enters the graph; callers must exclude such slices from their mean.
    """
    any_real = mask.any(dim=dim, keepdim=True)
    filled = values.masked_fill(~mask, float("-inf"))
    filled = filled.masked_fill(~any_real, 0.0)
    return torch.logsumexp(filled, dim=dim)


def masked_log_softmax(values: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log_softmax`` over the real entries along ``dim``; masked entries come out as 0.

    The 0 (instead of ``-inf``) keeps products such as ``p * log p`` free of ``0 * inf = nan``; mask
    the probabilities ``exp(...)`` yourself where they matter.
    """
    values = values.masked_fill(~mask, 0.0)
    log_probs = values - masked_logsumexp(values, mask, dim=dim).unsqueeze(dim)
    return log_probs.masked_fill(~mask, 0.0)


def check_positive(value: float, name: str) -> float:
    """Return ``value`` as a float, raising a ``ValueError`` naming ``name`` unless it is in (0, inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_non_negative(value: float, name: str) -> float:
    """Return ``value`` as a float, raising a ``ValueError`` naming ``name`` unless it is in [0, inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_count(value: int, name: str, allowed: str = "an integer >= 1") -> int:
    """Return ``value`` if it is an integer >= 1 (a bool is not), raising a ``ValueError`` that
    names ``name`` and what is ``allowed`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_optional_count(value: int | None, name: str, none_means: str) -> int | None:
    """Return ``value`` if it is None (meaning ``none_means``) or an integer >= 1; else a
    ``ValueError`` naming ``name`` (:func:`check_count`)."""
    if value is None:
        return None
    return check_count(value, name, f"None ({none_means}) or an integer >= 1")


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, raising a ``ValueError`` unless it is a positive finite
    number (a negative one would invert the objective, 0 divides by zero)."""
    return check_positive(temperature, "temperature")


def check_flag(value: bool, name: str) -> bool:
    """Return ``value`` if it is a bool, raising a ``ValueError`` naming ``name`` otherwise (a YAML
    string such as ``"false"`` would otherwise count as true)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value
