"""lossbench.evaluation.metrics against ranx: the same value for every metric, query and edge case."""

from __future__ import annotations

import random

import pytest

from lossbench.evaluation import evaluate_run, metrics

METRICS = [
    "ndcg@10",
    "ndcg@3",
    "ndcg",
    "ndcg_burges@10",
    "ndcg@10-l2",
    "dcg@5",
    "dcg_burges@5",
    "mrr@10",
    "mrr",
    "mrr@10-l2",
    "recall@100",
    "recall@5",
    "map@100",
    "map",
    "map@5-l2",
    "precision@10",
    "precision@3",
    "hits@10",
    "hit_rate@5",
    "r-precision",
]


def random_case(seed: int) -> tuple[dict, dict]:
    """Graded qrels (negative and zero grades too) and a run with distinct scores."""
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: rng.choice([-1, 0, 0, 1, 1, 2, 3]) for d in judged}
        if q % 7 == 3:
            continue  # judged but missing from the run: scores 0
        retrieved = rng.sample(docs, rng.randint(1, 40))  # some runs shorter than k
        scores = rng.sample(range(10_000), len(retrieved))  # distinct: no ties
        run[qid] = {d: s / 100 for d, s in zip(retrieved, scores, strict=True)}
    run["unjudged"] = {"d1": 1.0}  # not in the qrels: ignored
    qrels["only_zero"] = {"d2": 0}
    run["only_zero"] = {"d2": 1.0, "d3": 0.5}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_native_metrics_equal_ranx_per_query_and_mean(seed: int) -> None:
    qrels, run = random_case(seed)
    fast = evaluate_run(qrels, run, METRICS, engine="native")
    reference = evaluate_run(qrels, run, METRICS, engine="ranx")
    for metric in METRICS:
        assert fast.means[metric] == pytest.approx(reference.means[metric], abs=1e-12), metric
        assert fast.per_query[metric].keys() == reference.per_query[metric].keys()
        for qid, value in reference.per_query[metric].items():
            assert fast.per_query[metric][qid] == pytest.approx(value, abs=1e-12), (metric, qid)


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


def test_auto_uses_native_for_known_metrics_and_ranx_otherwise(monkeypatch) -> None:
    qrels, run = random_case(0)
    calls = []
    original = metrics.per_query_scores
    monkeypatch.setattr(metrics, "per_query_scores", lambda *a: calls.append(a[2]) or original(*a))
    evaluate_run(qrels, run, ["ndcg@10", "recall@100"])
    assert calls == [["ndcg@10", "recall@100"]]
    result = evaluate_run(qrels, run, ["ndcg@10", "f1@10"])  # f1: ranx only
    assert len(calls) == 1 and set(result.means) == {"ndcg@10", "f1@10"}


def test_unknown_engine_and_metric_are_rejected() -> None:
    with pytest.raises(ValueError, match="engine='fast'; valid: auto, native, ranx"):
        evaluate_run({"q": {"d": 1}}, {"q": {"d": 1.0}}, ["ndcg@10"], engine="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not computed natively"):
        evaluate_run({"q": {"d": 1}}, {"q": {"d": 1.0}}, ["bpref"], engine="native")


def test_ties_keep_insertion_order() -> None:
    assert metrics.ranked_doc_ids({"b": 1.0, "a": 1.0, "c": 2.0}) == ["c", "b", "a"]
    assert metrics.ranked_doc_ids({"b": 1.0, "a": 1.0, "c": 2.0}, depth=2) == ["c", "b"]
