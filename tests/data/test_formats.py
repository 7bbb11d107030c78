"""File readers: round trips, both qrels dialects, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lossbench.data.sources.formats import (
    DataFormatError,
    RunRow,
    TrainTuple,
    iter_run,
    iter_tuples,
    read_qrels,
    read_texts,
    read_trec_run,
    read_triples,
    write_trec_run,
)


def list_run(path: Path) -> list:
    return list(iter_run(path))


def list_tuples(path: Path) -> list:
    return list(iter_tuples(path))


def test_trec_run_round_trip_orders_by_score(tmp_path: Path) -> None:
    run = {"q2": {"a": 0.5, "b": 2.0}, "q1": {"c": 1.0}}
    path = write_trec_run(run, tmp_path / "x.run", tag="t")
    assert path.read_text().splitlines() == [
        "q1 Q0 c 1 1 t",
        "q2 Q0 b 1 2 t",
        "q2 Q0 a 2 0.5 t",
    ]
    assert read_trec_run(path) == run


def test_a_doc_listed_twice_in_a_run_file_keeps_its_best_score(tmp_path: Path) -> None:
    path = tmp_path / "dup.run"
    path.write_text("q Q0 a 1 0.5 t\nq Q0 b 2 0.4 t\nq Q0 a 3 0.9 t\nq Q0 b 4 0.1 t\n")
    assert read_trec_run(path) == {"q": {"a": 0.9, "b": 0.4}}


def test_qrels_in_trec_and_beir_dialects(tmp_path: Path) -> None:
    trec = tmp_path / "qrels.txt"
    trec.write_text("1 0 d1 2\n1 0 d2 0\n1 1 d1 3\n")
    assert read_qrels(trec) == {"1": {"d1": 3, "d2": 0}}  # max over iterations
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    assert read_qrels(beir) == {"q": {"d": 1}}


def test_texts_from_jsonl_and_tsv(tmp_path: Path) -> None:
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text('{"_id": "d1", "title": "T", "text": "body"}\n{"_id": 2, "text": "x"}\n')
    assert read_texts(jsonl) == {"d1": "T body", "2": "x"}
    tsv = tmp_path / "queries.tsv"
    tsv.write_text("q1\twhat is it\n")
    assert read_texts(tsv) == {"q1": "what is it"}


@pytest.mark.parametrize(
    ("name", "content", "reader", "expected"),
    [
        ("bad.run", "q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 two 0.4 tag\n", read_trec_run, "integer rank"),
        ("short.run", "q1 Q0 d1 1 0.5\n", read_trec_run, "qid Q0 docid rank score tag"),
        ("qrels.txt", "1 0 d1 2\n1 d2\n", read_qrels, "TREC"),
        ("grades.txt", "1 0 d1 high\n", read_qrels, "integer grade"),
        ("triples.tsv", "q\tp\tn\nq\tp\n", read_triples, "pos_docid"),
        (
            "corpus.jsonl",
            '{"_id": "d1", "text": "ok"}\n{"_id": "d2"}\n',
            read_texts,
            '"_id" and "text"',
        ),
        ("corpus.tsv", "d1 no tab here\n", read_texts, "id<TAB>text"),
        (
            "run.jsonl",
            '{"query_id": "q", "doc_id": "d", "score": 1}\n{"query_id": "q"}\n',
            list_run,
            '"doc_id", a numeric "score"',
        ),
        ("score.jsonl", '{"query_id": "q", "doc_id": "d", "score": "high"}\n', list_run, "numeric"),
        ("x.run", "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 zero t\n", list_run, "numeric score"),
        ("t.tsv", "q\tp\tn\nq\tp\tn\t1.0\n", list_tuples, "pos_score<TAB>neg_score"),
        ("s.tsv", "q\tp\tn\t1.0\tlow\n", list_tuples, "numeric scores"),
        (
            "t.jsonl",
            '{"query_id": "q", "doc_ids": ["p", "n"]}\n{"query_id": "q", "doc_ids": ["p"]}\n',
            list_tuples,
            "at least 2 docs",
        ),
        (
            "u.jsonl",
            '{"query_id": "q", "doc_ids": ["p", "n"], "scores": [1]}\n',
            list_tuples,
            '"scores", one per doc',
        ),
    ],
)
def test_malformed_lines_name_the_file_and_line(
    tmp_path: Path, name, content, reader, expected
) -> None:
    path = tmp_path / name
    path.write_text(content)
    line = len(content.splitlines())
    with pytest.raises(DataFormatError, match=rf"{name}:{line}: expected .*{expected}"):
        reader(path)


def test_runs_read_in_three_formats(tmp_path: Path) -> None:
    import pandas as pd

    trec = tmp_path / "a.run"
    trec.write_text("q1 Q0 d1 1 2.5 t\n")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"query_id": "q1", "doc_id": "d1", "score": 2.5, "rank": 1}\n')
    parquet = tmp_path / "a.parquet"
    pd.DataFrame({"query_id": ["q1"], "doc_id": ["d1"], "score": [2.5], "rank": [1]}).to_parquet(
        parquet
    )
    expected = [RunRow("q1", "d1", 2.5, 1)]
    assert list_run(trec) == list_run(jsonl) == list_run(parquet) == expected


def test_a_parquet_run_names_its_missing_columns(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "bad.parquet"
    pd.DataFrame({"qid": ["q1"], "doc_id": ["d1"], "score": [1.0]}).to_parquet(path)
    with pytest.raises(DataFormatError, match=r"bad.parquet: expected columns .* missing query_id"):
        list_run(path)
    (tmp_path / "not.parquet").write_text("hello")
    with pytest.raises(DataFormatError, match="not.parquet: expected a parquet file"):
        list_run(tmp_path / "not.parquet")


def test_tuples_with_scores_and_several_negatives(tmp_path: Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text("q\tp\tn\t3.5\t1\n")
    assert list_tuples(tsv) == [TrainTuple("q", ("p", "n"), (3.5, 1.0))]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"query_id": 7, "doc_ids": ["p", "n1", "n2"]}\n')
    assert list_tuples(jsonl) == [TrainTuple("7", ("p", "n1", "n2"))]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.run"):
        read_trec_run(tmp_path / "nope.run")
