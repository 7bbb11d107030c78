"""File readers: round trips, both qrels dialects, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lossbench.data.formats import (
    DataFormatError,
    read_qrels,
    read_texts,
    read_trec_run,
    read_triples,
    write_trec_run,
)


def test_trec_run_round_trip_orders_by_score(tmp_path: Path) -> None:
    run = {"q2": {"a": 0.5, "b": 2.0}, "q1": {"c": 1.0}}
    path = write_trec_run(run, tmp_path / "x.run", tag="t")
    assert path.read_text().splitlines() == [
        "q1 Q0 c 1 1.000000 t",
        "q2 Q0 b 1 2.000000 t",
        "q2 Q0 a 2 0.500000 t",
    ]
    assert read_trec_run(path) == run


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
        ("corpus.jsonl", '{"_id": "d1", "text": "ok"}\n{"_id": "d2"}\n', read_texts, '"_id" and "text"'),
        ("corpus.tsv", "d1 no tab here\n", read_texts, "id<TAB>text"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path: Path, name, content, reader, expected) -> None:
    path = tmp_path / name
    path.write_text(content)
    line = len(content.splitlines())
    with pytest.raises(DataFormatError, match=rf"{name}:{line}: expected .*{expected}"):
        reader(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.run"):
        read_trec_run(tmp_path / "nope.run")
