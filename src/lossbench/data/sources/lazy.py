"""Building blocks of lazy corpora (a TSV indexed by offsets, an ir_datasets docs store, a subset).

* :class:`StreamedDocs`: an ``id -> text`` mapping whose ``items()`` reads the corpus once, in its
  stored order, instead of one lookup per id (indexing a corpus walks it front to back).
* :class:`PerProcess`: a file or store opened lazily, and again in every process that uses it. A
  lazy corpus travels to DataLoader workers, forked or pickled; a forked worker must not share the
  parent's open file (its position would move under the parent), and an open file cannot be
  pickled, so a handle belongs to the process that opened it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, ItemsView, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``get()`` returns what ``opener()`` opened in this process, opening it on first use here.

    ``opener`` must be picklable (a module-level function or a ``functools.partial`` of one); a
    pickled copy carries the opener only, and opens on its first ``get()``.
    """

    def __init__(self, opener: Callable[[], T]) -> None:
        self.opener = opener
        self._opened: T | None = None
        self._pid: int | None = None

    def get(self) -> T:
        if self._opened is None or self._pid != os.getpid():
            self._opened = self.opener()
            self._pid = os.getpid()
        return self._opened

    def __getstate__(self) -> dict[str, Any]:
        return {"opener": self.opener, "_opened": None, "_pid": None}


class StreamedDocs(Mapping[str, str]):
    """A lazy ``id -> text`` mapping; ``items()`` yields :meth:`stream`'s pairs (one pass)."""

    def stream(self) -> Iterator[tuple[str, str]]:
        """Every ``(id, text)`` in the corpus's stored order."""
        raise NotImplementedError

    def items(self) -> ItemsView[str, str]:
        return _StreamedItems(self)


class _StreamedItems(ItemsView):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[tuple[str, str]]:
        docs: StreamedDocs = self._mapping  # type: ignore[attr-defined]
        return docs.stream()
