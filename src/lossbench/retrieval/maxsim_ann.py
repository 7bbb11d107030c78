"""Approximate late-interaction search: candidates from a token-level inverted file, exact MaxSim on them.

For corpora too large to score every doc (``index=maxsim``): faiss's k-means splits the docs' token
vectors into ``nlist`` clusters, and each cluster lists the docs that have a token in it. A query's
tokens each probe their ``nprobe`` nearest centroids (faiss ``IndexFlatIP`` over the centroids);
the docs listed under any probed cluster are the query's candidates, scored exactly by MaxSim
(:class:`~lossbench.retrieval.maxsim.MaxSimIndex`, from the same fp16 token vectors). This is the
candidate generation of ColBERTv2/PLAID (Santhanam et al., NAACL 2022 and CIKM 2022) without their
compression and centroid pruning: a search costs about the candidates' share of an exact one, and
may miss a doc whose tokens sit in clusters no query token probed. With ``nprobe >= nlist`` every
doc is a candidate and the search is exact; ``index/recall_at_100_vs_exact`` measures what it misses.

faiss does the clustering and the centroid search; the doc lists and the scoring are this module's
(faiss's own IVF indexes return vectors, not the docs they belong to). ``pip install faiss-cpu``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from lossbench.models.scoring import token_mask
from lossbench.retrieval.faiss_index import as_float32_rows, import_faiss
from lossbench.retrieval.maxsim import MaxSimIndex

ASSIGN_BATCH = 65_536
"""Token vectors assigned to their centroid at a time (converted to float32 for faiss)."""


class MaxSimANNIndex(MaxSimIndex):
    """Token-level inverted-file candidates, then exact MaxSim (see the module docstring).

    The clusters are built at the first search, from every doc added so far; docs added later
    rebuild them at the next search.

    Args:
        nlist: clusters of token vectors (k-means centroids); ``4 * sqrt(tokens)`` to
            ``16 * sqrt(tokens)`` is the usual range.
        nprobe: clusters each query token probes (more: more candidates, higher recall, slower).
        train_tokens: token vectors k-means trains on, drawn at random with ``seed``;
            None: ``256 * nlist`` (faiss samples down to that many anyway).
        min_points_per_list: training tokens per cluster below which ``nlist`` is lowered.
        seed: the seed of the training sample and of k-means.
        report_recall_vs_exact: the pipeline logs ``index/recall_at_100_vs_exact`` for the test
            queries (an extra exact search).
        chunk_tokens, query_batch_size: as for :class:`MaxSimIndex`; a batch's candidates are the
            union of its queries' (each query keeps only its own), so small batches waste less.
    """

    approximate = True

    def __init__(
        self,
        nlist: int = 1024,
        nprobe: int = 8,
        train_tokens: int | None = None,
        min_points_per_list: int = 39,
        seed: int = 0,
        report_recall_vs_exact: bool = True,
        chunk_tokens: int = 8192,
        query_batch_size: int = 8,
    ) -> None:
        if nlist < 1 or nprobe < 1 or min_points_per_list < 1:
            raise ValueError("nlist, nprobe and min_points_per_list must be positive")
        if train_tokens is not None and train_tokens < 1:
            raise ValueError("train_tokens must be positive (or null: 256 * nlist)")
        import_faiss()  # a missing faiss fails when the config is checked, before any training
        super().__init__(chunk_tokens, query_batch_size)
        self.nlist, self.nprobe, self.seed = nlist, nprobe, seed
        self.train_tokens = train_tokens if train_tokens is not None else 256 * nlist
        self.min_points_per_list = min_points_per_list
        self.report_recall_vs_exact = report_recall_vs_exact
        self.nlist_used = 0
        self.trained_on = 0
        self._exhaustive = False
        self._quantizer: Any = None
        self._lists: tuple[torch.Tensor, torch.Tensor] | None = None  # offsets (nlist+1,), docs
        self._built_for = 0  # docs the clusters cover

    @contextmanager
    def exhaustive(self) -> Iterator[None]:
        """Within the block, score every doc (exact search)."""
        self._exhaustive = True
        try:
            yield
        finally:
            self._exhaustive = False

    def search_tensors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and doc positions ``(Q, k')``, ``k' = min(k, corpus size)``; a query
        with fewer than ``k'`` candidates has slots with position -1 and score ``-inf``."""
        if self._exhaustive:
            return super().search_tensors(queries, k)
        self._check_queries(queries)
        self._build()
        return self._batched(queries, k, self.candidates)

    def candidates(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The docs listed under the clusters that ``queries``' tokens probe: the batch's union
        (sorted by length) and each query's own ``(B, N)``."""
        assert self._lists is not None and self._quantizer is not None
        offsets, listed = self._lists
        batch, length, _ = queries.shape
        counts = token_mask(queries).flatten().cpu()  # (B*Lq,)
        owners = torch.arange(batch).repeat_interleave(length)[counts]  # (T,) query of each token
        tokens = queries.flatten(0, 1)[counts.to(queries.device)]  # (T, dim)
        nprobe = min(self.nprobe, self.nlist_used)
        probed = torch.from_numpy(self._quantizer.search(as_float32_rows(tokens), nprobe)[1])
        pairs = owners[:, None] * self.nlist_used + probed.long()  # (T, nprobe)
        pairs = torch.unique(pairs)  # (query, cluster) once each
        query_of, cluster = pairs // self.nlist_used, pairs % self.nlist_used
        sizes = offsets[cluster + 1] - offsets[cluster]  # docs per probed cluster
        starts = torch.repeat_interleave(offsets[cluster] - (torch.cumsum(sizes, 0) - sizes), sizes)
        docs = listed[starts + torch.arange(int(sizes.sum()))].long()
        allowed = torch.zeros(batch, len(self.doc_ids), dtype=torch.bool)
        allowed[torch.repeat_interleave(query_of, sizes), docs] = True
        allowed = allowed.to(queries.device)
        union = allowed.any(dim=0).nonzero().squeeze(1)
        return self.store.by_length(union), allowed

    def _build(self) -> None:
        """Cluster the token vectors (k-means on a sample) and list each cluster's docs."""
        if self._lists is not None and self._built_for == len(self.doc_ids):
            return
        faiss = import_faiss()
        vectors, lengths = self.store.vectors, self.store.lengths.cpu()
        sample = self._training_sample(vectors)
        nlist = self._fitting_nlist(sample.shape[0])
        kmeans = faiss.Kmeans(
            sample.shape[1],
            nlist,
            niter=10,
            seed=self.seed,
            spherical=True,
            min_points_per_centroid=1,
            max_points_per_centroid=256,
            verbose=False,
        )
        kmeans.train(sample)
        quantizer = faiss.IndexFlatIP(sample.shape[1])
        quantizer.add(kmeans.centroids)
        clusters = torch.cat(
            [
                torch.from_numpy(quantizer.search(as_float32_rows(block), 1)[1][:, 0])
                for block in vectors.split(ASSIGN_BATCH)
            ]
        ).long()  # (T,) cluster of each token
        owners = torch.repeat_interleave(
            torch.arange(len(lengths)), lengths
        )  # (T,) doc of each token
        pairs = torch.unique(clusters * len(lengths) + owners)  # sorted by cluster, then doc
        per_cluster = torch.bincount(pairs // len(lengths), minlength=nlist)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(per_cluster, 0)])
        self._lists = (offsets, (pairs % len(lengths)).to(torch.int32))
        self._quantizer, self.nlist_used = quantizer, nlist
        self.trained_on, self._built_for = int(sample.shape[0]), len(self.doc_ids)

    def _training_sample(self, vectors: torch.Tensor) -> Any:
        """Up to ``train_tokens`` token vectors drawn at random (``seed``), as faiss reads them."""
        if vectors.shape[0] <= self.train_tokens:
            return as_float32_rows(vectors)
        generator = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(vectors.shape[0], generator=generator)[: self.train_tokens]
        return as_float32_rows(vectors[chosen.to(vectors.device)])

    def _fitting_nlist(self, sample_size: int) -> int:
        """``nlist``, lowered (with a warning) when the sample is too small to train it."""
        nlist = min(self.nlist, max(1, sample_size // self.min_points_per_list))
        if nlist < self.nlist:
            warnings.warn(
                f"maxsim_ann: {sample_size} training tokens are too few for nlist={self.nlist} "
                f"(k-means wants >= {self.min_points_per_list} per cluster); using nlist={nlist}. "
                f"Set index.nlist<={nlist} to silence this",
                UserWarning,
                stacklevel=3,
            )
        return nlist

    def stats(self) -> dict[str, float]:
        """:meth:`MaxSimIndex.stats` plus the clusters (their doc lists and centroids in the size),
        ``nlist`` and ``nprobe`` in use, and the tokens k-means trained on."""
        if not self.doc_ids:
            return super().stats()
        self._build()
        assert self._lists is not None
        stats = super().stats()
        offsets, listed = self._lists
        extra = (
            offsets.numel() * 8 + listed.numel() * 4 + self.nlist_used * (self.store.dim or 0) * 4
        )
        stats["size_mb"] += extra / 2**20
        stats["bytes_per_doc"] += extra / len(self.doc_ids)
        stats.update(
            nlist=float(self.nlist_used),
            nprobe=float(min(self.nprobe, self.nlist_used)),
            train_tokens=float(self.trained_on),
        )
        return stats
