"""Texts as rows of token ids, unpadded and in the smallest integer type the vocabulary fits.

The one way lossbench tokenizes ahead of batching: the in-memory
:class:`~lossbench.data.token_cache.TokenCache` and the on-disk corpus store
(:mod:`lossbench.data.token_store`) both hold these rows, and
:func:`~lossbench.data.token_cache.pad_rows` turns a batch of them into model inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IDS_ONLY: dict[str, bool] = {
    "truncation": True,
    "padding": False,
    "return_attention_mask": False,
    "return_token_type_ids": False,
}
"""What the tokenizer is asked for: each text's ids, cut at the limit, without padding or masks."""


def id_dtype(tokenizer: Any) -> np.dtype:
    """``uint16`` where every id of the vocabulary fits (BERT's 30,522 do), else ``int32``."""
    return np.dtype(np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32)


def token_id_rows(
    tokenizer: Any, texts: Sequence[str], max_length: int, add_special_tokens: bool = True
) -> list[np.ndarray]:
    """Each text's ids, cut to ``max_length`` (with the tokenizer's special tokens, or without: a
    cross-encoder's query and doc parts), as arrays of :func:`id_dtype`; nothing padded."""
    encoded = tokenizer(
        list(texts), max_length=max_length, add_special_tokens=add_special_tokens, **IDS_ONLY
    )["input_ids"]
    dtype = id_dtype(tokenizer)
    return [np.asarray(ids, dtype=dtype) for ids in encoded]
