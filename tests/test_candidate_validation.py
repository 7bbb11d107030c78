"""Validation on a fixed candidate pool (``eval.val_candidates_above``): what it indexes, that a pool
holding the whole corpus gives the whole corpus's metrics, that its cost does not grow with the
corpus, and how a run chooses it, says so and keys its stored untrained evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from lossbench.data.collection import Collection
from lossbench.retrieval import ExactDenseIndex
from lossbench.training.validation import CandidateValidation, RetrievalValidation
from tests.helpers import (
    FAST_RUN,
    compose_config,
    run_pipeline,
    tiny_bi_encoder,
    tiny_collection,
)


def collection(extra_docs: int = 0) -> Collection:
    """The tiny collection, its queries as the dev split, plus ``extra_docs`` unjudged filler docs."""
    docs, queries, qrels = tiny_collection()
    docs.update({f"filler{i}": f"filler text number {i} about nothing" for i in range(extra_docs)})
    return Collection("tiny", docs, {"dev": queries}, {"dev": qrels})


class CountingIndex(ExactDenseIndex):
    """An exact index that records how many docs were added to it."""

    added: list[int] = []

    def add(self, vectors: Any, ids: Any) -> None:
        CountingIndex.added.append(len(ids))
        super().add(vectors, ids)


def candidates_of(data: Collection, depth: int) -> dict[str, dict[str, float]]:
    """Each query's first ``depth`` docs in id order: a fixed candidate run independent of the model."""
    ordered = sorted(data.docs)
    return {
        qid: {doc: float(-rank) for rank, doc in enumerate(ordered[:depth])}
        for qid in data.split_queries("dev")
    }


def test_a_pool_of_the_whole_corpus_gives_the_corpus_validation_metrics() -> None:
    data = collection()
    module = tiny_bi_encoder()
    every_doc = {qid: dict.fromkeys(data.docs, 0.0) for qid in data.split_queries("dev")}
    pooled = CandidateValidation(data, every_doc, ExactDenseIndex, k=10, batch_size=8)
    corpus = RetrievalValidation(data, ExactDenseIndex, k=10, batch_size=8)
    index = corpus.make_index()
    from lossbench.retrieval import index_corpus

    expected = corpus.evaluate_index(module, index_corpus(module, data, index, 8), step=0)
    assert pooled.evaluate_now(module, step=0) == pytest.approx(expected, abs=1e-6)
    assert pooled.last_index is None  # the test must index the corpus itself


def test_the_pool_is_the_union_of_the_candidates_whatever_the_corpus_size() -> None:
    module = tiny_bi_encoder()
    sizes = []
    for extra in (0, 400):
        data = collection(extra)
        candidates = {
            qid: {f"d{(int(qid[1:]) + i) % 40}": 0.0 for i in range(5)}
            for qid in data.split_queries("dev")
        }
        CountingIndex.added = []
        validation = CandidateValidation(data, candidates, CountingIndex, k=10, batch_size=8)
        means = validation.evaluate_now(module, step=3)
        union = {doc for docs in candidates.values() for doc in docs}
        assert set(validation.collection.docs) == union
        sizes.append(sum(CountingIndex.added))
        assert validation.history == [(3, means)]
    assert sizes == [len(union), len(union)]  # the 400 filler docs are never encoded


def test_the_identity_names_the_candidates() -> None:
    data = collection()
    one = CandidateValidation(data, candidates_of(data, 5), ExactDenseIndex, k=10)
    other = CandidateValidation(data, candidates_of(data, 6), ExactDenseIndex, k=10)
    assert one.identity() != other.identity()
    assert RetrievalValidation(data, ExactDenseIndex).identity() != one.identity()


def run_job(root: Path, *overrides: str) -> tuple[Any, str]:
    cfg = compose_config(
        root,
        root / "cache",
        *FAST_RUN,
        "trainer.max_steps=2",
        "save_model=false",
        "checkpoint.every_n_steps=null",
        *overrides,
    )
    return run_pipeline(cfg)


@pytest.mark.slow
def test_a_run_over_a_large_corpus_validates_on_bm25_candidates(tmp_path: Path) -> None:
    """The small synthetic corpus (150 docs) counts as large above 100 docs: the validation indexes
    the dev queries' BM25 top 20 (pooled), says so, tags it and keys the untrained evaluation."""
    corpus_run, _ = run_job(tmp_path, "paths.output=" + str(tmp_path / "a"))
    pooled_run, printed = run_job(
        tmp_path,
        "paths.output=" + str(tmp_path / "b"),
        "eval.val_candidates_above=100",
        "eval.val_candidates_depth=20",
        "tracking.rerun=true",
    )
    assert corpus_run.data.tags["validation"] == "corpus"
    assert pooled_run.data.tags["validation"] == "candidates"
    assert "validation indexes" in printed and "the top 20 of bm25" in printed
    assert "(more than eval.val_candidates_above=100)" in printed
    assert "time/val_candidates_s" in pooled_run.data.metrics
    assert pooled_run.data.tags["base_eval"] == "computed"  # another validation: another key
    assert pooled_run.data.tags["base_eval_key"] != corpus_run.data.tags["base_eval_key"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    steps = [m.step for m in client.get_metric_history(pooled_run.info.run_id, "val/ndcg_at_10")]
    assert steps == [0, 2]
    # validation changes nothing else: the untrained and the trained model on the test split (the
    # whole corpus indexed) score the same in both runs
    tests = {k: v for k, v in corpus_run.data.metrics.items() if k.startswith("test/")}
    assert {k: pooled_run.data.metrics[k] for k in tests} == pytest.approx(tests, abs=1e-6)
