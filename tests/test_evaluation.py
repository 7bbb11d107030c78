"""ranx evaluation on hand-built qrels and runs, and the MLflow metric names."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lossbench.evaluation import evaluate_run, mlflow_metric_name


def test_metric_names_for_mlflow() -> None:
    assert mlflow_metric_name("ndcg@10") == "ndcg_at_10"
    assert mlflow_metric_name("recall@100", "test") == "test/recall_at_100"


def test_values_worked_out_by_hand(tmp_path: Path) -> None:
    qrels = {"q1": {"d1": 2, "d2": 1}, "q2": {"d9": 1}}
    run = {"q1": {"d2": 0.9, "d1": 0.5, "d3": 0.1}, "q2": {"d8": 0.3}}
    result = evaluate_run(qrels, run, ["ndcg@10", "mrr@10", "recall@100"])
    # q1: ranking d2 (gain 1), d1 (gain 3); ideal d1, d2. ranx uses gain = 2^rel - 1 (jarvelin=False: rel)
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert result.per_query["ndcg@10"]["q1"] == pytest.approx(dcg / ideal)
    assert result.per_query["ndcg@10"]["q2"] == 0.0  # nothing relevant retrieved
    assert result.means["mrr@10"] == pytest.approx((1.0 + 0.0) / 2)
    assert result.means["recall@100"] == pytest.approx(0.5)
    csv_path = result.write_per_query_csv(tmp_path / "per_query.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "query_id,ndcg@10,mrr@10,recall@100"
    assert len(lines) == 3


def test_a_judged_query_missing_from_the_run_counts_as_zero() -> None:
    result = evaluate_run({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 1.0}}, ["mrr@10"])
    assert result.means["mrr@10"] == pytest.approx(0.5)


def test_errors() -> None:
    with pytest.raises(ValueError, match="no judged queries"):
        evaluate_run({}, {"q": {"d": 1.0}})
    with pytest.raises(ValueError, match="retrieved nothing"):
        evaluate_run({"q": {"d": 1}}, {"other": {"d": 1.0}})
