"""ir_datasets access: datasets by id with clear errors, lazy docs, queries and qrels.

ir_datasets is imported on first use (it is slow to import). Its files live under
``IR_DATASETS_HOME`` (default ``~/.ir_datasets``), which must be set before ir_datasets is first
imported in the process. Docs are never copied into memory: :class:`IrDatasetsDocs` is a read-only
mapping over the dataset's ``docs_store()``, reopened in every process that uses it (DataLoader
workers), so an 8.8M-passage corpus costs no RAM.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from lossbench.data.collection import Qrels
from lossbench.data.sources.lazy import PerProcess, StreamedDocs


class UnknownDatasetError(KeyError):
    """A name is neither an existing file nor an ir_datasets id; the message says what to pass instead."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def ir_datasets_version() -> str:
    import ir_datasets

    return str(ir_datasets.__version__)


def is_dataset_id(name: str) -> bool:
    """Whether ``name`` is an id that the installed ir_datasets knows (nothing is downloaded)."""
    import ir_datasets

    try:
        ir_datasets.load(name)
    except KeyError:
        return False
    return True


def load_dataset(dataset_id: str, hint: str = "") -> Any:
    """``ir_datasets.load(dataset_id)``, failing with the id, the ir_datasets version and ``hint``."""
    import ir_datasets

    try:
        return ir_datasets.load(dataset_id)
    except KeyError as error:
        message = (
            f"{dataset_id!r} is not a file, and not a dataset id of the installed ir_datasets "
            f"{ir_datasets.__version__} (see https://ir-datasets.com for the ids)"
        )
        raise UnknownDatasetError(f"{message}. {hint}".strip() if hint else message) from error


def record_text(record: Any, fields: Sequence[str] | None = None) -> str:
    """The text of an ir_datasets doc or query: ``fields`` joined by spaces, else its default text."""
    if fields:
        return " ".join(str(getattr(record, f)) for f in fields if getattr(record, f, None)).strip()
    if hasattr(record, "default_text"):
        return str(record.default_text())
    return str(record.text)


def _require(dataset: Any, dataset_id: str, what: str) -> None:
    if not getattr(dataset, f"has_{what}")():
        raise ValueError(f"ir_datasets {dataset_id!r} has no {what}")


def built_docstore(dataset: Any) -> Any:
    """``dataset.docs_store()``, built (on first use, ir_datasets writes its lookup files) by one
    process at a time. ir_datasets checks whether the store is built and then builds it without a
    lock over both, and writes the lookup's files one after the other: the jobs of a parallel sweep
    that open a fresh store together read a half-written one (``No such file or directory:
    .../docs.pklz4/idx.doc_id.meta``). Here the first builds it whole under a file lock beside the
    store, and the others find it built."""
    from filelock import FileLock

    store = dataset.docs_store()
    path = getattr(store, "path", None)
    if not isinstance(path, str) or not hasattr(store, "build"):
        return store  # not a store ir_datasets builds on first use
    with FileLock(f"{path}.lossbench.lock"):
        store.build()
    return store


def _docstore_of(dataset_id: str) -> Any:
    return built_docstore(load_dataset(dataset_id))


class IrDatasetsDocs(StreamedDocs):
    """doc id -> text of an ir_datasets corpus, read lazily from its docs store.

    Args:
        dataset_id: any ir_datasets id with docs (``msmarco-passage``, ``cranfield``, ...).
        fields: doc fields joined into the text (e.g. ``["text"]``); None uses ir_datasets'
            ``default_text()`` (usually title and text).
    """

    def __init__(self, dataset_id: str, fields: Sequence[str] | None = None) -> None:
        dataset = load_dataset(dataset_id)
        _require(dataset, dataset_id, "docs")
        self.dataset_id = dataset_id
        self.fields = tuple(fields) if fields else None
        self._store = PerProcess(partial(_docstore_of, dataset_id))

    @property
    def dataset(self) -> Any:
        return load_dataset(self.dataset_id)

    def _docstore(self) -> Any:
        return self._store.get()

    def __getitem__(self, doc_id: str) -> str:
        try:
            doc = self._docstore().get(doc_id)
        except KeyError:
            raise KeyError(doc_id) from None
        return record_text(doc, self.fields)

    def get_many(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """The texts of ``doc_ids`` that exist, in one store lookup."""
        found = self._docstore().get_many(list(doc_ids))
        return {doc_id: record_text(doc, self.fields) for doc_id, doc in found.items()}

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str):
            return False
        return bool(self._docstore().get_many([doc_id]))

    def __iter__(self) -> Iterator[str]:
        for doc in self.dataset.docs_iter():
            yield doc.doc_id

    def __len__(self) -> int:
        self._docstore()  # the count may come from the docs store, built once
        return int(self.dataset.docs_count())

    def stream(self) -> Iterator[tuple[str, str]]:
        """The corpus read once, in its stored order, instead of one lookup per id."""
        for doc in self.dataset.docs_iter():
            yield doc.doc_id, record_text(doc, self.fields)

    def __repr__(self) -> str:
        return f"IrDatasetsDocs({self.dataset_id!r})"


def read_queries(dataset_id: str, fields: Sequence[str] | None = None) -> dict[str, str]:
    """query id -> text of an ir_datasets dataset."""
    dataset = load_dataset(dataset_id)
    _require(dataset, dataset_id, "queries")
    return {query.query_id: record_text(query, fields) for query in dataset.queries_iter()}


def read_qrels(dataset_id: str, relevance_map: Mapping[int, int] | None = None) -> Qrels:
    """The qrels of an ir_datasets dataset, grades mapped by ``relevance_map``.

    With several judgements of a pair (several qrels iterations), the maximum grade after mapping
    wins.
    """
    dataset = load_dataset(dataset_id)
    _require(dataset, dataset_id, "qrels")
    mapping = dict(relevance_map or {})
    qrels: Qrels = {}
    for qrel in dataset.qrels_iter():
        grade = int(mapping.get(int(qrel.relevance), int(qrel.relevance)))
        docs = qrels.setdefault(qrel.query_id, {})
        docs[qrel.doc_id] = max(grade, docs.get(qrel.doc_id, grade))
    return qrels


__all__ = [
    "IrDatasetsDocs",
    "UnknownDatasetError",
    "is_dataset_id",
    "load_dataset",
    "read_qrels",
    "read_queries",
    "record_text",
]
