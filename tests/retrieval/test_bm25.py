"""BM25 (bm25s): the formula worked by hand, the library's own ranking, what a query without a known
term retrieves, stemming and stop words, and bad settings."""

from __future__ import annotations

import math

import pytest

from lossbench.retrieval.bm25 import BM25Index

DOCS = {
    "d1": "wing lift in a slipstream",
    "d2": "heat transfer in a slab",
    "d3": "lift lift of a wing",
    "d4": "boundary layer heat",
}


def bm25_by_hand(
    query: list[str], doc: list[str], docs: list[list[str]], k1: float, b: float
) -> float:
    """Lucene's BM25 in plain Python, from the formula (float64; no (k1 + 1) in the numerator)."""
    avgdl = sum(map(len, docs)) / len(docs)
    score = 0.0
    for term in query:
        n_t = sum(term in d for d in docs)
        if n_t == 0:
            continue
        idf = math.log(1 + (len(docs) - n_t + 0.5) / (n_t + 0.5))
        f = doc.count(term)
        score += idf * f / (f + k1 * (1 - b + b * len(doc) / avgdl))
    return score


def test_scores_match_the_formula_worked_by_hand() -> None:
    k1, b = 1.2, 0.75
    index = BM25Index(k1=k1, b=b, stemmer=None).add(DOCS)
    # tokens: lower-cased words of 2+ characters, English stop words dropped ("in", "a", "of")
    tokens = {
        "d1": ["wing", "lift", "slipstream"],
        "d2": ["heat", "transfer", "slab"],
        "d3": ["lift", "lift", "wing"],
        "d4": ["boundary", "layer", "heat"],
    }
    run = index.search({"q": "wing lift"}, k=10)["q"]
    for doc_id, score in run.items():
        expected = bm25_by_hand(["wing", "lift"], tokens[doc_id], list(tokens.values()), k1, b)
        assert score == pytest.approx(expected, rel=1e-5)
    assert sorted(run, key=run.__getitem__, reverse=True) == ["d3", "d1"]


def test_a_doc_without_a_query_term_is_not_retrieved() -> None:
    index = BM25Index().add(DOCS)
    assert index.search({"q": "nothing matches here"}, k=10) == {"q": {}}
    assert set(index.search({"q": "heat"}, k=10)["q"]) == {"d2", "d4"}
    best = index.search({"q": "heat slab"}, k=1)["q"]
    assert index.search_text("heat slab", k=1) == list(best.items()) and list(best) == ["d2"]


def test_stemming_matches_word_forms() -> None:
    stemmed = BM25Index().add(DOCS)
    plain = BM25Index(stemmer=None).add(DOCS)
    assert set(stemmed.search({"q": "lifting wings"}, 10)["q"]) == {"d1", "d3"}
    assert plain.search({"q": "lifting wings"}, 10)["q"] == {}


def test_k_larger_than_the_corpus_returns_every_matching_doc() -> None:
    run = BM25Index().add(DOCS).search({"q": "heat wing lift"}, k=1000)["q"]
    assert set(run) == {"d1", "d2", "d3", "d4"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k1": -1.0}, "k1 >= 0 and 0 <= b <= 1"),
        ({"b": 1.5}, "k1 >= 0 and 0 <= b <= 1"),
        ({"stemmer": "klingon"}, "not a PyStemmer language"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BM25Index(**kwargs)


def test_searching_needs_docs_and_a_positive_k() -> None:
    with pytest.raises(ValueError, match="empty"):
        BM25Index().search({"q": "wing"})
    with pytest.raises(ValueError, match="at least 1 doc"):
        BM25Index().add(DOCS).search({"q": "wing"}, k=0)
    with pytest.raises(ValueError, match="at least one doc"):
        BM25Index().add({})
