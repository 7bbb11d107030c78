"""A corpus's token ids on disk, memory-mapped, shared by every job and run that encodes it.

The in-memory :class:`~lossbench.data.token_cache.TokenCache` spares a run's later passes the
tokenizer; :class:`CorpusTokens` spares every later run its first pass too. One file per key =
(tokenizer definition, ``max_length``, special tokens, corpus fingerprint), under
``<paths.cache>/tokens``::

    LBTOKENS\\n  <header length, 8 bytes>  <JSON header>  <padding to 64 bytes>
    offsets  int64 (num_docs + 1)     doc d is ids[offsets[d] : offsets[d + 1]]
    ids      uint16 or int32          every doc's ids, doc after doc, in the corpus's order

The header holds the key, the sizes and the SHA-256 of the two arrays. :func:`open_corpus_tokens`
reads it back only when the header parses, names the same key and sizes, and the arrays' checksum
matches; anything else (an older tokenizer, a regenerated corpus, a truncated or altered file) is
rebuilt from the tokenizer and written atomically (temporary file, then rename). Numpy's
``memmap`` does the mapping; the format is ours because no library stores ragged id arrays with a
checked key (``datasets``' Arrow cache keys by its own fingerprint of a whole pipeline).
"""

from __future__ import annotations

import json
import shutil
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from lossbench.data.cache_files import atomic_path, content_digest, publish
from lossbench.data.fingerprint import tokenizer_fingerprint
from lossbench.data.token_ids import id_dtype, token_id_rows

MAGIC = b"LBTOKENS\n"
FORMAT_VERSION = 1
ALIGN = 64
BUILD_CHUNK = 10_000  # texts per tokenizer call while building


@dataclass(frozen=True)
class TokensKey:
    """What a corpus's token ids depend on."""

    tokenizer: str  # tokenizer_fingerprint
    max_length: int
    add_special_tokens: bool
    corpus: str  # corpus_fingerprint

    def name(self) -> str:
        """The file name of this key's store."""
        return content_digest([json.dumps(self.__dict__, sort_keys=True).encode()])[:24] + ".tok"


class CorpusTokens:
    """The token ids of one corpus's docs, by position in the corpus's order (memory-mapped).

    Attributes:
        path: the file. key: what the ids depend on. docs: the corpus (mapping) it was checked
        against, so that an encoding pass uses it for that corpus alone.
    """

    def __init__(self, path: Path, key: TokensKey, header: dict[str, Any], docs: Any) -> None:
        self.path, self.key, self.docs = path, key, docs
        start = int(header["data_offset"])
        count = int(header["num_docs"])
        self.offsets = np.memmap(path, np.int64, "r", offset=start, shape=(count + 1,))
        ids_start = start + 8 * (count + 1)
        self.ids = np.memmap(
            path, np.dtype(header["dtype"]), "r", offset=ids_start, shape=(int(header["num_ids"]),)
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        """A copy or a pickle of a module (a spawned process) holds no store: the mapping it was
        checked against is this process's, so the copy tokenizes (as before stores existed)."""
        return (_no_store, ())

    def row(self, position: int) -> np.ndarray:
        """The ids of the doc at ``position`` (a read-only view of the file)."""
        return self.ids[self.offsets[position] : self.offsets[position + 1]]

    def serves(self, docs: Any, max_length: int) -> bool:
        """Whether these are the ids of ``docs`` (the same mapping) cut to ``max_length``."""
        return docs is self.docs and max_length == self.key.max_length


def _no_store() -> None:
    return None


def _header(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                return None
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size).decode("utf-8"))
        return header if isinstance(header, dict) else None
    except (OSError, ValueError):
        return None


def _arrays_digest(path: Path, header: dict[str, Any]) -> str:
    """SHA-256 of the file from the arrays' start to its end."""
    with path.open("rb") as handle:
        handle.seek(int(header["data_offset"]))
        return content_digest(iter(lambda: handle.read(1 << 22), b""))


def read_store(path: Path, key: TokensKey, num_docs: int, docs: Any) -> CorpusTokens | None:
    """The store in ``path`` when it is intact and holds ``key``'s ids of ``num_docs`` docs; else None."""
    header = _header(path)
    if header is None or header.get("version") != FORMAT_VERSION:
        return None
    try:
        if header["key"] != key.__dict__ or int(header["num_docs"]) != num_docs:
            return None
        width = np.dtype(header["dtype"]).itemsize
        expected = int(header["data_offset"]) + 8 * (num_docs + 1) + width * int(header["num_ids"])
        if path.stat().st_size != expected or _arrays_digest(path, header) != header["sha256"]:
            return None
        return CorpusTokens(path, key, header, docs)
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _tokenized(tokenizer: Any, docs: Mapping[str, str], key: TokensKey) -> Iterator[np.ndarray]:
    """Each doc's ids, in the corpus's order, tokenized ``BUILD_CHUNK`` texts at a time."""
    texts = (text for _, text in docs.items())
    while chunk := list(islice(texts, BUILD_CHUNK)):
        yield from token_id_rows(tokenizer, chunk, key.max_length, key.add_special_tokens)


def build_store(path: Path, key: TokensKey, tokenizer: Any, docs: Mapping[str, str]) -> None:
    """Tokenize ``docs`` and write the store to ``path`` atomically (ids first to a temporary
    file, then header + offsets + ids to another that is renamed into place)."""
    dtype = id_dtype(tokenizer)
    ids_file, final = atomic_path(path), atomic_path(path)
    try:
        offsets = array("q", [0])
        with ids_file.open("wb") as handle:
            for row in _tokenized(tokenizer, docs, key):
                handle.write(row.tobytes())
                offsets.append(offsets[-1] + len(row))
        offset_bytes = offsets.tobytes()
        with ids_file.open("rb") as handle:
            checksum = content_digest([offset_bytes, *iter(lambda: handle.read(1 << 22), b"")])
        header = {
            "version": FORMAT_VERSION,
            "key": key.__dict__,
            "num_docs": len(offsets) - 1,
            "num_ids": offsets[-1],
            "dtype": dtype.name,
            "sha256": checksum,
            "data_offset": 0,
        }
        size = len(MAGIC) + 8 + len(json.dumps(header, sort_keys=True)) + 24  # data_offset's digits
        data_offset = -(-size // ALIGN) * ALIGN
        header["data_offset"] = data_offset
        text = json.dumps(header, sort_keys=True).encode("utf-8")
        prefix = MAGIC + len(text).to_bytes(8, "little") + text
        with final.open("wb") as out, ids_file.open("rb") as ids:
            out.write(prefix + b"\0" * (data_offset - len(prefix)))
            out.write(offset_bytes)
            shutil.copyfileobj(ids, out, 1 << 22)
        publish(final, path)
    finally:
        ids_file.unlink(missing_ok=True)
        final.unlink(missing_ok=True)


def open_corpus_tokens(
    folder: Path,
    tokenizer: Any,
    max_length: int,
    docs: Mapping[str, str],
    corpus: str,
    add_special_tokens: bool = True,
) -> tuple[CorpusTokens, bool]:
    """The store of ``docs``' ids under ``folder``, and whether it was reused (False: built now,
    because it was missing, stale or corrupt). ``corpus``: the corpus's fingerprint."""
    key = TokensKey(tokenizer_fingerprint(tokenizer), int(max_length), add_special_tokens, corpus)
    path = Path(folder) / key.name()
    store = read_store(path, key, len(docs), docs)
    if store is not None:
        return store, True
    build_store(path, key, tokenizer, docs)
    store = read_store(path, key, len(docs), docs)
    if store is None:  # pragma: no cover - what was just written does not read back
        raise RuntimeError(f"{path}: the token store just written does not read back")
    return store, False
