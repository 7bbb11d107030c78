"""Bi-encoder configurations: how queries and docs are turned into vectors and compared."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Pooling = Literal["first", "mean", "max"]
Similarity = Literal["dot", "cosine"]


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
    """

    query_length: int = 32
    doc_length: int = 180
    pooling: Pooling = "first"
    similarity: Similarity = "dot"
    random_init: bool = False
    backbone_overrides: dict[str, Any] = field(default_factory=dict)

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
    """A dense passage retriever (Karpukhin et al., "Dense Passage Retrieval for Open-Domain
    Question Answering", EMNLP 2020): one dense vector per text, compared by dot product."""
