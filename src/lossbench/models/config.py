"""Model configurations: how a bi-encoder turns queries and docs into vectors and compares them, and
how a cross-encoder reads a query and a doc together.

Each config says what it is (class attributes, read by the checks and the run's stages, never a
class name): :attr:`BiEncoderConfig.reranks` (False: it indexes a corpus and searches it; True for
:class:`CrossEncoderConfig`: it re-ranks a first stage's candidates) and ``provides`` (what, besides
each query's ``(Q, D)`` scores, it gives the losses: :class:`~lossbench.loss.Needs` flags).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

from lossbench.loss.base import Needs

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
    reranks: ClassVar[bool] = False
    """Whether the model re-ranks a first stage's candidates (True) or indexes the corpus itself."""
    provides: ClassVar[Needs] = Needs.EMBEDDINGS | Needs.IN_BATCH
    """What the model gives the losses besides each query's own ``(Q, D)`` scores."""

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


@dataclass
class CrossEncoderConfig:
    """A cross-encoder (monoBERT): the query and a doc read together as one sequence, a score from it.

    Formula (``h`` the backbone's token states, ``pool`` over the sequence's real tokens)::

        score(q, d) = w · pool(h([CLS] q [SEP] d [SEP])) (+ b)

    The score head ``w`` (and ``b`` with ``linear_bias``) starts fresh. Each pair costs a forward
    pass, so a cross-encoder cannot index a corpus: it re-ranks a first stage's top ``k``
    (``first_stage=bm25|run_file|model``). It gives the losses each query's ``(Q, D)`` scores only:
    no embeddings (regularizers) and no scores against the other queries' docs (in-batch losses).

    Truncation: the query is cut to ``query_length`` tokens and the doc to ``doc_length``; if the
    pair (special tokens included) is still longer than ``max_length``, the doc is cut further (the
    query is cut only when it alone does not fit).

    References:
        Nogueira and Cho, "Passage Re-ranking with BERT", arXiv:1901.04085, 2019.

    Args:
        query_length: max tokens of the query part.
        doc_length: max tokens of the doc part.
        max_length: max tokens of the whole sequence, special tokens included (None: room for both
            parts, ``query_length + doc_length`` plus the tokenizer's special tokens).
        pooling: ``first`` (the [CLS] token, monoBERT), ``mean`` or ``max`` over the real tokens.
        linear_bias: give the score head a bias (a constant shift: it changes no ranking, but a
            pointwise loss such as BCE can use it).
        random_init: build the backbone from its config with fresh random weights (tests, ablations).
        backbone_overrides: fields replaced in the backbone's config, e.g. ``num_hidden_layers: 2``.
    """

    reranks: ClassVar[bool] = True
    provides: ClassVar[Needs] = Needs.NOTHING

    query_length: int = 32
    doc_length: int = 180
    max_length: int | None = None
    pooling: Pooling = "first"
    linear_bias: bool = False
    random_init: bool = False
    backbone_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pooling not in ("first", "mean", "max"):
            raise ValueError(f"pooling={self.pooling!r}; valid: first, mean, max")
        if self.query_length < 1 or self.doc_length < 1:
            raise ValueError("query_length and doc_length must be positive")
        if self.max_length is not None and self.max_length <= self.query_length:
            raise ValueError(
                f"max_length={self.max_length} leaves no room for the doc after a query of up to "
                f"query_length={self.query_length} tokens; raise max_length (or null: both fit)"
            )
        self.backbone_overrides = dict(self.backbone_overrides or {})

    def to_dict(self) -> dict[str, Any]:
        return {"class": type(self).__name__, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrossEncoderConfig:
        """The config written by :meth:`to_dict`."""
        data = dict(data)
        name = data.pop("class", cls.__name__)
        if name != cls.__name__:
            raise ValueError(f"{name} is not a cross-encoder config; expected {cls.__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
        return cls(**data)
