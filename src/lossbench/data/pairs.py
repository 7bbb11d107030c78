"""Query-doc pairs as one sequence for a cross-encoder: tokenizing with the length rules, training
batches, and the collator that builds them inside DataLoader workers.

A pair is ``prefix + query + middle + doc + suffix``: the special tokens around the two parts are
the tokenizer's own (``[CLS] q [SEP] d [SEP]`` for BERT, ``<s> q </s></s> d </s>`` for RoBERTa),
read once from how it encodes a pair (:class:`PairTemplate`). The parts are tokenized separately,
without special tokens, so each can be cut to its own limit (:class:`PairTokenizer`); Hugging
Face's pair truncation knows only a total length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lossbench.data.batches import OnDevice, padded_candidates
from lossbench.data.samples import TrainSample
from lossbench.data.token_cache import TokenCache


@dataclass(frozen=True)
class PairTemplate:
    """The special tokens a tokenizer puts around a pair, and their token type ids (None: the
    tokenizer gives none, e.g. RoBERTa)."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    types: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int, int] | None
    """``(prefix, middle, suffix, query part, doc part)`` token types."""

    @property
    def num_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def of(cls, tokenizer: Any) -> PairTemplate:
        """Read the template from how ``tokenizer`` encodes the pair ``("query", "document")``."""
        query = list(tokenizer("query", add_special_tokens=False)["input_ids"])
        doc = list(tokenizer("document", add_special_tokens=False)["input_ids"])
        pair = tokenizer("query", "document", return_token_type_ids=True)
        ids = list(pair["input_ids"])
        start = _find(ids, query, 0)
        doc_start = _find(ids, doc, start + len(query), last=True)
        if start < 0 or doc_start < 0:
            raise ValueError(
                f"{type(tokenizer).__name__} does not encode a pair as prefix + query + middle + "
                "doc + suffix; a cross-encoder needs a tokenizer that does (BERT, RoBERTa, ...)"
            )
        query_end, doc_end = start + len(query), doc_start + len(doc)
        types = pair.get("token_type_ids")
        return cls(
            prefix=tuple(ids[:start]),
            middle=tuple(ids[query_end:doc_start]),
            suffix=tuple(ids[doc_end:]),
            types=None
            if types is None
            else (
                tuple(types[:start]),
                tuple(types[query_end:doc_start]),
                tuple(types[doc_end:]),
                int(types[start]),
                int(types[doc_start]),
            ),
        )


def _find(haystack: list[int], needle: list[int], start: int, last: bool = False) -> int:
    """The first (or last) position >= ``start`` where ``needle`` occurs in ``haystack``, or -1."""
    positions = range(start, len(haystack) - len(needle) + 1)
    for i in reversed(positions) if last else positions:
        if haystack[i : i + len(needle)] == needle:
            return i
    return -1


@dataclass
class PairRow:
    """One tokenized pair: its token ids and token types (None without types), unpadded."""

    ids: np.ndarray
    types: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids)


class PairTokenizer:
    """Tokenize query-doc pairs into one sequence each, with the cross-encoder's length rules.

    The query keeps at most ``query_length`` tokens and the doc ``doc_length``; the whole sequence,
    special tokens included, at most ``max_length`` (None: both parts fit), the doc being cut
    further to fit and the query only when it alone does not. Each distinct text of a call is
    tokenized once (a query's candidates share it), through ``cache`` when given.
    """

    def __init__(
        self,
        tokenizer: Any,
        query_length: int,
        doc_length: int,
        max_length: int | None = None,
        cache: TokenCache | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.template = PairTemplate.of(tokenizer)
        self.query_length = query_length
        self.doc_length = doc_length
        self.max_length = max_length or query_length + doc_length + self.template.num_special
        self.cache = cache
        self.pad_id = int(tokenizer.pad_token_id or 0)

    def _ids(self, texts: Sequence[str], limit: int) -> list[np.ndarray]:
        """Each text's token ids without special tokens, cut to ``limit``."""
        unique = list(dict.fromkeys(texts))
        cache = self.cache if self.cache is not None else TokenCache(0)  # 0: tokenize, keep nothing
        rows = cache.token_ids(self.tokenizer, unique, limit, add_special_tokens=False)
        by_text = dict(zip(unique, rows, strict=True))
        return [by_text[text] for text in texts]

    def rows(self, queries: Sequence[str], docs: Sequence[str]) -> list[PairRow]:
        """The pairs ``(queries[i], docs[i])``, each as one sequence of token ids."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} docs: give one per pair")
        template = self.template
        budget = self.max_length - template.num_special
        query_ids = self._ids(queries, min(self.query_length, budget))
        doc_ids = self._ids(docs, self.doc_length)
        prefix, middle, suffix = (
            np.asarray(part, dtype=np.int64)
            for part in (template.prefix, template.middle, template.suffix)
        )
        rows = []
        for query, doc in zip(query_ids, doc_ids, strict=True):
            doc = doc[: budget - len(query)]
            ids = np.concatenate([prefix, query, middle, doc, suffix])
            rows.append(PairRow(ids, self._types(len(query), len(doc))))
        return rows

    def _types(self, query_length: int, doc_length: int) -> np.ndarray | None:
        if self.template.types is None:
            return None
        prefix, middle, suffix, query_type, doc_type = self.template.types
        return np.concatenate(
            [
                np.asarray(prefix, dtype=np.int64),
                np.full(query_length, query_type, dtype=np.int64),
                np.asarray(middle, dtype=np.int64),
                np.full(doc_length, doc_type, dtype=np.int64),
                np.asarray(suffix, dtype=np.int64),
            ]
        )

    def pad(self, rows: Sequence[PairRow], fixed_length: bool = False) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask`` (and ``token_type_ids``) ``(B, L)``: padded on the
        right to the longest row, or to ``max_length`` with ``fixed_length``."""
        width = self.max_length if fixed_length else max((len(row) for row in rows), default=0)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            n = len(row)
            ids[i, :n] = row.ids
            mask[i, :n] = 1
            if row.types is not None:
                types[i, :n] = row.types
        encoding = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.template.types is not None:
            encoding["token_type_ids"] = torch.from_numpy(types)
        return encoding

    def __call__(
        self, queries: Sequence[str], docs: Sequence[str], fixed_length: bool = False
    ) -> dict[str, torch.Tensor]:
        """The pairs ``(queries[i], docs[i])`` tokenized and padded (see :meth:`pad`)."""
        return self.pad(self.rows(queries, docs), fixed_length)


@dataclass
class PairBatch(OnDevice):
    """One cross-encoder training batch: Q queries, each with up to D candidate docs, as query-doc
    pairs. ``pair_encoding`` holds only the real pairs, in row-major order of ``doc_mask``."""

    query_ids: list[str]
    pair_encoding: dict[str, torch.Tensor]  # (N_real, L) each
    doc_mask: torch.Tensor  # (Q, D) bool
    targets: torch.Tensor  # (Q, D) float


class PairCollator:
    """Pairs each query with each of its candidates, tokenizes the pairs, pads the candidate lists.

    ``fixed_length`` pads every pair to ``max_length`` (a compiled model then sees one shape).
    """

    def __init__(self, pairs: PairTokenizer, fixed_length: bool = False) -> None:
        self.pairs = pairs
        self.fixed_length = fixed_length

    def __call__(self, samples: list[TrainSample]) -> PairBatch:
        mask, targets = padded_candidates(samples)
        queries = [sample.query_text for sample in samples for _ in sample.doc_texts]
        docs = [text for sample in samples for text in sample.doc_texts]
        return PairBatch(
            query_ids=[sample.query_id for sample in samples],
            pair_encoding=self.pairs(queries, docs, self.fixed_length),
            doc_mask=mask,
            targets=targets,
        )
