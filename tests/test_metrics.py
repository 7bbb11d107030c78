"""The ranking of record and the evaluation of record: with tied scores (two-way, many-way, all zero,
beyond float32 precision) and duplicate docs, the logged metrics equal ranx and trec_eval reading the
written run file, to 1e-6, per query and on average."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from lossbench.data.sources.formats import read_trec_run, write_qrels, write_trec_run
from lossbench.evaluation import evaluate_run, rank, rank_rows, rank_run
from lossbench.evaluation.ranking import SCORE_FORMAT
from tests.helpers import assert_logged_equals_references

METRICS = ["ndcg@10", "mrr@10", "recall@100", "map@100"]


# ---- the order of record ------------------------------------------------------------------------
def test_ties_go_by_doc_id_and_scores_become_strictly_decreasing() -> None:
    ranked = rank({"b": 0.5, "a": 0.5, "c": 2.0, "d": 0.25})
    assert ranked.doc_ids == ("c", "a", "b", "d")
    one_step_below_half = float(np.nextafter(np.float32(0.5), np.float32(-1)))
    assert ranked.scores == (2.0, 0.5, one_step_below_half, 0.25)  # untied scores do not move


def test_a_tie_group_pushes_a_score_just_below_it_down_too() -> None:
    below = float(np.nextafter(np.float32(1.0), np.float32(0)))
    ranked = rank({"a": 1.0, "b": 1.0, "c": below})
    assert ranked.doc_ids == ("a", "b", "c")
    assert ranked.scores[1] == below
    assert ranked.scores[2] == float(np.nextafter(np.float32(below), np.float32(0)))


def test_all_zero_scores_descend_below_zero_in_float32_steps() -> None:
    ranked = rank({f"d{i}": 0.0 for i in (3, 1, 2)} | {"z": -0.0})
    assert ranked.doc_ids == ("d1", "d2", "d3", "z")  # -0.0 ties with 0.0
    assert ranked.scores[0] == 0.0
    assert all(a > b for a, b in zip(ranked.scores, ranked.scores[1:], strict=False))
    assert ranked.scores[1] == -float(np.nextafter(np.float32(0), np.float32(1)))


def test_scores_equal_in_float32_are_a_tie() -> None:
    """trec_eval keeps float32 scores: 1.0 and 1.0 + 1e-9 are equal to it, so they are here too."""
    assert rank({"b": 1.0 + 1e-9, "a": 1.0}).doc_ids == ("a", "b")


def test_ranking_a_ranking_changes_nothing() -> None:
    ranked = rank({"b": 0.5, "a": 0.5, "c": 0.5, "d": 3.0})
    assert rank(ranked.as_dict()) == ranked
    assert rank_run({"q": ranked}) == {"q": ranked}


def test_a_duplicated_doc_keeps_its_best_score() -> None:
    ranked = rank_rows([("q", "a", 0.1), ("q", "b", 0.5), ("q", "a", 0.9), ("q", "b", 0.2)])
    assert ranked["q"].doc_ids == ("a", "b")
    assert ranked["q"].scores == (float(np.float32(0.9)), float(np.float32(0.5)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 1e39])
def test_a_non_finite_score_is_refused_naming_the_query_and_doc(bad: float) -> None:
    with pytest.raises(ValueError, match=r"query 'q7': doc 'd2' has the score .* must be finite"):
        rank({"d1": 1.0, "d2": bad}, "q7")


def test_the_run_file_reads_back_to_the_same_ranking_and_bytes(tmp_path: Path) -> None:
    run = {"q2": {"a": 0.5, "b": 2.0, "c": 0.5}, "q1": {"c": 1.0 / 3}}
    path = write_trec_run(run, tmp_path / "x.run", tag="t")
    lines = path.read_text().splitlines()
    assert lines == [
        "q1 Q0 c 1 0.333333343 t",
        "q2 Q0 b 1 2 t",
        "q2 Q0 a 2 0.5 t",
        "q2 Q0 c 3 0.49999997 t",
    ]
    assert rank_run(read_trec_run(path)) == rank_run(run)
    again = write_trec_run(read_trec_run(path), tmp_path / "again.run", tag="t")
    assert again.read_bytes() == path.read_bytes()


# ---- the evaluation of record against ranx and trec_eval on the written file ---------------------
def tie_cases() -> dict[str, tuple[dict, list[tuple[str, str, float]]]]:
    """Named (qrels, run rows) with ties of every kind; rows may list a doc twice."""
    rng = random.Random(13)
    docs = [f"d{i:03d}" for i in range(300)]
    cases: dict[str, tuple[dict, list[tuple[str, str, float]]]] = {}

    def judged(count: int) -> dict[str, dict[str, int]]:
        return {
            f"q{q}": {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, 12)}
            for q in range(count)
        }

    qrels = judged(20)
    rows = []
    for qid in qrels:  # pairs of equal scores among distinct ones
        retrieved = rng.sample(docs, 100)
        rows += [(qid, d, float(i // 2)) for i, d in enumerate(retrieved)]
    cases["two-way ties"] = (qrels, rows)

    qrels = judged(20)
    rows = []
    for qid in qrels:  # 100 docs in two 50-way ties (the judged docs among them)
        retrieved = rng.sample([d for d in docs if d not in qrels[qid]], 90) + list(qrels[qid])[:10]
        rng.shuffle(retrieved)
        rows += [(qid, d, 1.0 if i < 50 else 0.5) for i, d in enumerate(retrieved)]
    cases["two 50-way ties"] = (qrels, rows)

    qrels = judged(20)
    rows = []
    for qid in qrels:  # SPLADE-like: a few docs share a term with the query, the rest score 0
        retrieved = rng.sample(docs, 100)
        rows += [
            (qid, d, rng.choice([2.5, 1.25]) if i < 7 else 0.0) for i, d in enumerate(retrieved)
        ]
    cases["all-zero tail"] = (qrels, rows)

    qrels = judged(20)
    rows = []
    for qid in qrels:  # different in float64, equal in float32 (trec_eval's precision)
        retrieved = rng.sample(docs, 100)
        rows += [(qid, d, 1.0 + rng.choice([0.0, 1e-9, 2e-9, -1e-9])) for d in retrieved]
    cases["ties below float32 precision"] = (qrels, rows)

    qrels = judged(20)
    rows = []
    for qid in qrels:  # every judged doc listed twice, once high and once low, among ties
        retrieved = rng.sample(docs, 80)
        rows += [(qid, d, float(rng.randint(0, 3))) for d in retrieved]
        rows += [(qid, d, float(rng.randint(0, 5))) for d in qrels[qid]]
    cases["duplicate docs"] = (qrels, rows)

    qrels = judged(20)
    rows = [(qid, d, float(rng.randint(0, 2))) for qid in list(qrels)[:15] for d in docs[:100]]
    qrels["q_nothing_relevant"] = {"d001": 0}
    cases["judged queries missing from the run"] = (qrels, rows)
    return cases


CASES = tie_cases()


@pytest.mark.parametrize("name", list(CASES))
def test_logged_metrics_equal_ranx_and_trec_eval_on_the_written_file(
    name: str, tmp_path: Path
) -> None:
    qrels, rows = CASES[name]
    evaluation = evaluate_run(qrels, rank_rows(rows), METRICS)
    run_file = write_trec_run(evaluation.ranking, tmp_path / "test.run")
    qrels_file = write_qrels(qrels, tmp_path / "test.qrels")
    pairs = [tuple(line.split()[:3:2]) for line in run_file.read_text().splitlines()]
    assert len(pairs) == len(set(pairs))  # no doc twice: trec_eval would refuse the file
    assert_logged_equals_references(evaluation.means, run_file, qrels_file, evaluation.per_query)


def test_ties_change_the_metrics_so_the_order_matters() -> None:
    """Guard against a vacuous test: on the 50-way ties, another tie order gives other metrics."""
    qrels, rows = CASES["two 50-way ties"]
    ranked = evaluate_run(qrels, rank_rows(rows), METRICS).means
    reversed_ids = [(q, d[::-1], s) for q, d, s in rows]  # reverses the doc-id order of ties
    flipped_qrels = {q: {d[::-1]: g for d, g in docs.items()} for q, docs in qrels.items()}
    flipped = evaluate_run(flipped_qrels, rank_rows(reversed_ids), METRICS).means
    assert ranked["ndcg@10"] != pytest.approx(flipped["ndcg@10"], abs=1e-6)


def test_hand_computed_values() -> None:
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = {"q": {"x": 0.9, "a": 0.8, "c": 0.7, "b": 0.6}}
    means = evaluate_run(qrels, run, ["mrr@10", "recall@2", "map@10", "ndcg@10"]).means
    assert means["mrr@10"] == pytest.approx(1 / 2)
    assert means["recall@2"] == pytest.approx(1 / 2)
    assert means["map@10"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    dcg = 2 / 1.584962500721156 + 1 / 2.321928094887362  # ranks 2 and 4
    ideal = 2 / 1 + 1 / 1.584962500721156
    assert means["ndcg@10"] == pytest.approx(dcg / ideal)


def test_any_ranx_metric_is_computed_and_an_unknown_one_refused() -> None:
    qrels, rows = CASES["two-way ties"]
    result = evaluate_run(qrels, rank_rows(rows), ["f1@10", "bpref", "ndcg_burges@5-l2"])
    assert set(result.means) == {"f1@10", "bpref", "ndcg_burges@5-l2"}
    with pytest.raises(ValueError, match="'ndgc@10' is not a ranx metric"):
        evaluate_run(qrels, rank_rows(rows), ["ndgc@10"])


def test_score_format_round_trips_every_float32() -> None:
    values = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    values = np.concatenate([values, [np.float32(1e-45), np.float32(3.4e38)]])
    parsed = [np.float32(float(SCORE_FORMAT.format(float(v)))) for v in values]
    assert np.array_equal(np.array(parsed, dtype=np.float32), values)
