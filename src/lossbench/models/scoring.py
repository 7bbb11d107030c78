r"""How a bi-encoder compares queries with docs: the scoring seam between its encoders and its losses.

The training module never computes a score itself: it asks its encoder's :class:`Scoring` for

* :meth:`Scoring.per_query`: each query against its own candidates, ``(Q, *E)`` x ``(Q, D, *E)``
  -> ``(Q, D)``, what the scoring losses take;
* :meth:`Scoring.all_docs`: every query against every doc, ``(Q, *E)`` x ``(N, *E)`` -> ``(Q, N)``,
  what the in-batch losses take (the batch's docs, or every device's).

``E`` is what the encoder makes of one text: ``(dim,)`` for a single vector (DPR, SPLADE: scored
by :class:`DotProduct`; cosine is the dot product of the L2-normalized vectors the encoder emits),
``(L, dim)`` for a vector per token (ColBERT: :class:`MaxSim`), where the tokens that do not count
are zero vectors. Tensors padded with zeros along ``L`` therefore keep their scores, which is what
lets a batch, or the batches of several devices, pad docs of different lengths to one shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Scoring(ABC):
    """The similarity of a query's embedding and a doc's, batched two ways."""

    @abstractmethod
    def per_query(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        """``queries`` ``(Q, *E)`` against their own docs ``(Q, D, *E)``: scores ``(Q, D)``."""

    @abstractmethod
    def all_docs(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        """Every query ``(Q, *E)`` against every doc ``(N, *E)``: scores ``(Q, N)``."""


class DotProduct(Scoring):
    r"""One vector per text: :math:`s(q, d) = \langle v_q, v_d \rangle`."""

    def per_query(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        return torch.einsum("qh,qdh->qd", queries, docs)  # (Q, D)

    def all_docs(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        return queries @ docs.T  # (Q, N)


class Scaled(Scoring):
    r"""Another scoring's scores times a constant: :math:`s'(q, d) = c \cdot s(q, d)`, the scores a
    bi-encoder's losses see when its config sets ``score_scale`` (cosine models are trained so)."""

    def __init__(self, inner: Scoring, scale: float) -> None:
        self.inner = inner
        self.scale = scale

    def per_query(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        return self.inner.per_query(queries, docs) * self.scale

    def all_docs(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        return self.inner.all_docs(queries, docs) * self.scale


def scaled(scoring: Scoring, scale: float) -> Scoring:
    """``scoring`` itself when ``scale`` is 1, else its scores times ``scale``."""
    return scoring if scale == 1 else Scaled(scoring, scale)


def token_mask(vectors: torch.Tensor) -> torch.Tensor:
    """Which tokens of ``(..., L, dim)`` token vectors count: the non-zero ones, ``(..., L)``."""
    return vectors.ne(0).any(dim=-1)


def max_over_doc_tokens(similarities: torch.Tensor, doc_mask: torch.Tensor | None) -> torch.Tensor:
    """``max_j`` over the last axis (doc tokens) of ``(..., Lq, Ld)`` similarities, then the sum over
    query tokens: ``(...)`` in float32.

    ``doc_mask`` (broadcastable to ``(..., 1, Ld)``) marks the doc tokens that count; None: all do.
    A doc without any token scores 0 (a padded candidate slot), so no ``-inf`` reaches a loss.
    """
    if doc_mask is None:
        return similarities.amax(dim=-1).float().sum(dim=-1)
    best = similarities.masked_fill(~doc_mask, float("-inf")).amax(dim=-1)  # (..., Lq)
    best = best.masked_fill(~doc_mask.any(dim=-1), 0.0)  # docs with no token
    return best.float().sum(dim=-1)


def maxsim(
    queries: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""MaxSim of every query against every doc: ``(Q, Lq, dim)`` x ``(N, Ld, dim)`` -> ``(Q, N)``.

    :math:`s(q, d) = \sum_i \max_{j \in M_d} \langle E_i(q), E_j(d) \rangle`, computed as one matrix
    product ``(Q*Lq, dim) @ (dim, N*Ld)``, a max over each doc's tokens and a sum over the query's.
    ``doc_mask`` ``(N, Ld)``: the doc tokens that count (None: all of them, e.g. docs padded by
    repeating one of their own tokens, which leaves every max unchanged). A query token that is a
    zero vector adds 0 to every doc's score (for docs with a token).
    """
    num_queries, query_length, dim = queries.shape
    num_docs, doc_length, _ = docs.shape
    flat = queries.reshape(-1, dim) @ docs.reshape(-1, dim).T  # (Q*Lq, N*Ld)
    similarities = flat.view(num_queries, query_length, num_docs, doc_length).transpose(1, 2)
    mask = None if doc_mask is None else doc_mask[None, :, None, :]  # (1, N, 1, Ld)
    return max_over_doc_tokens(similarities, mask)  # (Q, N)


class MaxSim(Scoring):
    r"""Late interaction (ColBERT): :math:`s(q, d) = \sum_i \max_{j} \langle E_i(q), E_j(d) \rangle`
    over the tokens that count (the non-zero vectors; see :func:`token_mask`)."""

    def per_query(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        num_queries, num_docs, doc_length, dim = docs.shape
        flat = docs.reshape(num_queries, num_docs * doc_length, dim)  # (Q, D*Ld, dim)
        similarities = torch.bmm(queries, flat.transpose(1, 2))  # (Q, Lq, D*Ld)
        similarities = similarities.view(num_queries, -1, num_docs, doc_length).transpose(1, 2)
        mask = token_mask(docs)[:, :, None, :]  # (Q, D, 1, Ld)
        return max_over_doc_tokens(similarities, mask)  # (Q, D)

    def all_docs(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        return maxsim(queries, docs, token_mask(docs))  # (Q, N)
