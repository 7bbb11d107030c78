"""What the datasets yield: a training sample (a query, its candidates and targets) and a text to encode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainSample:
    """One query with its candidate docs (best first where the source has an order) and targets."""

    query_id: str
    query_text: str
    doc_ids: list[str]
    doc_texts: list[str]
    targets: list[float]


@dataclass
class TextSample:
    """One query or doc to encode."""

    id: str
    text: str


@dataclass
class TokenizedSample(TextSample):
    """A doc whose token ids are known already (from a :class:`~lossbench.data.token_store.CorpusTokens`
    store): the collator pads them instead of tokenizing the text."""

    token_ids: Any = None  # (L,) integer array


def doc_texts(docs: Mapping[str, str], doc_ids: Sequence[str], owner: str) -> list[str]:
    """The texts of ``doc_ids``, failing with the missing id and who asked."""
    try:
        return [docs[d] for d in doc_ids]
    except KeyError as error:
        raise KeyError(f"{owner!r}: doc {error.args[0]!r} has no text in the docs") from None
