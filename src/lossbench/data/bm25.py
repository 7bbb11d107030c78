r"""A small BM25 (numpy + scipy.sparse) for mining hard negatives when a collection has no triples.

The score of doc :math:`d` for query :math:`q`:

.. math::

    \mathrm{BM25}(q, d) = \sum_{t \in q} \mathrm{idf}(t) \,
        \frac{f_{t,d} (k_1 + 1)}{f_{t,d} + k_1 (1 - b + b \, |d| / \mathrm{avgdl})},
    \qquad \mathrm{idf}(t) = \ln\Bigl(1 + \frac{N - n_t + 0.5}{n_t + 0.5}\Bigr)

with :math:`f_{t,d}` the count of term :math:`t` in :math:`d`, :math:`n_t` the number of docs that
contain it and :math:`N` the number of docs (Lucene's variant; a query term counted as often as it
occurs). Tokens: lower-cased ``\w+`` runs without a short list of English stop words. The weights
are precomputed into a (docs x terms) CSC matrix, so a query costs one column slice and a product.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
from scipy import sparse

TOKEN = re.compile(r"\w+")
_STOPWORDS = """a an and are as at be but by for from has have in is it its of on or that the their
there these this to was were what which will with"""
STOPWORDS = frozenset(_STOPWORDS.split())


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` without stop words."""
    return [token for token in TOKEN.findall(text.lower()) if token not in STOPWORDS]


class BM25:
    """BM25 over ``docs`` (``doc id -> text``, or ``(id, text)`` pairs), read once.

    Args:
        docs: the corpus.
        k1: term frequency saturation.
        b: length normalisation.
    """

    def __init__(
        self, docs: Mapping[str, str] | Iterable[tuple[str, str]], k1: float = 0.9, b: float = 0.4
    ) -> None:
        pairs = docs.items() if isinstance(docs, Mapping) else docs
        self.vocabulary: dict[str, int] = {}
        self.doc_ids: list[str] = []
        rows, cols, counts = array("q"), array("q"), array("f")
        for doc_id, text in pairs:
            row = len(self.doc_ids)
            self.doc_ids.append(doc_id)
            for term, count in Counter(tokenize(text)).items():
                col = self.vocabulary.setdefault(term, len(self.vocabulary))
                rows.append(row)
                cols.append(col)
                counts.append(count)
        if not self.doc_ids:
            raise ValueError("BM25 needs at least one doc")
        shape = (len(self.doc_ids), max(len(self.vocabulary), 1))
        tf = sparse.csr_matrix(
            (
                np.frombuffer(counts, dtype=np.float32),
                (np.frombuffer(rows, dtype=np.int64), np.frombuffer(cols, dtype=np.int64)),
            ),
            shape=shape,
        )
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        average = max(float(lengths.mean()), 1e-9)
        document_frequency = np.bincount(tf.indices, minlength=shape[1])
        self.idf = np.log1p((shape[0] - document_frequency + 0.5) / (document_frequency + 0.5))
        norm = k1 * (1 - b + b * lengths / average)  # (N,)
        weights = tf.copy()
        row_of = np.repeat(np.arange(shape[0]), np.diff(tf.indptr))
        weights.data = (
            self.idf[tf.indices] * tf.data * (k1 + 1) / (tf.data + norm[row_of])
        ).astype(np.float32)
        self.weights = weights.tocsc()  # (N, V)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every doc for ``query``, ``(N,)``."""
        counted = Counter(self.vocabulary[t] for t in tokenize(query) if t in self.vocabulary)
        if not counted:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        columns = np.fromiter(counted.keys(), dtype=np.int64)
        weights = np.fromiter(counted.values(), dtype=np.float32)
        return np.asarray(self.weights[:, columns] @ weights).ravel()

    def search(self, query: str, k: int = 100) -> list[tuple[str, float]]:
        """The top ``k`` docs of ``query`` with a positive score, best first (ties by corpus order)."""
        scores = self.scores(query)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            keep = np.argpartition(-scores[candidates], k - 1)[:k]
            candidates = candidates[keep]
        order = sorted(candidates.tolist(), key=lambda i: (-scores[i], i))
        return [(self.doc_ids[i], float(scores[i])) for i in order]
