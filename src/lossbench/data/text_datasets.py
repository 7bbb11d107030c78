"""What inference reads: a collection's docs (to index) and a split's judged queries (to search)."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset

from lossbench.data.collection import Collection
from lossbench.data.samples import TextSample


class TextDataset(Dataset[TextSample]):
    """Texts to encode, as ``(id, text)`` pairs."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TextSample:
        return TextSample(*self.items[index])

    def items_as_samples(self) -> list[TextSample]:
        return [TextSample(*item) for item in self.items]


class DocDataset(TextDataset):
    """The docs of a collection, for indexing.

    Iterating it (or :meth:`items_as_samples`) streams ``collection.docs.items()``; the list of all
    ``(id, text)`` pairs that random access needs is built only on the first ``dataset[i]``.
    """

    def __init__(self, collection: Collection) -> None:
        self.docs = collection.docs
        self._items: list[tuple[str, str]] | None = None

    @property
    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        if self._items is None:
            self._items = list(self.docs.items())
        return self._items

    def __len__(self) -> int:
        return len(self.docs)

    def __iter__(self) -> Iterator[TextSample]:
        for doc_id, text in self.docs.items():
            yield TextSample(doc_id, text)

    def items_as_samples(self) -> list[TextSample]:
        return list(self)


class QueryDataset(TextDataset):
    """The judged queries of one split of a collection, for search."""

    def __init__(self, collection: Collection, split: str = "test") -> None:
        queries = collection.split_queries(split)
        if not queries:
            raise ValueError(f"collection {collection.name!r} has no judged {split!r} queries")
        super().__init__(list(queries.items()))
        self.split = split
