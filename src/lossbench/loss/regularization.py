"""Regularization losses: penalties on the query and doc embeddings, added to a ranking loss.

The weights ``query_weight`` and ``doc_weight`` are plain float attributes so that a weight scheduler
(e.g. ``GenericConstantSchedulerWithLinearWarmup`` with ``loss_functions.1.query_weight``) can change
them during training. Embeddings are ``(N, dim)``; any leading dimensions are flattened into N, so a
single-vector ``(N, 1, dim)`` tensor works as is.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from lossbench.loss.base import Needs, RegularizationLossFunction


def _as_vectors(embeddings: torch.Tensor) -> torch.Tensor:
    """float32 ``(N, dim)``: flatten leading dimensions and upcast (bf16 under autocast)."""
    if embeddings.dim() < 1:
        raise ValueError("embeddings must have at least one dimension (dim)")
    return embeddings.float().reshape(-1, embeddings.shape[-1])  # (N, dim)


def _mean_over_rows(values: torch.Tensor) -> torch.Tensor:
    """Mean over dim 0 that is 0 (not NaN) for zero rows."""
    return values.sum(dim=0) / max(values.shape[0], 1)


class _MeanNormRegularization(RegularizationLossFunction):
    """``query_weight * mean_i norm(q_i) + doc_weight * mean_j norm(d_j)`` for a subclass's ``norm``."""

    needs: ClassVar[Needs] = Needs.EMBEDDINGS

    @staticmethod
    @abstractmethod
    def norm(vectors: torch.Tensor) -> torch.Tensor:
        """Each row's norm: ``(N, dim) -> (N,)``."""

    def __call__(
        self, query_embeddings: torch.Tensor, doc_embeddings: torch.Tensor
    ) -> torch.Tensor:
        query_loss = _mean_over_rows(self.norm(_as_vectors(query_embeddings)))  # ()
        doc_loss = _mean_over_rows(self.norm(_as_vectors(doc_embeddings)))  # ()
        return self.query_weight * query_loss + self.doc_weight * doc_loss


class L1Regularization(_MeanNormRegularization):
    """L1 regularization: shrink embeddings by the mean L1 norm of the vectors (favours zeros).

    Formula::

        L = query_weight * mean_i ||q_i||_1 + doc_weight * mean_j ||d_j||_1

    Args:
        query_weight: weight of the query term (default 1e-4).
        doc_weight: weight of the doc term (default 1e-4).

    References:
        Tibshirani, "Regression Shrinkage and Selection via the Lasso", Journal of the Royal
        Statistical Society Series B 58(1), 1996.

    Inputs:
        Query and doc embeddings ``(N, dim)``. Meant for sparse (SPLADE-style) models but valid for
        dense ones.

    Relations:
        :class:`FLOPSRegularization` penalises the squared mean activation per dimension instead,
        which spreads non-zeros across dimensions; :class:`L2Regularization` shrinks without
        favouring exact zeros. Always combine with a ranking loss.

    Differs from lightning-ir:
        Computed in float32; an empty embedding batch gives 0 instead of NaN.

    Example:
        >>> import torch
        >>> L1Regularization(1.0, 0.0)(torch.tensor([[1.0, -2.0]]), torch.zeros(1, 2))
        tensor(3.)
    """

    @staticmethod
    def norm(vectors: torch.Tensor) -> torch.Tensor:
        return vectors.abs().sum(dim=-1)  # (N,)


class L2Regularization(_MeanNormRegularization):
    """L2 regularization: shrink embeddings by the mean (unsquared) L2 norm of the vectors.

    Formula::

        L = query_weight * mean_i ||q_i||_2 + doc_weight * mean_j ||d_j||_2

    Args:
        query_weight: weight of the query term (default 1e-4).
        doc_weight: weight of the doc term (default 1e-4).

    References:
        Hoerl and Kennard, "Ridge Regression: Biased Estimation for Nonorthogonal Problems",
        Technometrics 12(1), 1970.

    Inputs:
        Query and doc embeddings ``(N, dim)``.

    Relations:
        :class:`L1Regularization` with the L2 norm; note the norm is not squared (as in the
        reference), so it is not weight decay. :class:`FLOPSRegularization` targets sparsity.

    Differs from lightning-ir:
        Computed in float32; an empty embedding batch gives 0 instead of NaN; an all-zero vector
        has zero gradient (the norm's subgradient at 0).

    Example:
        >>> import torch
        >>> L2Regularization(1.0, 0.0)(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2))
        tensor(5.)
    """

    @staticmethod
    def norm(vectors: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(vectors, dim=-1)  # (N,)


class FLOPSRegularization(RegularizationLossFunction):
    """FLOPS regularization: penalise dimensions that are active for many vectors of the batch.

    Formula (``k`` runs over the embedding dimensions)::

        L = query_weight * sum_k (mean_i |q_ik|)^2 + doc_weight * sum_k (mean_j |d_jk|)^2

    a smooth proxy for the number of floating-point operations of an inverted-index search.

    Args:
        query_weight: weight of the query term (default 1e-4; SPLADE uses e.g. 8e-4 with warmup).
        doc_weight: weight of the doc term (default 1e-4; SPLADE uses e.g. 6e-4 with warmup).

    References:
        Paria, Yeh, Yen, Xu, Ravikumar and Póczos, "Minimizing FLOPs to Learn Efficient Sparse
        Representations", ICLR 2020. Formal, Piwowarski and Clinchant, "SPLADE: Sparse Lexical and
        Expansion Model for First Stage Ranking", SIGIR 2021.

    Inputs:
        Query and doc embeddings of a sparse (SPLADE-style, non-negative, vocabulary-sized) model.
        Always combine with a ranking loss and warm the weights up (a weight scheduler).

    Relations:
        Unlike :class:`L1Regularization` (which penalises each vector's mass), squaring the
        per-dimension mean pushes towards dimensions that are rarely active across the batch, i.e.
        short posting lists.

    Differs from lightning-ir:
        Computed in float32; an empty embedding batch gives 0 instead of NaN.

    Example:
        >>> import torch
        >>> FLOPSRegularization(1.0, 0.0)(torch.tensor([[1.0, 0.0], [1.0, 2.0]]), torch.zeros(1, 2))
        tensor(2.)
    """

    needs: ClassVar[Needs] = Needs.EMBEDDINGS | Needs.SPARSE

    def __call__(
        self, query_embeddings: torch.Tensor, doc_embeddings: torch.Tensor
    ) -> torch.Tensor:
        queries = _as_vectors(query_embeddings)  # (Nq, dim)
        docs = _as_vectors(doc_embeddings)  # (Nd, dim)
        query_loss = _mean_over_rows(queries.abs()).square().sum()  # ()
        doc_loss = _mean_over_rows(docs.abs()).square().sum()  # ()
        return self.query_weight * query_loss + self.doc_weight * doc_loss
