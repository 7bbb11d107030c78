"""In-batch losses: each query against every doc of the batch, other queries' docs as negatives.

Contract: ``scores`` is ``(Q, Q*D)``, query q against every doc of the flattened batch, query q
owning columns ``[q*D, (q+1)*D)``; ``mask`` ``(Q, D)`` marks the real docs of each block (a padded
doc is excluded from every query's softmax, not only its owner's); ``targets`` ``(Q, D)`` (or
``(Q, D, T)``, reduced by max) for the losses that need them. Bi-encoders only.

Across devices (``gather_across_devices=True`` under DDP) the docs are the blocks of every rank:
``scores`` ``(Q, B*D)`` with ``B >= Q`` blocks, ``mask`` ``(B, D)`` for all of them, and local
query q owns block ``query_offset + q``. The value is then the local queries' share of the global
mean, ``sum_{local q} loss_q / (queries with a positive in all B blocks)``: summed over the ranks it
is the mean over the global batch (see :mod:`lossbench.training.distributed`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from lossbench.loss.base import (
    InBatchLossFunction,
    Needs,
    check_flag,
    check_non_negative,
    check_optional_count,
    check_temperature,
    masked_logsumexp,
)
from lossbench.loss.false_negatives import MarginType, check_margin, false_negatives
from lossbench.loss.in_batch_layout import InBatchLayout

PosSampling = Literal["all", "first"]
NegSampling = Literal["all", "first", "all_and_non_first"]


def _check_max_num_neg_samples(max_num_neg_samples: int | None) -> int | None:
    return check_optional_count(max_num_neg_samples, "max_num_neg_samples", "every negative")


def _subsample(negatives: torch.Tensor, max_num: int | None) -> torch.Tensor:
    """Keep at most ``max_num`` of each row's True entries, uniformly at random (torch's global RNG)."""
    if max_num is None:
        return negatives
    keys = torch.rand(negatives.shape, device=negatives.device)  # (Q, N)
    keys = keys.masked_fill(~negatives, 2.0)  # (Q, N): non-candidates sort last
    ranks = keys.argsort(dim=-1).argsort(dim=-1)  # (Q, N)
    return negatives & (ranks < max_num)  # (Q, N)


def _drop_false_negatives(
    loss: InBatchLossFunction,
    scores: torch.Tensor,
    positive: torch.Tensor,
    competitors: torch.Tensor,
    has_positive: torch.Tensor,
    margin_type: MarginType,
) -> torch.Tensor:
    """``competitors`` ``(Q, B*D)`` without the false negatives of ``loss.false_negative_margin``
    (none when it is None); records how many the queries with a positive lost."""
    margin = loss.false_negative_margin
    if margin is None:
        return competitors
    dropped = false_negatives(scores, positive, competitors, margin, margin_type)  # (Q, B*D)
    dropped = dropped & has_positive.unsqueeze(-1)  # (Q, B*D)
    loss._dropped = dropped.sum().detach()
    return competitors & ~dropped


def _cross_entropy(
    scores: torch.Tensor,
    candidates: torch.Tensor,
    positive: torch.Tensor,
    has_positive: torch.Tensor,
    temperature: float,
    num_counted: torch.Tensor,
) -> torch.Tensor:
    """``sum_q (logsumexp_{candidates} s/T - s_positive/T)`` over the queries with a positive,
    divided by ``num_counted``: their number (the mean), or across devices the number of queries
    with a positive on every rank (the local share of the global mean).

    The rows of queries without a positive are zeroed first: whatever their scores (a padded
    query's embedding may be garbage), they put nothing non-finite into the graph.
    """
    skipped = ~has_positive.unsqueeze(-1)  # (Q, 1)
    logits = scores.masked_fill(skipped, 0.0) / temperature  # (Q, B*D)
    candidates = candidates & ~skipped  # (Q, B*D)
    positive_logits = logits.gather(-1, positive.unsqueeze(-1)).squeeze(-1)  # (Q,)
    losses = masked_logsumexp(logits, candidates) - positive_logits  # (Q,)
    total = torch.where(has_positive, losses, torch.zeros_like(losses)).sum()
    return total / num_counted.to(total.dtype).clamp(min=1.0)


class InBatchCrossEntropy(InBatchLossFunction):
    """In-batch cross-entropy: each query's positive must win a softmax against the batch's docs.

    Formula (query q, its first doc ``p_q = q*D`` is the positive, ``C_q`` its candidates: its
    positives and its negatives, real docs only; mean over queries whose first doc is real)::

        L = mean_q [ logsumexp_{c in C_q} s_qc / temperature - s_q,p_q / temperature ]

    Candidates by technique (``B_q`` = q's own block):

    * ``pos_sampling_technique="all"``: all of ``B_q`` (its other docs stay in the softmax as
      competitors); ``"first"``: only ``p_q``.
    * ``neg_sampling_technique="all"``: every doc outside ``B_q``; ``"first"``: the other queries'
      first docs; ``"all_and_non_first"``: every doc except ``p_q`` (only with pos ``"first"``,
      since with pos ``"all"`` its own docs would be counted twice).

    Args:
        pos_sampling_technique: ``"all"`` or ``"first"``, see above.
        neg_sampling_technique: ``"all"``, ``"first"`` or ``"all_and_non_first"``, see above.
        max_num_neg_samples: keep at most this many negatives per query, drawn uniformly at random,
            independently for each query, with torch's global RNG (seed it with
            ``torch.manual_seed`` / Lightning's ``seed_everything`` for reproducible runs). ``None``
            keeps all.
        temperature: divides every score before the softmax (smaller means sharper; ~0.05 is
            common for cosine similarities). Default 1 equals the reference.
        gather_across_devices: under multi-device (DDP) training, score each query against the
            docs of every rank, not only its own rank's (more negatives for free). The training
            module gathers the docs' embeddings with gradients; the DDP-averaged gradient then
            equals the single-process gradient on the global batch. No effect on one device.
        false_negative_margin: drop each candidate other than the positive (the other queries'
            docs, and with ``pos_sampling_technique="all"`` the query's own other docs) whose
            score, under the model itself and detached, is above ``s_q,p_q - margin``
            (``"absolute"``) or ``s_q,p_q - margin * |s_q,p_q|`` (``"relative"``): likely false
            negatives (:mod:`lossbench.loss.false_negatives`). ``None`` (default) keeps them all.
            Dropped before ``max_num_neg_samples`` draws.
        false_negative_margin_type: ``"absolute"`` (default) or ``"relative"``.

    References:
        Karpukhin, Oguz, Min, Lewis, Wu, Edunov, Chen and Yih, "Dense Passage Retrieval for
        Open-Domain Question Answering", EMNLP 2020. Keren, Sabato and Schuller, "Fast Single-Class
        Classification and the Principle of Logit Separation", ICDM 2018.

    Inputs:
        Bi-encoder scores of every query against every doc of the batch, each query's positive
        first in its block (tuple order). No targets.

    Relations:
        :class:`InfoNCE` over an enlarged candidate list; :class:`ScoreBasedInBatchCrossEntropy`
        picks the positive and the own-block negatives from teacher scores instead of position.

    Differs from lightning-ir:
        Takes the full ``(Q, Q*D)`` score matrix and masks instead of gathering docs, so padded
        docs are excluded from every query's softmax and a query whose block is all padding is
        skipped. Random negatives are drawn per query (the reference draws one permutation of
        negative slots for all queries). Adds ``temperature`` and ``gather_across_devices``.
        Invalid technique combinations raise at construction.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])  # Q=2, D=2
        >>> InBatchCrossEntropy("first", "first")(scores)
        tensor(0.1269)
    """

    needs: ClassVar[Needs] = Needs.IN_BATCH

    def __init__(
        self,
        pos_sampling_technique: PosSampling = "all",
        neg_sampling_technique: NegSampling = "all",
        max_num_neg_samples: int | None = None,
        temperature: float = 1.0,
        gather_across_devices: bool = False,
        false_negative_margin: float | None = None,
        false_negative_margin_type: MarginType = "absolute",
    ) -> None:
        if pos_sampling_technique not in ("all", "first"):
            raise ValueError(
                f"pos_sampling_technique must be 'all' or 'first', got {pos_sampling_technique!r}"
            )
        if neg_sampling_technique not in ("all", "first", "all_and_non_first"):
            raise ValueError(
                "neg_sampling_technique must be 'all', 'first' or 'all_and_non_first', "
                f"got {neg_sampling_technique!r}"
            )
        if neg_sampling_technique == "all_and_non_first" and pos_sampling_technique != "first":
            raise ValueError(
                "neg_sampling_technique='all_and_non_first' needs pos_sampling_technique='first' "
                "(with 'all' the query's own non-first docs would be both positives and negatives)"
            )
        self.pos_sampling_technique: PosSampling = pos_sampling_technique
        self.neg_sampling_technique: NegSampling = neg_sampling_technique
        self.max_num_neg_samples = _check_max_num_neg_samples(max_num_neg_samples)
        self.temperature = check_temperature(temperature)
        self.gather_across_devices = check_flag(gather_across_devices, "gather_across_devices")
        self.false_negative_margin = check_margin(false_negative_margin, false_negative_margin_type)
        self.false_negative_margin_type: MarginType = false_negative_margin_type

    def compute(self, layout: InBatchLayout, targets: torch.Tensor | None) -> torch.Tensor:
        scores, local_mask, mask, real, own, offset = layout
        num_queries, num_docs = local_mask.shape
        first_column = (torch.arange(scores.shape[1], device=scores.device) % num_docs) == 0
        own_first = own & first_column.unsqueeze(0)  # (Q, Q*D)
        positives = own if self.pos_sampling_technique == "all" else own_first  # (Q, Q*D)
        if self.neg_sampling_technique == "all":
            negatives = ~own  # (Q, Q*D)
        elif self.neg_sampling_technique == "first":
            negatives = first_column.unsqueeze(0) & ~own  # (Q, Q*D)
        else:
            negatives = ~own_first  # (Q, Q*D)
        rows = offset + torch.arange(num_queries, device=scores.device)  # (Q,)
        positive = rows * num_docs  # (Q,)
        competitors = ((positives & ~own_first) | negatives) & real  # (Q, Q*D)
        kept = _drop_false_negatives(
            self, scores, positive, competitors, local_mask[:, 0], self.false_negative_margin_type
        )
        negatives = _subsample(negatives & kept, self.max_num_neg_samples)  # (Q, Q*D)
        candidates = (positives & own_first & real) | (positives & kept) | negatives  # (Q, Q*D)
        counted = mask[:, 0].sum()  # queries with a positive, in every block
        return _cross_entropy(
            scores, candidates, positive, local_mask[:, 0], self.temperature, counted
        )


class ScoreBasedInBatchCrossEntropy(InBatchLossFunction):
    """Score-based in-batch cross-entropy: the teacher picks each query's positive and negatives.

    Formula (query q: positive ``p_q`` = its own doc with the highest target, first on ties;
    negatives ``N_q`` = its own docs with ``max_d t_qd - t_qd >= min_target_diff`` plus every doc of
    the other queries; real docs only; mean over queries with a real doc)::

        L = mean_q [ logsumexp_{c in {p_q} + N_q} s_qc / temperature - s_q,p_q / temperature ]

    Own docs that are within ``min_target_diff`` of the best (near-duplicates of the positive by
    the teacher's judgement) are left out of the softmax entirely.

    Args:
        min_target_diff: how far below the best target an own doc must be to serve as a negative.
        max_num_neg_samples: keep at most this many negatives per query, drawn uniformly at random,
            independently for each query, with torch's global RNG. ``None`` keeps all.
        temperature: divides every score before the softmax. Default 1 equals the reference.
        gather_across_devices: under multi-device (DDP) training, the other ranks' docs are
            negatives too (see :class:`InBatchCrossEntropy`). No effect on one device.
        false_negative_margin: drop each negative whose score, under the model itself and
            detached, comes within this margin of the positive's (see
            :class:`InBatchCrossEntropy`); ``None`` (default) keeps them all.
        false_negative_margin_type: ``"absolute"`` (default) or ``"relative"``.

    References:
        Karpukhin et al., "Dense Passage Retrieval for Open-Domain Question Answering", EMNLP 2020
        (in-batch negatives); the teacher-based selection follows lightning-ir (Schlatt et al.).

    Inputs:
        Bi-encoder in-batch scores and real-valued teacher scores ``(Q, D)`` for each query's own
        docs (a run with scores).

    Relations:
        :class:`InBatchCrossEntropy` with ``pos_sampling_technique="first"`` and
        ``neg_sampling_technique="all_and_non_first"``, after re-ordering each block by the
        targets and dropping own docs too close to the best.

    Differs from lightning-ir:
        When queries get different numbers of negatives, each query keeps all of its own (the
        reference drops random negatives down to the smallest count; with equal counts the values
        agree). Padded docs are excluded everywhere; ``temperature`` and
        ``gather_across_devices`` are new; ``min_target_diff`` defaults to 1.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # Q=2, D=2
        >>> targets = torch.tensor([[0.0, 5.0], [5.0, 5.0]])
        >>> ScoreBasedInBatchCrossEntropy(min_target_diff=1.0)(scores, targets)
        tensor(0.7197)
    """

    needs: ClassVar[Needs] = Needs.IN_BATCH | Needs.TARGETS | Needs.TEACHER_SCORES

    def __init__(
        self,
        min_target_diff: float = 1.0,
        max_num_neg_samples: int | None = None,
        temperature: float = 1.0,
        gather_across_devices: bool = False,
        false_negative_margin: float | None = None,
        false_negative_margin_type: MarginType = "absolute",
    ) -> None:
        self.min_target_diff = check_non_negative(min_target_diff, "min_target_diff")
        self.max_num_neg_samples = _check_max_num_neg_samples(max_num_neg_samples)
        self.temperature = check_temperature(temperature)
        self.gather_across_devices = check_flag(gather_across_devices, "gather_across_devices")
        self.false_negative_margin = check_margin(false_negative_margin, false_negative_margin_type)
        self.false_negative_margin_type: MarginType = false_negative_margin_type

    def compute(self, layout: InBatchLayout, targets: torch.Tensor | None) -> torch.Tensor:
        if targets is None:
            raise ValueError(
                "ScoreBasedInBatchCrossEntropy needs targets (teacher scores), got None"
            )
        scores, local_mask, mask, real, own, offset = layout
        num_queries, num_docs = local_mask.shape
        targets = targets.to(device=scores.device, dtype=torch.float32)
        if targets.dim() == 3:
            targets = targets.amax(dim=-1)  # (Q, D)
        if targets.shape != local_mask.shape:
            raise ValueError(
                f"targets must have shape (Q, D) = {tuple(local_mask.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        masked_targets = targets.masked_fill(~local_mask, float("-inf"))  # (Q, D)
        best = masked_targets.argmax(dim=-1)  # (Q,): first on ties
        best_target = masked_targets.amax(dim=-1, keepdim=True)  # (Q, 1)
        far_below = (best_target - targets >= self.min_target_diff) & local_mask  # (Q, D)
        rows = offset + torch.arange(num_queries, device=scores.device)  # (Q,)
        positive = rows * num_docs + best  # (Q,)
        own_negatives = torch.zeros_like(own)  # (Q, B*D)
        own_negatives[own] = far_below.reshape(-1)
        negatives = _drop_false_negatives(
            self,
            scores,
            positive,
            (~own & real) | own_negatives,
            local_mask.any(dim=-1),
            self.false_negative_margin_type,
        )
        negatives = _subsample(negatives, self.max_num_neg_samples)
        candidates = negatives.scatter(-1, positive.unsqueeze(-1), True)  # (Q, B*D)
        counted = mask.any(dim=-1).sum()  # queries with a real doc, in every block
        return _cross_entropy(
            scores, candidates, positive, local_mask.any(dim=-1), self.temperature, counted
        )
