"""Bi-encoder configurations: how queries and docs are turned into vectors and compared."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

Pooling = Literal["first", "mean", "max"]
Similarity = Literal["dot", "cosine"]
Projection = Literal["linear", "linear_no_bias"]


@dataclass
class BiEncoderConfig:
    """What every bi-encoder shares.

    Args:
        query_length: max tokens of a query (longer ones are truncated).
        doc_length: max tokens of a doc.
        pooling: ``first`` (the [CLS] token), ``mean`` or ``max`` over real tokens (padding masked).
        similarity: ``dot`` product or ``cosine`` (the L2-normalized dot product).
        random_init: build the backbone from its config with fresh random weights (tests, ablations).
        backbone_overrides: fields replaced in the backbone's config, e.g. ``num_hidden_layers: 2``.
        shared_encoder: one encoder for queries and docs (True, the usual bi-encoder), or two
            separately trained encoders of the same architecture and initialization (False).
    """

    sparse: ClassVar[bool] = False
    """Whether the vectors are sparse and vocabulary-sized (indexed by a sparse inverted index)."""

    query_length: int = 32
    doc_length: int = 180
    pooling: Pooling = "first"
    similarity: Similarity = "dot"
    random_init: bool = False
    backbone_overrides: dict[str, Any] = field(default_factory=dict)
    shared_encoder: bool = True

    def __post_init__(self) -> None:
        if self.pooling not in ("first", "mean", "max"):
            raise ValueError(f"pooling={self.pooling!r}; valid: first, mean, max")
        if self.similarity not in ("dot", "cosine"):
            raise ValueError(f"similarity={self.similarity!r}; valid: dot, cosine")
        if self.query_length < 1 or self.doc_length < 1:
            raise ValueError("query_length and doc_length must be positive")
        self.backbone_overrides = dict(self.backbone_overrides or {})

    def to_dict(self) -> dict[str, Any]:
        return {"class": type(self).__name__, **asdict(self)}


@dataclass
class DprConfig(BiEncoderConfig):
    """A dense passage retriever: one dense vector per text, compared by dot product (or cosine).

    Formula: ``v = normalize?(W · pool(BERT(text)) + b)`` with the projection ``W, b`` optional, and
    ``score(q, d) = <v_q, v_d>``.

    References:
        Karpukhin, Oguz, Min, Lewis, Wu, Edunov, Chen and Yih, "Dense Passage Retrieval for
        Open-Domain Question Answering", EMNLP 2020.

    Args:
        projection: ``None`` (the pooled hidden state is the vector), ``linear`` or
            ``linear_no_bias``: a linear layer from the hidden size to ``embedding_dim``, applied
            after pooling.
        embedding_dim: output size of the projection (None: the backbone's hidden size). Only
            valid with a projection.
        normalize: L2-normalize the vectors (with ``similarity=dot`` this is cosine similarity).
    """

    projection: Projection | None = None
    embedding_dim: int | None = None
    normalize: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.projection not in (None, "linear", "linear_no_bias"):
            raise ValueError(f"projection={self.projection!r}; valid: null, linear, linear_no_bias")
        if self.embedding_dim is not None:
            if self.projection is None:
                raise ValueError(
                    f"embedding_dim={self.embedding_dim} needs a projection: set projection=linear "
                    "(or drop embedding_dim to keep the backbone's hidden size)"
                )
            if self.embedding_dim < 1:
                raise ValueError(f"embedding_dim must be positive, got {self.embedding_dim}")


@dataclass
class SpladeConfig(BiEncoderConfig):
    """SPLADE: a sparse, vocabulary-sized vector per text, built from the MLM head's logits.

    Formula (``w_ij`` the MLM logit of vocabulary term ``j`` at token ``i``, ``M`` the real tokens)::

        v_j = max_{i in M} log(1 + relu(w_ij))            (pooling="max", SPLADE v2)
        v_j = mean_{i in M} log(1 + relu(w_ij))           (pooling="mean")
        score(q, d) = sum_j v_j(q) * v_j(d)

    The MLM head is dense -> activation -> LayerNorm -> decoder tied to the input embeddings (as in
    BERT); its pretrained weights are reused when the checkpoint has them, else it starts fresh.
    ``log(1 + relu(.))`` keeps the vector non-negative and saturates large logits; the FLOPS
    regularizer (``regularizer=flops``) then pushes most entries to exactly 0.

    References:
        Formal, Piwowarski and Clinchant, "SPLADE: Sparse Lexical and Expansion Model for First
        Stage Ranking", SIGIR 2021. Formal, Lassance, Piwowarski and Clinchant, "SPLADE v2:
        Sparse Lexical and Expansion Model for Information Retrieval", arXiv:2109.10086, 2021
        (max pooling).

    Args:
        pooling: ``max`` (default, SPLADE v2), ``mean`` or ``first`` over the real tokens.
        similarity: ``dot`` (the SPLADE score); ``cosine`` normalizes the vectors first.
    """

    sparse: ClassVar[bool] = True
    pooling: Pooling = "max"


CONFIG_CLASSES: dict[str, type[BiEncoderConfig]] = {
    cls.__name__: cls for cls in (BiEncoderConfig, DprConfig, SpladeConfig)
}


def config_from_dict(data: dict[str, Any]) -> BiEncoderConfig:
    """The config written by :meth:`BiEncoderConfig.to_dict` (``{"class": "SpladeConfig", ...}``)."""
    data = dict(data)
    name = data.pop("class", "DprConfig")
    if name not in CONFIG_CLASSES:
        raise ValueError(f"unknown config class {name!r}; valid: {', '.join(CONFIG_CLASSES)}")
    cls = CONFIG_CLASSES[name]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{name} has no field(s) {', '.join(unknown)}")
    return cls(**data)
