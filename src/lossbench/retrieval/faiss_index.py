"""Dense retrieval with faiss: an exact flat index and an approximate inverted-file (IVF) index.

Both keep the contract of :class:`~lossbench.retrieval.dense.ExactDenseIndex` (``add``,
``search_tensors``, ``search``, ``stats``), so ``index_corpus``, ``search_split`` and the
validation callback use them unchanged. Scores are inner products of the vectors the model emits,
as in the exact index: a model with ``similarity: cosine`` L2-normalizes its vectors in the encoder,
so the inner product of its vectors is their cosine.

* :class:`FaissFlatIndex` (``index=faiss_flat``): ``IndexFlatIP``, exhaustive and exact; faiss's
  blocked matrix products instead of torch's.
* :class:`FaissIVFIndex` (``index=faiss_ivf``): ``IndexIVFFlat``. k-means splits the corpus into
  ``nlist`` lists; a query scores only the docs of the ``nprobe`` lists whose centroids are nearest,
  so a search costs about ``nprobe / nlist`` of an exhaustive one, and may miss a doc that sits in
  another list. ``recall@100`` against exact search measures what it misses.

faiss is imported when an index is built, not when this module is: ``pip install faiss-cpu``.
A CUDA machine can use ``pip install faiss-gpu`` (the same ``faiss`` module) instead; these classes
keep their vectors on the CPU either way.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np
import torch

from lossbench.data.collection import ScoredRun
from lossbench.retrieval.base import Index
from lossbench.retrieval.shapes import check_docs

FAISS_MISSING = (
    "index=faiss_flat and index=faiss_ivf need faiss: pip install faiss-cpu "
    "(or faiss-gpu on a CUDA machine), or choose index=exact"
)


def import_faiss() -> ModuleType:
    """The ``faiss`` module, or an ImportError that says how to install it."""
    # faiss's loader logs at INFO which CPU build it tried ("Could not load library with AVX2 ...")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError as error:
        raise ImportError(FAISS_MISSING) from error
    return faiss


def as_float32_rows(vectors: torch.Tensor) -> np.ndarray:
    """A ``(N, dim)`` tensor (any device or float dtype) as the C-contiguous float32 array faiss reads."""
    array = vectors.detach().to(device="cpu", dtype=torch.float32).numpy()
    return np.ascontiguousarray(array)


def positions_to_run(
    query_ids: list[str], doc_ids: list[str], scores: torch.Tensor, positions: torch.Tensor
) -> ScoredRun:
    """``(Q, k)`` scores and doc positions as ``{query id: {doc id: score}}``; position -1 (a slot
    an approximate search left empty) is dropped."""
    from lossbench.evaluation.ranking import best_scores

    run: ScoredRun = {}
    for qid, row_positions, row_scores in zip(
        query_ids, positions.tolist(), scores.tolist(), strict=True
    ):
        pairs = ((doc_ids[p], s) for p, s in zip(row_positions, row_scores, strict=True) if p >= 0)
        run[qid] = best_scores(pairs)  # a doc indexed twice keeps its best score
    return run


class FaissIndex(Index):
    """What the faiss indexes share: doc ids by position, input checks, search and stats.

    A subclass builds the faiss index (:meth:`_add_vectors`, :meth:`faiss_index`); positions in it
    are the order in which docs were added, so position ``p`` is ``doc_ids[p]``.

    Args:
        report_recall_vs_exact: after the test search, the pipeline also searches exhaustively
            (:meth:`exhaustive`) and logs ``index/recall_at_100_vs_exact``.
    """

    def __init__(self, report_recall_vs_exact: bool = False) -> None:
        import_faiss()  # a missing faiss fails when the config is checked, before any training
        self.report_recall_vs_exact = report_recall_vs_exact
        self.doc_ids: list[str] = []
        self.dim: int | None = None

    def __len__(self) -> int:
        return len(self.doc_ids)

    def add(self, embeddings: torch.Tensor, doc_ids: list[str]) -> None:
        """Add docs' vectors ``(N, dim)`` with their ids."""
        check_docs(embeddings, doc_ids, self.dim)
        if not doc_ids:
            return
        self.dim = int(embeddings.shape[1])
        self._add_vectors(as_float32_rows(embeddings))
        self.doc_ids.extend(doc_ids)

    def _add_vectors(self, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def faiss_index(self) -> Any:
        """The underlying faiss index, ready to search (``faiss.write_index`` saves it)."""
        raise NotImplementedError

    @contextmanager
    def exhaustive(self) -> Iterator[None]:
        """Within the block, search every doc (exact search); a flat index always does."""
        yield

    def search_tensors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and doc positions ``(Q, k')`` with ``k' = min(k, corpus size)``.

        An approximate search may find fewer than ``k'`` docs for a query: the empty slots have
        position -1 and score ``-inf``.
        """
        if not self.doc_ids or self.dim is None:
            raise ValueError("the index is empty: add docs before searching")
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"queries {tuple(queries.shape)} do not match the index's {self.dim} dims"
            )
        k = min(k, len(self.doc_ids))
        if queries.shape[0] == 0:
            return torch.empty((0, k)), torch.empty((0, k), dtype=torch.long)
        scores, positions = self.faiss_index().search(as_float32_rows(queries), k)
        scores_t = torch.from_numpy(scores)  # (Q, k)
        positions_t = torch.from_numpy(positions).long()  # (Q, k)
        return scores_t.masked_fill(positions_t < 0, float("-inf")), positions_t

    def search(self, queries: torch.Tensor, query_ids: list[str], k: int = 100) -> ScoredRun:
        """Top-``k`` docs of each query as ``{query id: {doc id: score}}``."""
        scores, positions = self.search_tensors(queries, k)
        return positions_to_run(query_ids, self.doc_ids, scores, positions)

    def stats(self) -> dict[str, float]:
        """Size of the index, for logging as ``index/<name>``: docs, dim and size in MiB."""
        dim = self.dim or 0
        return {
            "docs": float(len(self.doc_ids)),
            "dim": float(dim),
            "size_mb": len(self.doc_ids) * dim * 4 / 2**20,
        }


class FaissFlatIndex(FaissIndex):
    """Exact maximum inner product search with faiss's ``IndexFlatIP``.

    The same top-k as :class:`~lossbench.retrieval.dense.ExactDenseIndex` (up to float summation
    order and the order of tied scores), computed by faiss on the CPU with its own threads.

    Args:
        report_recall_vs_exact: log ``index/recall_at_100_vs_exact`` (1.0 by construction: only
            a check).
    """

    def __init__(self, report_recall_vs_exact: bool = False) -> None:
        super().__init__(report_recall_vs_exact)
        self._index: Any = None

    def _add_vectors(self, vectors: np.ndarray) -> None:
        if self._index is None:
            self._index = import_faiss().IndexFlatIP(vectors.shape[1])
        self._index.add(vectors)

    def faiss_index(self) -> Any:
        """The ``IndexFlatIP``."""
        return self._index


class FaissIVFIndex(FaissIndex):
    """Approximate maximum inner product search with faiss's ``IndexIVFFlat``.

    k-means (faiss's, 10 iterations, fixed seed) on the first ``train_size`` docs added picks
    ``nlist`` centroids; every doc goes to the list of its best centroid, stored uncompressed. A
    query scores the docs of its ``nprobe`` best lists only. Docs are held back until the training
    sample is complete (or until the first search, for a smaller corpus), then trained on and added;
    later docs are added directly. A corpus stored in topic order trains on its first topics only:
    shuffle such a corpus, or set ``train_size`` to cover it.

    k-means needs about ``min_points_per_list`` docs per list: when the training sample is smaller
    than ``nlist * min_points_per_list``, ``nlist`` is lowered to fit, with a warning (a corpus that
    small is cheap to search exactly: ``index=faiss_flat`` or ``index=exact``).

    Args:
        nlist: number of inverted lists (k-means centroids); ``4 * sqrt(docs)`` to
            ``16 * sqrt(docs)`` is the usual range.
        nprobe: lists searched per query (more: higher recall, slower); capped at ``nlist``.
        train_size: docs used to train k-means; None: ``256 * nlist`` (faiss samples down to that
            many anyway).
        min_points_per_list: docs per list below which ``nlist`` is lowered.
        report_recall_vs_exact: the pipeline logs ``index/recall_at_100_vs_exact`` for the test
            queries (an extra exhaustive search: turn off where that is too slow).
    """

    approximate = True

    def __init__(
        self,
        nlist: int = 1024,
        nprobe: int = 32,
        train_size: int | None = None,
        min_points_per_list: int = 39,
        report_recall_vs_exact: bool = True,
    ) -> None:
        if nlist < 1 or nprobe < 1 or min_points_per_list < 1:
            raise ValueError("nlist, nprobe and min_points_per_list must be positive")
        if train_size is not None and train_size < 1:
            raise ValueError("train_size must be positive (or null: 256 * nlist)")
        super().__init__(report_recall_vs_exact)
        self.nlist = nlist
        self._nprobe = nprobe
        self.train_size = train_size if train_size is not None else 256 * nlist
        self.min_points_per_list = min_points_per_list
        self.nlist_used: int | None = None  # after training
        self.trained_on = 0
        self._index: Any = None
        self._quantizer: Any = None
        self._pending: list[np.ndarray] = []
        self._pending_count = 0

    @property
    def nprobe(self) -> int:
        """Lists searched per query; setting it takes effect at the next search."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if value < 1:
            raise ValueError("nprobe must be positive")
        self._nprobe = value
        if self._index is not None:
            self._index.nprobe = min(value, self._index.nlist)

    def _add_vectors(self, vectors: np.ndarray) -> None:
        if self._index is not None:
            self._index.add(vectors)
            return
        self._pending.append(vectors)
        self._pending_count += vectors.shape[0]
        if self._pending_count >= self.train_size:
            self._train()

    def _train(self) -> None:
        """Train k-means on the held-back docs (the first ``train_size`` of them), then add them all."""
        if not self._pending:
            raise ValueError("the index is empty: add docs before searching")
        held = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = [held]  # the blocks' memory is released
        sample = held[: self.train_size]  # a view
        nlist = min(self.nlist, max(1, sample.shape[0] // self.min_points_per_list))
        if nlist < self.nlist:
            warnings.warn(
                f"faiss_ivf: {sample.shape[0]} training docs are too few for nlist={self.nlist} "
                f"(k-means wants >= {self.min_points_per_list} docs per list); using nlist={nlist}. "
                f"Set index.nlist<={nlist} to silence this, or use index=faiss_flat (exact) for a "
                "corpus this small",
                UserWarning,
                stacklevel=2,
            )
        faiss = import_faiss()
        quantizer = faiss.IndexFlatIP(sample.shape[1])
        index = faiss.IndexIVFFlat(quantizer, sample.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # too few points per list was handled above
        index.train(sample)
        index.add(held)
        index.nprobe = min(self.nprobe, nlist)
        self._quantizer = quantizer  # the IVF index does not own it: keep it alive
        self._index, self.nlist_used, self.trained_on = index, nlist, int(sample.shape[0])
        self._pending, self._pending_count = [], 0

    def faiss_index(self) -> Any:
        """The trained ``IndexIVFFlat`` (trained now, on the held-back docs, if it was not yet)."""
        if self._index is None:
            self._train()
        return self._index

    @contextmanager
    def exhaustive(self) -> Iterator[None]:
        """Within the block, probe every list: an exact search of the same vectors."""
        index = self.faiss_index()
        nprobe = index.nprobe
        index.nprobe = index.nlist
        try:
            yield
        finally:
            index.nprobe = nprobe

    def stats(self) -> dict[str, float]:
        """Docs, dim, size in MiB (vectors, ids and centroids), nlist and nprobe in use, training docs."""
        dim = self.dim or 0
        if self.doc_ids:
            self.faiss_index()
        nlist = self.nlist_used or 0
        size = len(self.doc_ids) * (dim * 4 + 8) + nlist * dim * 4
        return {
            "docs": float(len(self.doc_ids)),
            "dim": float(dim),
            "size_mb": size / 2**20,
            "nlist": float(nlist),
            "nprobe": float(min(self.nprobe, nlist)),
            "train_docs": float(self.trained_on),
        }
