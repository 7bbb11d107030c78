"""Re-ranking equals scoring every candidate alone and sorting; the first stages (BM25, a run file, a
saved bi-encoder) give what their sources give; candidates are checked against the collection."""

from __future__ import annotations

from pathlib import Path

import pytest

from lossbench.data.collection import Collection
from lossbench.data.sources.formats import DataFormatError
from lossbench.experiment.checks import ConfigurationError
from lossbench.experiment.model_checks import check_candidates
from lossbench.retrieval.first_stage import BiEncoderFirstStage, BM25FirstStage, RunFileFirstStage
from lossbench.retrieval.rerank import rerank
from tests.helpers import tiny_collection


@pytest.fixture(scope="module")
def collection() -> Collection:
    docs, queries, qrels = tiny_collection()
    test = [f"q{j}" for j in range(16, 24)]
    return Collection(
        name="tiny",
        docs=docs,
        queries={"test": {q: queries[q] for q in test}},
        qrels={"test": {q: qrels[q] for q in test}},
    )


def test_reranking_equals_scoring_each_candidate_alone_and_sorting(
    tiny_cross_module, collection: Collection
) -> None:
    module = tiny_cross_module.eval()
    queries = collection.split_queries("test")
    candidates = BM25FirstStage().search(collection, queries, k=12)
    run = rerank(module, candidates, queries, collection.docs, batch_size=7, progress=False)
    assert run.keys() == candidates.keys()
    for qid, ranked in candidates.items():
        alone = {
            doc: module.score_pairs([queries[qid]], [collection.docs[doc]]).item() for doc in ranked
        }
        assert run[qid].keys() == alone.keys()
        assert [run[qid][d] for d in alone] == pytest.approx(list(alone.values()), abs=1e-5)
        by_score = sorted(alone, key=lambda d: (-alone[d], d))
        assert sorted(run[qid], key=lambda d: (-run[qid][d], d)) == by_score
    assert module.training is False  # left as it was


def test_chunks_tokenized_ahead_in_a_thread_give_the_same_run(
    tiny_cross_module, collection: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lossbench.retrieval.rerank as reranking

    module = tiny_cross_module.eval()
    queries = collection.split_queries("test")
    candidates = BM25FirstStage().search(collection, queries, k=6)
    whole = rerank(module, candidates, queries, collection.docs, progress=False)
    monkeypatch.setattr(reranking, "PAIRS_PER_CHUNK", 5)  # several chunks, the last one partial
    for ahead in (False, True):
        module.token_cache.clear()
        chunked = rerank(
            module, candidates, queries, collection.docs, 4, progress=False, tokenize_ahead=ahead
        )
        assert chunked.keys() == whole.keys()
        for qid, scores in whole.items():
            assert chunked[qid] == pytest.approx(scores, abs=1e-5)


def test_validation_scores_the_dev_candidates_only(tiny_cross_module, collection) -> None:
    """Its cost is the split's queries x their candidates, whatever the corpus size."""
    from dataclasses import replace

    from lossbench.training.validation import RerankValidation

    module = tiny_cross_module
    queries = collection.split_queries("test")
    candidates = BM25FirstStage().search(collection, queries, k=5)
    scored: list[int] = []
    original = module.score

    def counting(encoding):  # noqa: ANN001, ANN202
        scored.append(encoding["input_ids"].shape[0])
        return original(encoding)

    module.score = counting
    bigger = replace(collection, docs={**collection.docs, **{f"x{i}": "x" for i in range(500)}})
    for corpus in (collection, bigger):
        scored.clear()
        validation = RerankValidation(corpus, candidates, split="test", batch_size=4)
        means = validation.evaluate_now(module, step=3)
        assert sum(scored) == sum(len(docs) for docs in candidates.values())
        assert validation.history == [(3, means)] and validation.last_step == 3


def test_bm25_first_stage_is_bm25s_and_indexes_once(collection: Collection) -> None:
    from lossbench.retrieval.bm25 import BM25Index

    stage = BM25FirstStage(k1=1.2, b=0.75)
    queries = collection.split_queries("test")
    expected = BM25Index(k1=1.2, b=0.75).add(collection.docs).search(queries, 5)
    assert stage.search(collection, queries, 5) == expected
    index = stage._index
    stage.search(collection, queries, 3)
    assert stage._index is index and stage.describe() == "bm25"


def write_run(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_a_run_file_first_stage_gives_each_querys_top_k_by_score(
    tmp_path: Path, collection: Collection
) -> None:
    path = write_run(
        tmp_path / "bm25.run",
        [
            "q16 Q0 d1 2 5.0 x",
            "q16 Q0 d2 1 9.0 x",  # the file's ranks disagree with its scores: scores win
            "q16 Q0 d3 3 1.0 x",
            "q17 Q0 d4 1 3.0 x",
            "other Q0 d5 1 3.0 x",
        ],
    )
    stage = RunFileFirstStage(str(path))
    run = stage.search(collection, collection.split_queries("test"), k=2)
    assert run == {"q16": {"d2": 9.0, "d1": 5.0}, "q17": {"d4": 3.0}}
    assert stage.describe() == "run file bm25.run"


def test_run_file_first_stage_errors_name_the_fix(tmp_path: Path, collection) -> None:
    with pytest.raises(ValueError, match=r"first_stage.path=/path/to/run"):
        RunFileFirstStage(None)
    with pytest.raises(FileNotFoundError, match=r"first_stage.path=.*nothing.run: no such file"):
        RunFileFirstStage(str(tmp_path / "nothing.run"))
    bad = write_run(tmp_path / "bad.run", ["q16 Q0 d1 1 5.0 x", "q16 Q0 d2 two 4.0 x"])
    with pytest.raises(DataFormatError, match=r"bad.run:2: expected an integer rank"):
        RunFileFirstStage(str(bad)).search(collection, collection.split_queries("test"), 10)


def test_a_saved_bi_encoder_first_stage_searches_like_its_module(
    tmp_path: Path, tiny_module, collection: Collection
) -> None:
    from lossbench.retrieval import ExactDenseIndex, index_corpus, search_split

    tiny_module.save_pretrained(tmp_path / "dpr")
    stage = BiEncoderFirstStage(str(tmp_path / "dpr"), batch_size=16, accelerator="cpu")
    run = stage.search(collection, collection.split_queries("test"), k=5)
    tiny_module.eval()
    index = index_corpus(tiny_module, collection, ExactDenseIndex(), batch_size=16)
    expected = search_split(tiny_module, collection, index, "test", k=5)
    assert run.keys() == expected.keys()
    for qid in run:
        assert run[qid].keys() == expected[qid].keys()
        assert list(run[qid].values()) == pytest.approx(list(expected[qid].values()), abs=1e-5)
    assert stage.describe() == "bi-encoder dpr"


@pytest.mark.parametrize("config_name", ["DprConfig", "SpladeConfig", "ColConfig"])
def test_a_saved_bi_encoder_is_searched_in_an_exact_index_for_its_vectors(config_name: str) -> None:
    from lossbench.models.config import CONFIG_CLASSES
    from lossbench.retrieval.first_stage import exact_index_for

    config = CONFIG_CLASSES[config_name]()
    index = exact_index_for(config)
    assert index.vectors == config.vectors and not index.approximate


def test_bi_encoder_first_stage_errors_name_the_fix(tmp_path: Path, tiny_cross_module) -> None:
    with pytest.raises(ValueError, match=r"first_stage=model needs a saved bi-encoder"):
        BiEncoderFirstStage(None)
    with pytest.raises(FileNotFoundError, match=r"no such folder"):
        BiEncoderFirstStage(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match=r"is not a saved bi-encoder \(no lossbench_config.json\)"):
        BiEncoderFirstStage(str(tmp_path))
    tiny_cross_module.save_pretrained(tmp_path / "cross")
    with pytest.raises(ValueError, match=r"holds a cross-encoder, which cannot search a corpus"):
        BiEncoderFirstStage(str(tmp_path / "cross"))


QUERIES = {"q1": "wing", "q2": "heat", "q3": "shock"}
DOCS = {"d1": "a", "d2": "b", "d3": "c"}


def test_candidates_keep_the_splits_queries_and_known_docs() -> None:
    run = {"q1": {"d1": 2.0, "dX": 1.0}, "q2": {"d2": 1.0, "d3": 0.5}, "q9": {"d1": 1.0}}
    kept, warnings = check_candidates(run, QUERIES, DOCS, "test", 2, "bm25")
    assert kept == {"q1": {"d1": 2.0}, "q2": {"d2": 1.0, "d3": 0.5}}
    assert warnings == [
        "bm25: 1 candidate doc id(s) of the test run are not in the collection (e.g. 'dX'); "
        "they are dropped",
        "bm25 gives 1 of the 3 judged test queries no candidate: they score 0 on every metric",
    ]


def test_k_beyond_what_the_first_stage_returns_is_a_warning() -> None:
    run = {q: {"d1": 1.0, "d2": 0.5} for q in QUERIES}
    kept, warnings = check_candidates(run, QUERIES, DOCS, "dev", 100, "run file x.run")
    assert kept == run
    assert warnings == [
        "eval.k=100, but run file x.run returns at most 2 candidates per dev query: those are "
        "re-ranked (recall@100 stays the first stage's)"
    ]


def test_a_run_of_other_queries_is_an_error_naming_both_id_styles() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"run file x.run gives none of the 3 judged test queries a candidate: its query ids "
        r"\(1042, 2093, ...\) are not the collection's \(q1, q2, q3, ...\)",
    ):
        check_candidates({}, QUERIES, DOCS, "test", 10, "run file x.run", ["1042", "2093"])
    with pytest.raises(ConfigurationError, match=r"^bm25 gives none of the 3 judged dev queries"):
        check_candidates({"q1": {}}, QUERIES, DOCS, "dev", 10, "bm25")
