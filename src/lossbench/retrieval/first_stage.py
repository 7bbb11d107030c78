"""First stages: each query's candidates for a re-ranker (``first_stage=bm25|run_file|model``).

A cross-encoder scores one pair per forward pass, so it cannot index a corpus: a cheaper retriever
proposes each query's top ``k`` and the cross-encoder re-ranks them
(:func:`lossbench.retrieval.rerank.rerank`). Every first stage answers one question,
:meth:`FirstStage.search`: the top-``k`` docs of some queries, as a run with its own scores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from lossbench.data.collection import Collection, ScoredRun
from lossbench.data.runs import RankedList

if TYPE_CHECKING:
    from lossbench.retrieval.bm25 import BM25Settings


class FirstStage(ABC):
    """What proposes a re-ranker's candidates."""

    @abstractmethod
    def search(self, collection: Collection, queries: Mapping[str, str], k: int) -> ScoredRun:
        """The top-``k`` docs of ``collection`` for each of ``queries`` (``{query id: text}``) as
        ``{query id: {doc id: score}}``; a query may get fewer than ``k``, or none."""

    @abstractmethod
    def describe(self) -> str:
        """What it is, in a few words (the run's ``first_stage`` tag, the report's reference row)."""

    def query_ids(self) -> list[str]:
        """The query ids it has candidates for, when it has a fixed set (a run file); else none.
        A message about a run of another collection shows a few."""
        return []


def _first_stage_path(path: str | None, missing: str, folder: bool) -> Path:
    """``first_stage.path``, expanded: ``missing`` (what to set) when it is empty, and
    FileNotFoundError when it names no existing file (``folder``: folder)."""
    if not path:
        raise ValueError(missing)
    found = Path(path).expanduser()
    if not (found.is_dir() if folder else found.is_file()):
        raise FileNotFoundError(
            f"first_stage.path={path}: no such {'folder' if folder else 'file'}"
        )
    return found


class BM25FirstStage(FirstStage):
    """BM25 over the collection's docs (:class:`~lossbench.retrieval.bm25.BM25Index`, ``bm25s``),
    indexed once per collection. The arguments (``k1``, ``b``, ``stemmer``, ``stopwords``) and their
    defaults are BM25Index's; ``settings`` holds all four."""

    def __init__(self, **settings: Unpack[BM25Settings]) -> None:
        from lossbench.retrieval.bm25 import BM25Index

        # bad settings fail now, before a run starts
        self.settings: dict[str, Any] = BM25Index(**settings).settings
        self._index: Any = None
        self._docs: object = None

    def search(self, collection: Collection, queries: Mapping[str, str], k: int) -> ScoredRun:
        from lossbench.retrieval.bm25 import BM25Index

        if self._index is None or self._docs is not collection.docs:
            self._index = BM25Index(**self.settings).add(collection.docs)
            self._docs = collection.docs
        return self._index.search(queries, k)  # type: ignore[no-any-return]

    def describe(self) -> str:
        return "bm25"


class RunFileFirstStage(FirstStage):
    """The candidates of a run file: TREC (``qid Q0 docid rank score tag``), ``.jsonl`` or ``.parquet``
    (``query_id``, ``doc_id``, ``score`` [, ``rank``]); read once, each query's list ordered by
    descending score (ties by the file's rank, then doc id). A malformed line fails naming the file
    and line."""

    def __init__(self, path: str | None) -> None:
        missing = (
            "first_stage=run_file needs the run to re-rank: first_stage.path=/path/to/run "
            "(TREC 'qid Q0 docid rank score tag', or .jsonl/.parquet with query_id, doc_id, score)"
        )
        self.path = _first_stage_path(path, missing, folder=False)
        self._lists: dict[str, RankedList] | None = None

    def lists(self) -> dict[str, RankedList]:
        """Every query's ranked list in the file (read on the first call)."""
        if self._lists is None:
            from lossbench.data.runs import rank_rows
            from lossbench.data.sources.formats import iter_run

            self._lists = rank_rows(iter_run(self.path))
        return self._lists

    def search(self, collection: Collection, queries: Mapping[str, str], k: int) -> ScoredRun:
        lists = self.lists()
        run: ScoredRun = {}
        for query_id in queries:
            ranked = lists.get(query_id)
            if ranked is not None:
                run[query_id] = dict(zip(ranked.doc_ids[:k], ranked.scores[:k], strict=True))
        return run

    def describe(self) -> str:
        return f"run file {self.path.name}"

    def query_ids(self) -> list[str]:
        return list(self.lists())


class BiEncoderFirstStage(FirstStage):
    """A saved bi-encoder (a folder of :meth:`BiEncoderModule.save_pretrained`): the corpus encoded
    once into an exact index for its vectors (dense, sparse or per token), the queries searched in it.

    Args:
        path: the saved model's folder.
        batch_size: texts per encoding batch (None: 128 on the CPU, 512 on a GPU).
        accelerator: where it encodes (``auto``: a GPU when there is one).
    """

    def __init__(
        self, path: str | None, batch_size: int | None = None, accelerator: str | None = "auto"
    ) -> None:
        from lossbench.models.config import CrossEncoderConfig
        from lossbench.models.cross_encoder import saved_config_class

        missing = (
            "first_stage=model needs a saved bi-encoder: first_stage.path=/path/to/folder "
            "(written by BiEncoderModule.save_pretrained)"
        )
        self.path = _first_stage_path(path, missing, folder=True)
        saved = saved_config_class(self.path)
        if saved is None:
            raise ValueError(
                f"first_stage.path={path} is not a saved bi-encoder (no lossbench_config.json): "
                "give a folder written by BiEncoderModule.save_pretrained"
            )
        if saved == CrossEncoderConfig.__name__:
            raise ValueError(
                f"first_stage.path={path} holds a cross-encoder, which cannot search a corpus; "
                "first_stage=model needs a saved bi-encoder (DPR, SPLADE or ColBERT)"
            )
        self.batch_size = batch_size
        self.accelerator = accelerator
        self._index: Any = None
        self._docs: object = None
        self._module: Any = None

    def search(self, collection: Collection, queries: Mapping[str, str], k: int) -> ScoredRun:
        from lossbench.data.samples import TextSample
        from lossbench.models.module import BiEncoderModule
        from lossbench.retrieval.encode import iter_encoded
        from lossbench.retrieval.search import index_corpus
        from lossbench.training.hardware import inference_batch_size, inference_device

        device = inference_device(self.accelerator)
        batch_size = inference_batch_size(self.batch_size, device)
        if self._module is None:
            self._module = BiEncoderModule.from_pretrained(self.path).to(device)
        if self._index is None or self._docs is not collection.docs:
            index = exact_index_for(self._module.config)
            self._index = index_corpus(self._module, collection, index, batch_size)
            self._docs = collection.docs
        samples = [TextSample(query_id, text) for query_id, text in queries.items()]
        run: ScoredRun = {}
        for query_ids, vectors in iter_encoded(
            self._module, samples, "query", batch_size=batch_size, progress=False
        ):
            run.update(self._index.search(vectors, query_ids, k))
        return run

    def describe(self) -> str:
        return f"bi-encoder {self.path.name}"


def exact_index_for(config: Any) -> Any:
    """An exhaustive index for the vectors a bi-encoder config makes (its ``vectors``: dense,
    sparse or a vector per token)."""
    from lossbench.retrieval.dense import ExactDenseIndex
    from lossbench.retrieval.maxsim import MaxSimIndex
    from lossbench.retrieval.sparse import SparseIndex

    (index_class,) = [
        cls for cls in (ExactDenseIndex, SparseIndex, MaxSimIndex) if cls.vectors == config.vectors
    ]
    return index_class()
