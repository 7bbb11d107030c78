"""Negative mining with BM25, and the fixed query-split rules."""

from __future__ import annotations

import zlib

import pytest

from lossbench.data.mining import mine_triples
from lossbench.data.splits import hash_order, hold_out, split_by_percent
from lossbench.retrieval.bm25 import BM25Index

DOCS = {
    "d1": "wing lift in a slipstream",
    "d2": "heat transfer in a slab",
    "d3": "lift lift of a wing",
    "d4": "boundary layer heat",
}


def test_mined_negatives_are_bm25_candidates_that_are_not_positive() -> None:
    bm25 = BM25Index().add(DOCS)
    queries = {"q1": "lift of a wing in heat", "q2": "slab heat"}
    qrels = {"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}, "q3": {"d4": 1}}
    triples = mine_triples(queries, qrels, bm25, negatives_per_positive=2, depth=10, seed=0)
    assert {t[:2] for t in triples} == {("q1", "d1"), ("q2", "d2")}  # q3 has no query text here
    q1_negatives = {t[2] for t in triples if t[0] == "q1"}
    assert len(q1_negatives) == 2 and "d1" not in q1_negatives
    assert q1_negatives <= {"d2", "d3", "d4"}  # a judged non-relevant doc may be a negative
    assert mine_triples(queries, qrels, bm25, 2, 10, seed=0) == triples  # deterministic


def test_hash_order_is_crc32_then_id() -> None:
    ids = [str(i) for i in range(1, 50)]
    assert hash_order(ids) == sorted(ids, key=lambda q: (zlib.crc32(q.encode()), q))


def test_split_by_percent_gives_cranfield_45_45_135() -> None:
    splits = split_by_percent([str(i) for i in range(1, 226)], dev_percent=20, test_percent=20)
    assert [len(splits[s]) for s in ("test", "dev", "train")] == [45, 45, 135]
    assert set().union(*map(set, splits.values())) == {str(i) for i in range(1, 226)}
    assert splits == split_by_percent(reversed([str(i) for i in range(1, 226)]), 20, 20)


def test_hold_out_keeps_at_least_one_each_side() -> None:
    held, kept = hold_out(["a", "b", "c"], percent=10)
    assert len(held) == 1 and len(kept) == 2 and set(held) | set(kept) == {"a", "b", "c"}
    with pytest.raises(ValueError, match="at least 2"):
        hold_out(["a"], percent=10)


def test_split_percentages_must_leave_training_queries() -> None:
    with pytest.raises(ValueError, match="sum < 100"):
        split_by_percent(["a", "b", "c"], 50, 50)
