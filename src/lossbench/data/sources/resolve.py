"""Where texts and judgements come from when a dataset is built from a string (a path or an id).

``TupleDataset("msmarco-passage/train/triples-small")`` reads its texts from that ir_datasets
dataset; ``TupleDataset("triples.tsv", docs="corpus.jsonl", queries="queries.tsv")`` from files. A
text source is a mapping, a JSONL/TSV file or an ir_datasets id; a qrels source is a mapping, a
qrels file or an ir_datasets id. Also: lazy mappings used by the collections.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lossbench.data.collection import Qrels
from lossbench.data.sources.formats import read_qrels as read_qrels_file
from lossbench.data.sources.lazy import StreamedDocs

TextSource = Mapping[str, str] | str | Path
QrelsSource = Mapping[str, Mapping[str, int]] | str | Path


def is_existing_path(name: str | Path) -> bool:
    """Whether ``name`` names an existing file or folder (checked before trying ir_datasets)."""
    try:
        return Path(name).expanduser().exists()
    except OSError:  # a name too long to be a path
        return False


def resolve_texts(
    source: TextSource | None, kind: str, default_id: str | None, owner: str
) -> Mapping[str, str]:
    """The ``id -> text`` mapping of ``source`` (``kind`` is ``docs`` or ``queries``).

    None falls back to the ir_datasets dataset ``default_id``; without one, the error names the
    keyword argument to pass (``owner`` is who asks, for the message).
    """
    from lossbench.data.sources.irds import IrDatasetsDocs, read_queries
    from lossbench.data.sources.textfile import load_texts

    if isinstance(source, Mapping):
        return source
    if source is None:
        if default_id is None:
            raise ValueError(
                f"{owner}: no {kind} texts; pass {kind}= (a mapping, a JSONL/TSV file, or an "
                "ir_datasets id such as msmarco-passage)"
            )
        source = default_id
    if is_existing_path(source):
        return load_texts(Path(source).expanduser())
    if kind == "docs":
        return IrDatasetsDocs(str(source))
    return read_queries(str(source))


def resolve_qrels(
    source: QrelsSource | None,
    default_id: str | None,
    relevance_map: Mapping[int, int] | None = None,
) -> Qrels | None:
    """The qrels of ``source`` (None falls back to ``default_id``'s qrels, if it has any)."""
    from lossbench.data.collection import map_relevance
    from lossbench.data.sources.irds import load_dataset, read_qrels

    if isinstance(source, Mapping):
        return map_relevance({q: dict(d) for q, d in source.items()}, relevance_map)
    if source is None:
        if default_id is None or not load_dataset(default_id).has_qrels():
            return None
        source = default_id
    if is_existing_path(source):
        return map_relevance(read_qrels_file(Path(source).expanduser()), relevance_map)
    return read_qrels(str(source), relevance_map)


class LazyMapping(Mapping[str, Any]):
    """A mapping built by ``load()`` on first access (e.g. 800K MS MARCO train queries, only if read)."""

    def __init__(self, load: Callable[[], Mapping[str, Any]], description: str = "") -> None:
        self._load = load
        self._data: Mapping[str, Any] | None = None
        self.description = description

    @property
    def data(self) -> Mapping[str, Any]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def items(self) -> ItemsView[str, Any]:
        return self.data.items()

    def __repr__(self) -> str:
        state = "loaded" if self._data is not None else "not loaded"
        return f"LazyMapping({self.description or self._load!r}, {state})"


class SubsetDocs(StreamedDocs):
    """The docs ``ids`` of a larger corpus ``base`` (a small index over MS MARCO), in that order."""

    def __init__(self, base: Mapping[str, str], ids: Sequence[str]) -> None:
        self.base = base
        self.ids = list(dict.fromkeys(ids))
        self._members = frozenset(self.ids)

    def __getitem__(self, doc_id: str) -> str:
        if doc_id not in self._members:
            raise KeyError(doc_id)
        return self.base[doc_id]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def stream(self) -> Iterator[tuple[str, str]]:
        """The subset's docs, fetched in chunks (one store lookup per chunk)."""
        get_many = getattr(self.base, "get_many", None)
        for start in range(0, len(self.ids), 1024):
            chunk = self.ids[start : start + 1024]
            texts = get_many(chunk) if get_many else {d: self.base[d] for d in chunk}
            for doc_id in chunk:
                yield doc_id, texts[doc_id]

    def __repr__(self) -> str:
        return f"SubsetDocs({len(self.ids)} of {self.base!r})"
