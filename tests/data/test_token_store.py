"""The corpus's token ids on disk: equal to the tokenizer's, reused, rebuilt when stale or corrupt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lossbench.data.fingerprint import corpus_fingerprint
from lossbench.data.token_store import open_corpus_tokens

DOCS = {f"d{i}": " ".join(["ranking"] * (i % 40)) + f" doc number {i}" for i in range(60)}


@pytest.fixture
def tokenizer(tiny_module):  # noqa: ANN201
    return tiny_module.tokenizer


def test_ids_equal_the_tokenizers_and_a_second_open_reuses_them(tokenizer, tmp_path: Path) -> None:
    fingerprint = corpus_fingerprint(DOCS)
    store, reused = open_corpus_tokens(tmp_path, tokenizer, 32, DOCS, fingerprint)
    assert not reused
    expected = tokenizer(list(DOCS.values()), max_length=32, truncation=True)["input_ids"]
    assert len(store) == len(DOCS)
    for position, ids in enumerate(expected):
        assert store.row(position).tolist() == ids
    again, reused = open_corpus_tokens(tmp_path, tokenizer, 32, DOCS, fingerprint)
    assert reused and again.path == store.path
    assert isinstance(again.ids, np.memmap)


def test_another_corpus_or_length_is_another_store(tokenizer, tmp_path: Path) -> None:
    store, _ = open_corpus_tokens(tmp_path, tokenizer, 32, DOCS, corpus_fingerprint(DOCS))
    changed = {**DOCS, "d0": "an edited text"}
    other, reused = open_corpus_tokens(
        tmp_path, tokenizer, 32, changed, corpus_fingerprint(changed)
    )
    assert not reused and other.path != store.path
    assert (
        other.row(0).tolist()
        == tokenizer("an edited text", max_length=32, truncation=True)["input_ids"]
    )
    shorter, reused = open_corpus_tokens(tmp_path, tokenizer, 8, DOCS, corpus_fingerprint(DOCS))
    assert not reused and max(len(shorter.row(i)) for i in range(len(DOCS))) == 8


def test_a_stale_key_in_the_file_is_rebuilt(tokenizer, tmp_path: Path) -> None:
    """A file at the key's name whose header names another corpus (a copied or stale file)."""
    fingerprint = corpus_fingerprint(DOCS)
    store, _ = open_corpus_tokens(tmp_path, tokenizer, 32, DOCS, fingerprint)
    changed = {**DOCS, "d1": "another text"}
    stale, _ = open_corpus_tokens(tmp_path, tokenizer, 32, changed, corpus_fingerprint(changed))
    path = store.path
    del store
    path.write_bytes(stale.path.read_bytes())  # the other corpus's ids under this key's name
    rebuilt, reused = open_corpus_tokens(tmp_path, tokenizer, 32, DOCS, fingerprint)
    assert not reused
    assert (
        rebuilt.row(1).tolist()
        == tokenizer(DOCS["d1"], max_length=32, truncation=True)["input_ids"]
    )


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_corrupt_file_is_rebuilt_never_trusted(tokenizer, tmp_path: Path, damage: str) -> None:
    fingerprint = corpus_fingerprint(DOCS)
    store, _ = open_corpus_tokens(tmp_path, tokenizer, 32, DOCS, fingerprint)
    path, data = store.path, bytearray(store.path.read_bytes())
    del store
    if damage == "flip":
        data[-3] ^= 0xFF  # one token id changed
    elif damage == "truncate":
        data = data[: len(data) - 10]
    else:
        data = bytearray(b"not a token store")
    path.write_bytes(bytes(data))
    rebuilt, reused = open_corpus_tokens(tmp_path, tokenizer, 32, DOCS, fingerprint)
    assert not reused
    expected = tokenizer(list(DOCS.values()), max_length=32, truncation=True)["input_ids"]
    assert [rebuilt.row(i).tolist() for i in range(len(DOCS))] == expected


class CountingTokenizer:
    """A tokenizer that counts the calls it tokenizes (everything else delegated)."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001
        self.tokenizer, self.calls = tokenizer, 0

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        self.calls += 1
        return self.tokenizer(*args, **kwargs)

    def __len__(self) -> int:
        return len(self.tokenizer)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.tokenizer, name)


def test_encoding_through_the_store_skips_the_tokenizer_and_gives_the_same_vectors(
    tiny_module, tmp_path: Path
) -> None:
    from lossbench.retrieval.encode import corpus_tokens_for, iter_encoded_docs

    tiny_module.token_cache.max_bytes = 0  # no in-memory cache either: every text is tokenized
    tiny_module.token_cache.full = True
    length = tiny_module.config.doc_length
    store, _ = open_corpus_tokens(
        tmp_path, tiny_module.tokenizer, length, DOCS, corpus_fingerprint(DOCS)
    )
    counting = CountingTokenizer(tiny_module.tokenizer)
    tiny_module.tokenizer = counting
    plain = dict(_vectors(iter_encoded_docs(tiny_module, DOCS.items(), 16, progress=False)))
    assert counting.calls > 0 and corpus_tokens_for(tiny_module, DOCS) is None
    tiny_module.corpus_tokens, counting.calls = store, 0
    assert corpus_tokens_for(tiny_module, DOCS) is store
    assert corpus_tokens_for(tiny_module, dict(DOCS)) is None  # another mapping: not its ids
    stored = iter_encoded_docs(
        tiny_module, DOCS.items(), 16, store=corpus_tokens_for(tiny_module, DOCS), progress=False
    )
    from_store = dict(_vectors(stored))
    assert counting.calls == 0
    assert from_store.keys() == plain.keys()
    for doc_id, vector in plain.items():
        assert torch.equal(from_store[doc_id], vector)


def _vectors(batches):  # noqa: ANN001, ANN202
    for doc_ids, vectors in batches:
        yield from zip(doc_ids, vectors.cpu(), strict=True)
