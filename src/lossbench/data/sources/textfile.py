"""A large local corpus or queries file as a lazy ``id -> text`` mapping (an offset index, no dict).

:func:`load_texts` reads a small file into a dict and indexes a large one: one pass validates every
line (errors name the file and line, as :func:`~lossbench.data.sources.formats.read_texts` does) and keeps
only numpy arrays of ids and byte offsets (about 16 bytes per record; an 8.8M-passage TSV costs
~150 MB instead of several GB of Python strings). Lookups seek to the line and parse it again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lossbench.data.sources.formats import parse_text_line, read_texts
from lossbench.data.sources.lazy import PerProcess, StreamedDocs

LAZY_ABOVE_BYTES = 256 * 2**20
"""Files larger than this are indexed rather than read into a dict."""

_CHUNK = 1_000_000


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


class TextFile(StreamedDocs):
    """``id -> text`` of a JSONL or TSV file, looked up through a sorted id array and byte offsets."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        id_chunks: list[np.ndarray] = []
        offset_chunks: list[np.ndarray] = []
        ids: list[bytes] = []
        offsets: list[int] = []
        with self.path.open("rb") as handle:
            offset = 0
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    doc_id, _ = parse_text_line(self.path, number, raw.decode("utf-8"))
                    ids.append(doc_id.encode("utf-8"))
                    offsets.append(offset)
                    if len(ids) == _CHUNK:
                        id_chunks.append(np.array(ids, dtype=bytes))
                        offset_chunks.append(np.array(offsets, dtype=np.int64))
                        ids, offsets = [], []
                offset += len(raw)
        id_chunks.append(np.array(ids, dtype=bytes))
        offset_chunks.append(np.array(offsets, dtype=np.int64))
        width = max(chunk.dtype.itemsize for chunk in id_chunks) or 1
        all_ids = np.concatenate([chunk.astype(f"S{width}") for chunk in id_chunks])
        order = np.argsort(all_ids, kind="stable")
        sorted_ids = all_ids[order]
        last = np.append(
            sorted_ids[1:] != sorted_ids[:-1], True
        )  # a repeated id: its last line wins
        self._ids = sorted_ids[last]
        self._offsets = np.concatenate(offset_chunks)[order][last]
        self._file = PerProcess(partial(_open_binary, self.path))

    def __getitem__(self, key: str) -> str:
        wanted = key.encode("utf-8")
        if len(wanted) > self._ids.dtype.itemsize:
            raise KeyError(key)
        position = int(np.searchsorted(self._ids, wanted))
        if position >= len(self._ids) or self._ids[position] != wanted:
            raise KeyError(key)
        handle = self._file.get()
        handle.seek(int(self._offsets[position]))
        return parse_text_line(self.path, 0, handle.readline().decode("utf-8"))[1]

    def __iter__(self) -> Iterator[str]:
        for key in self._ids:
            yield key.decode("utf-8")

    def __len__(self) -> int:
        return len(self._ids)

    def stream(self) -> Iterator[tuple[str, str]]:
        """The file's records front to back (a repeated id comes again, as in the file)."""
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield parse_text_line(self.path, number, raw.decode("utf-8"))

    def __repr__(self) -> str:
        return f"TextFile({str(self.path)!r}, {len(self)} records)"


def load_texts(path: str | Path, lazy_above_bytes: int = LAZY_ABOVE_BYTES) -> Mapping[str, str]:
    """``id -> text`` of a JSONL/TSV file: a dict when small, a :class:`TextFile` index when large."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > lazy_above_bytes:
        return TextFile(path)
    return read_texts(path)
