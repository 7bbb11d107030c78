"""Model configurations: how a bi-encoder turns queries and docs into vectors and compares them, and
how a cross-encoder reads a query and a doc together.

Each config says what it is (class attributes, read by the checks and the run's stages, never a
class name): :attr:`BiEncoderConfig.reranks` (False: it indexes a corpus and searches it; True for
:class:`CrossEncoderConfig`: it re-ranks a first stage's candidates), ``trainable`` (False for
:class:`~lossbench.models.lexical.LexicalConfig`: a run evaluates it as it is) and ``provides`` (what, besides
each query's ``(Q, D)`` scores, it gives the losses: :class:`~lossbench.loss.Needs` flags).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from lossbench.retrieval.base import VectorKind

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
        score_scale: what the losses see is ``score_scale`` x the similarity. Cosine scores lie in
            [-1, 1], too flat for a softmax or a sigmoid: sentence-transformers trains its cosine
            models (all-MiniLM-L6-v2 among them) with the scores x 20. Rankings, indexes and run
            files are unchanged by it; only training is.
        random_init: build the backbone from its config with fresh random weights (tests, ablations).
        backbone_overrides: fields replaced in the backbone's config, e.g. ``num_hidden_layers: 2``.
        shared_encoder: one encoder for queries and docs (True, the usual bi-encoder), or two
            separately trained encoders of the same architecture and initialization (False).
    """

    vectors: ClassVar[VectorKind] = "dense"
    """What the encoder makes of a text: one ``dense`` vector, one ``sparse`` vocabulary-sized
    vector, or a ``multi_vector`` (a vector per token); the index must take the same kind."""
    sparse: ClassVar[bool] = False
    """Whether the vectors are sparse and vocabulary-sized (``vectors == "sparse"``, set for every
    subclass from :attr:`vectors`)."""
    reranks: ClassVar[bool] = False
    """Whether the model re-ranks a first stage's candidates (True) or indexes the corpus itself."""
    trainable: ClassVar[bool] = True
    """Whether a run trains it (False: :class:`~lossbench.models.lexical.LexicalConfig`)."""
    provides: ClassVar[Needs] = Needs.EMBEDDINGS | Needs.IN_BATCH
    """What the model gives the losses besides each query's own ``(Q, D)`` scores."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.sparse = cls.vectors == "sparse"

    query_length: int = 32
    doc_length: int = 180
    pooling: Pooling = "first"
    similarity: Similarity = "dot"
    score_scale: float = 1.0
    random_init: bool = False
    backbone_overrides: dict[str, Any] = field(default_factory=dict)
    shared_encoder: bool = True

    def __post_init__(self) -> None:
        if self.pooling not in ("first", "mean", "max"):
            raise ValueError(f"pooling={self.pooling!r}; valid: first, mean, max")
        if self.similarity not in ("dot", "cosine"):
            raise ValueError(f"similarity={self.similarity!r}; valid: dot, cosine")
        if not self.score_scale > 0:
            raise ValueError(
                f"score_scale={self.score_scale}; it must be positive (1: the similarity as it is)"
            )
        if self.query_length < 1 or self.doc_length < 1:
            raise ValueError("query_length and doc_length must be positive")
        self.backbone_overrides = dict(self.backbone_overrides or {})

    def to_dict(self) -> dict[str, Any]:
        return {"class": type(self).__name__, **asdict(self)}

    def check_backbone(self, hidden_size: int, tokenizer: Any) -> None:
        """Raise a ``ValueError`` naming the fix when the backbone (its hidden size) or its
        tokenizer cannot carry this config; every backbone carries the single-vector ones."""


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

    vectors: ClassVar[VectorKind] = "sparse"
    pooling: Pooling = "max"


@dataclass
class ColConfig(BiEncoderConfig):
    """ColBERT: a vector per token, queries and docs compared by late interaction (MaxSim).

    Formula (``h_i`` the backbone's state of token ``i``, ``M_d`` the doc tokens that count)::

        E_i = normalize(W · h_i)                                  (a vector per token, dim)
        score(q, d) = sum_{i in q} max_{j in M_d} <E_i(q), E_j(d)>

    A query is padded to ``query_length`` with the tokenizer's mask token (query augmentation): the
    mask tokens attend to the query but are not attended to, and their vectors take part in the
    sum, a learned soft expansion of the query. A doc's padding and punctuation tokens get no
    vector (``M_d``). The encoder returns ``(B, L, dim)`` with every token that does not count as a
    zero vector (a real token's vector is never zero), which the scoring and indexes rely on.

    References:
        Khattab and Zaharia, "ColBERT: Efficient and Effective Passage Search via Contextualized
        Late Interaction over BERT", SIGIR 2020. Santhanam, Khattab, Saad-Falcon, Potts and
        Zaharia, "ColBERTv2: Effective and Efficient Retrieval via Lightweight Late Interaction",
        NAACL 2022 (mask tokens not attended to).

    Args:
        embedding_dim: size of each token vector (ColBERT: 128); at most the backbone's hidden size.
        projection: ``linear_no_bias`` (ColBERT's) or ``linear``: hidden size -> ``embedding_dim``.
        similarity: ``cosine`` (L2-normalized token vectors, ColBERT) or ``dot`` (raw ones).
        query_augmentation: pad queries to ``query_length`` with mask tokens (needs a tokenizer
            with a mask token); off, a query's padding tokens get no vector.
        mask_punctuation: docs' punctuation tokens (each of ``string.punctuation``) get no vector.
        pooling: not used: every token keeps its vector.

    ColBERT's ``[Q]``/``[D]`` marker tokens are not added (the backbone is used as it is).
    """

    vectors: ClassVar[VectorKind] = "multi_vector"
    provides: ClassVar[Needs] = Needs.IN_BATCH  # no single vector per text for a regularizer
    similarity: Similarity = "cosine"
    embedding_dim: int = 128
    projection: Projection = "linear_no_bias"
    query_augmentation: bool = True
    mask_punctuation: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.projection not in ("linear", "linear_no_bias"):
            raise ValueError(f"projection={self.projection!r}; valid: linear, linear_no_bias")
        if isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, int):
            raise ValueError(f"embedding_dim must be an integer, got {self.embedding_dim!r}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be positive, got {self.embedding_dim}")

    def check_backbone(self, hidden_size: int, tokenizer: Any) -> None:
        """The projection must compress the hidden state, and query augmentation needs a mask token."""
        if self.embedding_dim > hidden_size:
            raise ValueError(
                f"ColConfig.embedding_dim={self.embedding_dim} is larger than the backbone's hidden "
                f"size {hidden_size}: the projection compresses each token's state (ColBERT: 768 -> "
                f"128), and a wider vector only makes the index bigger; set embedding_dim <= "
                f"{hidden_size} (model.config.embedding_dim)"
            )
        if self.query_augmentation and getattr(tokenizer, "mask_token_id", None) is None:
            raise ValueError(
                "ColConfig.query_augmentation pads queries with the tokenizer's mask token, but "
                f"the tokenizer ({type(tokenizer).__name__}) has none; set query_augmentation=false "
                "(model.config.query_augmentation=false) or use a backbone whose tokenizer has one"
            )


CONFIG_CLASSES: dict[str, type[BiEncoderConfig]] = {
    cls.__name__: cls for cls in (BiEncoderConfig, DprConfig, SpladeConfig, ColConfig)
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
    trainable: ClassVar[bool] = True
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
