r"""BM25 over a collection's docs, with the maintained ``bm25s`` library: the reference system of a
comparison, a first stage for re-rankers, and the negative miner of collections without triples.

The score of doc :math:`d` for query :math:`q` (Lucene's variant, ``bm25s``'s ``method="lucene"``):

.. math::

    \mathrm{BM25}(q, d) = \sum_{t \in q} \mathrm{idf}(t) \,
        \frac{f_{t,d}}{f_{t,d} + k_1 (1 - b + b \, |d| / \mathrm{avgdl})},
    \qquad \mathrm{idf}(t) = \ln\Bigl(1 + \frac{N - n_t + 0.5}{n_t + 0.5}\Bigr)

with :math:`f_{t,d}` the count of term :math:`t` in :math:`d`, :math:`n_t` the number of docs that
contain it and :math:`N` the number of docs (Lucene 8+ drops the classic :math:`(k_1 + 1)` factor
of the numerator, a constant that changes no ranking). Text is lower-cased, split into word tokens of two or
more characters, English stop words dropped and, by default, Porter2-stemmed (``PyStemmer``), as
the usual BM25 baselines do; ``k1=0.9, b=0.4`` are Anserini's defaults.

References:
    Robertson and Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", Foundations
    and Trends in IR, 2009. Lù, "BM25S: Orders of magnitude faster lexical search via eager
    sparse scoring", arXiv:2407.03618, 2024.

A doc is retrieved for a query only when it shares a term with it (score > 0): a query with no
known term retrieves nothing, rather than an arbitrary list of zero scores.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, TypedDict

import numpy as np

from lossbench.data.collection import ScoredRun

CHUNK = 100_000
"""Docs tokenized at a time while indexing (texts of one chunk are held at once)."""


def keep_jax_off_the_gpu() -> None:
    """Call before importing ``bm25s``. Where JAX is installed, ``bm25s`` imports it and runs a
    top-k at import, and JAX then takes 75% of a GPU's memory in that process: a sweep's parallel
    jobs, each building a BM25 index, ran out of GPU memory. BM25 needs no GPU, so JAX stays on the
    CPU unless ``JAX_PLATFORMS`` says otherwise."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


class BM25Settings(TypedDict, total=False):
    """:class:`BM25Index`'s arguments, for what passes them on (a first stage); each may be left out
    for its default."""

    k1: float
    b: float
    stemmer: str | None
    stopwords: str | None


class BM25Index:
    """BM25 over a corpus, built once by :meth:`add`, searched by :meth:`search`.

    Args:
        k1: term-frequency saturation.
        b: length normalisation.
        stemmer: a PyStemmer language (``english``), or None for no stemming.
        stopwords: a ``bm25s`` stop-word list name (``en``), or None to keep every word.
    """

    def __init__(
        self,
        k1: float = 0.9,
        b: float = 0.4,
        stemmer: str | None = "english",
        stopwords: str | None = "en",
    ) -> None:
        keep_jax_off_the_gpu()
        from bm25s.tokenization import Tokenizer

        if k1 < 0 or not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b = float(k1), float(b)
        self.settings = {"k1": self.k1, "b": self.b, "stemmer": stemmer, "stopwords": stopwords}
        self._tokenizer = Tokenizer(stopwords=stopwords or [], stemmer=_stemmer(stemmer))
        self.doc_ids: list[str] = []
        self._retriever: Any = None

    def __len__(self) -> int:
        return len(self.doc_ids)

    def add(self, docs: Mapping[str, str] | Iterable[tuple[str, str]]) -> BM25Index:
        """Index ``docs`` (``doc id -> text`` or ``(id, text)`` pairs), read once, in chunks."""
        import bm25s
        from bm25s.tokenization import Tokenized

        if self._retriever is not None:
            raise ValueError("the BM25 index is built already: make a new BM25Index for other docs")
        pairs = iter(docs.items() if isinstance(docs, Mapping) else docs)
        token_ids: list[list[int]] = []
        while chunk := list(islice(pairs, CHUNK)):
            self.doc_ids.extend(doc_id for doc_id, _ in chunk)
            texts = [text for _, text in chunk]
            token_ids.extend(self._tokenize(texts, update_vocab=True))
        if not self.doc_ids:
            raise ValueError("BM25 needs at least one doc to index")
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        vocabulary = self._tokenizer.get_vocab_dict()
        retriever.index(Tokenized(ids=token_ids, vocab=vocabulary), show_progress=False)
        self._retriever = retriever
        return self

    def _tokenize(self, texts: list[str], update_vocab: bool) -> list[list[int]]:
        ids = self._tokenizer.tokenize(
            texts, update_vocab=update_vocab, return_as="ids", show_progress=False
        )
        return list(ids)  # type: ignore[arg-type]

    def search(self, queries: Mapping[str, str], k: int = 100) -> ScoredRun:
        """The top-``k`` docs of each query as ``{query id: {doc id: score}}`` (score > 0 only)."""
        if self._retriever is None:
            raise ValueError("the BM25 index is empty: add docs before searching")
        if k < 1:
            raise ValueError(f"k={k}: BM25 retrieves at least 1 doc per query")
        query_ids = list(queries)
        if not query_ids:
            return {}
        tokens = self._tokenize([queries[qid] for qid in query_ids], update_vocab=False)
        positions, scores = self._retriever.retrieve(
            tokens,
            k=min(k, len(self.doc_ids)),
            show_progress=False,
            n_threads=0,
            backend_selection="numpy",  # not JAX where installed: the same top-k on every machine
        )
        run: ScoredRun = {}
        for qid, row_positions, row_scores in zip(query_ids, positions, scores, strict=True):
            kept = np.flatnonzero(row_scores > 0)
            run[qid] = {
                self.doc_ids[int(row_positions[i])]: float(row_scores[i]) for i in kept.tolist()
            }
        return run

    def search_text(self, query: str, k: int = 100) -> list[tuple[str, float]]:
        """One query's top-``k`` docs as ``(doc id, score)``, best first (score > 0 only)."""
        ranked = self.search({"q": query}, k)["q"]
        return sorted(ranked.items(), key=lambda item: -item[1])


def _stemmer(language: str | None) -> Any:
    """PyStemmer's stemmer for ``language``, or None."""
    if language is None:
        return None
    import Stemmer

    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        valid = ", ".join(sorted(Stemmer.algorithms()))
        raise ValueError(
            f"stemmer={language!r} is not a PyStemmer language; valid: {valid}"
        ) from None
