"""TokenCache: the same tensors as the tokenizer, bounded, and no tokenizer call for cached texts."""

from __future__ import annotations

import copy

import pytest
import torch

from lossbench.data.batches import _tokenize
from lossbench.data.token_cache import TokenCache

TEXTS = [
    "one",
    "a somewhat longer text here",
    "two words",
    "a text long enough to be truncated " * 3,
]


class CountingTokenizer:
    """Wraps a tokenizer and counts the texts it is asked to tokenize."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001
        self.inner, self.texts = tokenizer, 0

    def __call__(self, texts, **kwargs):  # noqa: ANN001, ANN003, ANN204
        self.texts += len(texts)
        return self.inner(texts, **kwargs)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)


@pytest.mark.parametrize("side", ["right", "left"])
def test_cached_batches_equal_the_tokenizers_own(tiny_module, side: str) -> None:  # noqa: ANN001
    tokenizer = copy.deepcopy(tiny_module.tokenizer)
    tokenizer.padding_side = side
    cache = TokenCache()
    for _ in range(2):  # cold, then from the cache
        got = cache.tokenize(tokenizer, TEXTS, 8)
        want = _tokenize(tokenizer, TEXTS, 8)
        assert torch.equal(got["input_ids"], want["input_ids"])
        assert torch.equal(got["attention_mask"], want["attention_mask"])
        assert got["input_ids"].dtype == torch.long


def test_cached_texts_skip_the_tokenizer_and_keys_include_the_length(tiny_module) -> None:  # noqa: ANN001
    tokenizer = CountingTokenizer(tiny_module.tokenizer)
    cache = TokenCache()
    cache.tokenize(tokenizer, TEXTS[:2], 8)
    assert tokenizer.texts == 2 and len(cache) == 2
    cache.tokenize(tokenizer, TEXTS, 8)  # two new texts
    assert tokenizer.texts == 4
    cache.tokenize(tokenizer, list(reversed(TEXTS)), 8)  # all cached, any order
    assert tokenizer.texts == 4
    cache.tokenize(tokenizer, TEXTS[:1], 16)  # another token limit is another entry
    assert tokenizer.texts == 5 and len(cache) == 5


def test_the_cache_stops_growing_at_its_bound_and_still_answers(tiny_module) -> None:  # noqa: ANN001
    tokenizer = CountingTokenizer(tiny_module.tokenizer)
    cache = TokenCache(max_mib=400 / 2**20)  # room for two short entries (~180 bytes each)
    cache.tokenize(tokenizer, TEXTS, 8)
    assert cache.full and len(cache) == 2 and cache.bytes <= cache.max_bytes
    want = _tokenize(tiny_module.tokenizer, TEXTS, 8)
    assert torch.equal(cache.tokenize(tokenizer, TEXTS, 8)["input_ids"], want["input_ids"])
    off = TokenCache(max_mib=0)
    off.tokenize(tokenizer, TEXTS, 8)
    assert len(off) == 0
    with pytest.raises(ValueError, match="max_mib"):
        TokenCache(max_mib=-1)


def test_a_copied_cache_starts_empty_with_the_same_bound(tiny_module) -> None:  # noqa: ANN001
    cache = TokenCache(max_mib=3)
    cache.tokenize(tiny_module.tokenizer, TEXTS, 8)
    clone = copy.deepcopy(cache)
    assert len(clone) == 0 and clone.max_bytes == cache.max_bytes
