"""Token ids of texts already tokenized, so that later encoding passes only run the model.

A run encodes the same corpus several times: untrained, at every validation, and at the end. On a
GPU the tokenizer, not the model, bounds each pass for a small model such as MiniLM-L6
(``bench/RESULTS.md``). :class:`TokenCache` keeps
each text's ids (``uint16`` where the vocabulary fits, else ``int32``), keyed by the text and the
token limit, so a pass after the first builds its batches from memory.

The cache is bounded (``max_mib``): past the bound it stops adding and the remaining texts are
tokenized at every pass, as without a cache. Keys are texts, not ids, so two collections with the
same doc ids never mix; a cache belongs to one tokenizer (each module holds its own). One thread
adds at a time (the encoding pass's tokenizing thread, or the main process).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lossbench.data.token_ids import token_id_rows

# per entry beyond the ids and the text: the numpy array's header and the dict slot (rounded up)
ENTRY_OVERHEAD_BYTES = 160


class TokenCache:
    """Token ids per ``(max_length, special tokens or not, text)``, at most ``max_mib`` MiB of them (0: keep nothing)."""

    def __init__(self, max_mib: float = 512) -> None:
        if max_mib < 0:
            raise ValueError(f"max_mib={max_mib}: expected >= 0 (0 turns the cache off)")
        self.max_bytes = int(max_mib * 2**20)
        self.bytes = 0
        self.full = self.max_bytes == 0
        self._ids: dict[tuple[int, bool, str], np.ndarray] = {}

    def __reduce__(self) -> tuple[type[TokenCache], tuple[float]]:
        """A copy or a pickle (a deep-copied module, a spawned process) starts empty, same bound."""
        return (TokenCache, (self.max_bytes / 2**20,))

    def __len__(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        self._ids.clear()
        self.bytes = 0
        self.full = self.max_bytes == 0

    def tokenize(
        self, tokenizer: Any, texts: Sequence[str], max_length: int
    ) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of ``texts``, padded to the longest, exactly as the
        tokenizer pads them; only the texts not cached yet go through the tokenizer."""
        rows = self.token_ids(tokenizer, texts, max_length)
        return pad_rows(rows, tokenizer.pad_token_id or 0, tokenizer.padding_side)

    def token_ids(
        self,
        tokenizer: Any,
        texts: Sequence[str],
        max_length: int,
        add_special_tokens: bool = True,
    ) -> list[np.ndarray]:
        """Each text's token ids, cut to ``max_length`` (with the tokenizer's special tokens, or
        without: a cross-encoder's query and doc parts); only texts not cached yet are tokenized."""
        key = (max_length, add_special_tokens)
        rows: list[np.ndarray | None] = [self._ids.get((*key, text)) for text in texts]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            missing_texts = [texts[i] for i in missing]
            encoded = token_id_rows(tokenizer, missing_texts, max_length, add_special_tokens)
            for i, row in zip(missing, encoded, strict=True):
                rows[i] = row
            self._add(missing_texts, encoded, key)
        return rows  # type: ignore[return-value]

    def _add(self, texts: list[str], rows: list[Any], key: tuple[int, bool]) -> None:
        if self.full:
            return
        for text, row in zip(texts, rows, strict=True):
            size = row.nbytes + len(text) + ENTRY_OVERHEAD_BYTES
            if self.bytes + size > self.max_bytes:
                self.full = True
                return
            self._ids[(*key, text)] = row
            self.bytes += size


def pad_rows(
    rows: Sequence[np.ndarray], pad_id: int, side: str = "right"
) -> dict[str, torch.Tensor]:
    """Stack token-id rows into ``(B, longest)`` ``input_ids`` (int64) and ``attention_mask``."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max()) if len(rows) else 0
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        n = len(row)
        if side == "left":
            ids[i, width - n :] = row
            mask[i, width - n :] = 1
        else:
            ids[i, :n] = row
            mask[i, :n] = 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
