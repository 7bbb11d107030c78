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


def test_five_folds_test_every_cranfield_query_once_and_fold_0_is_the_plain_split() -> None:
    from lossbench.data.splits import number_of_folds

    ids = [str(i) for i in range(1, 226)]
    order = hash_order(ids)
    assert number_of_folds(len(ids), 20) == 5
    folds = [split_by_percent(ids, 20, 20, fold=f) for f in range(5)]
    assert folds[0] == split_by_percent(ids, 20, 20)  # the split every run used before folds
    tested = [query for split in folds for query in split["test"]]
    assert sorted(tested) == sorted(ids)  # every query tested once
    for f, split in enumerate(folds):
        assert split["test"] == order[45 * f : 45 * (f + 1)]
        assert split["dev"] == order[45 * ((f + 1) % 5) : 45 * ((f + 1) % 5 + 1)]  # the next slice
        assert set(split["train"]) == set(ids) - set(split["test"]) - set(split["dev"])
        assert len(split["train"]) == 135


@pytest.mark.parametrize("fold", [5, -1, 1.5, True, "1"])
def test_a_fold_outside_the_folds_names_the_valid_ones(fold: object) -> None:
    with pytest.raises(
        ValueError, match="make 5 folds of 45 test queries; give an integer from 0 to 4"
    ):
        split_by_percent([str(i) for i in range(1, 226)], 20, 20, fold=fold)  # type: ignore[arg-type]
