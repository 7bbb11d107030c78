"""Content fingerprints of what a cached result depends on: a corpus, a split, a tokenizer, weights.

A cache entry under ``paths.cache`` is found by a hash of what produced it, so each input is
identified by its content, never by a name or a path: a regenerated collection, an edited file or
retrained weights change the fingerprint and the entry is recomputed. Each fingerprint reads its
input once (a corpus: one pass over the texts, far cheaper than tokenizing or encoding them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import torch


def _update_text(sha: Any, *fields: str) -> None:
    for value in fields:
        data = value.encode("utf-8")
        sha.update(len(data).to_bytes(8, "little"))  # length-prefixed: no two sequences collide
        sha.update(data)


def texts_fingerprint(items: Iterable[tuple[str, str]]) -> str:
    """SHA-256 (hex) over ``(id, text)`` pairs in their order (a corpus: its iteration order)."""
    sha = hashlib.sha256()
    count = 0
    for item_id, text in items:
        _update_text(sha, str(item_id), text)
        count += 1
    sha.update(count.to_bytes(8, "little"))
    return sha.hexdigest()


def corpus_fingerprint(docs: Mapping[str, str]) -> str:
    """The fingerprint of a corpus: every doc id and text, in the order indexing reads them."""
    return texts_fingerprint(docs.items())


def split_fingerprint(collection: Any, split: str) -> str:
    """The judged queries of ``split`` (ids and texts, sorted by id) and their qrels."""
    sha = hashlib.sha256()
    queries = collection.split_queries(split)
    qrels = collection.qrels.get(split, {})
    for query_id in sorted(queries):
        _update_text(sha, query_id, queries[query_id])
        for doc_id, grade in sorted(qrels[query_id].items()):
            _update_text(sha, doc_id, str(int(grade)))
    return sha.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A fast tokenizer's full definition (vocabulary, normalizer, pre-tokenizer, post-processor
    that adds the special tokens), its class, truncation and padding side. The backend's truncation
    and padding state is left out: each call sets it to that call's arguments."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        definition = json.dumps(state, sort_keys=True)
    else:  # a slow tokenizer: its vocabulary and special tokens
        definition = repr(sorted(tokenizer.get_vocab().items())) + repr(
            tokenizer.special_tokens_map
        )
    sha = hashlib.sha256()
    _update_text(
        sha,
        type(tokenizer).__name__,
        definition,
        str(getattr(tokenizer, "truncation_side", "right")),
        str(getattr(tokenizer, "padding_side", "right")),
    )
    return sha.hexdigest()


def weights_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 (hex) over a module's parameters and buffers: names, types, shapes and bytes (a
    random-init model's weights depend on the seed, a pretrained one's do not: both show here)."""
    sha = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        _update_text(sha, name, str(flat.dtype), repr(tuple(tensor.shape)))
        sha.update(flat.view(torch.uint8).numpy().data)
    return sha.hexdigest()
