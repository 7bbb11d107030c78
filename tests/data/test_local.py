"""Local folders: BEIR's layout as is and TREC/TSV files, derived dev splits and triples, lazy files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lossbench.data.datasets import DocDataset, RunDataset, TupleDataset
from lossbench.data.sources.formats import DataFormatError
from lossbench.data.sources.local import load_local
from lossbench.data.sources.textfile import TextFile, load_texts
from tests.helpers import BEIR_SPLITS, write_beir, write_trec


def test_beir_with_train_and_test_only_holds_out_dev_and_mines_triples(tmp_path: Path) -> None:
    collection = load_local(write_beir(tmp_path / "beir", BEIR_SPLITS), dev_percent=10)
    dev, train = set(collection.qrels["dev"]), set(collection.qrels["train"])
    assert len(dev) == 2 and len(train) == 16 and dev | train == set(BEIR_SPLITS["train"])
    assert set(collection.split_queries("dev")) == dev
    assert set(collection.split_queries("test")) == set(BEIR_SPLITS["test"])
    assert not dev & set(collection.queries["train"])  # held out: they never train
    triples = list(collection.triples)
    assert {q for q, _, _ in triples} == train
    for qid, positive, negative in triples:
        assert collection.qrels["train"][qid][positive] > 0
        assert collection.qrels["train"][qid].get(negative, 0) <= 0
    assert "mined with BM25" in collection.extra["triples"]
    sample = next(iter(TupleDataset(collection)))
    assert sample.targets == [1.0, 0.0]


def test_trec_tsv_layout_reads_qrels_triples_and_run(tmp_path: Path) -> None:
    collection = load_local(write_trec(tmp_path / "trec"))
    assert [len(collection.split_queries(s)) for s in ("train", "dev", "test")] == [16, 4, 4]
    assert len(collection.triples) == 48
    assert sorted(collection.teacher_run) == sorted(f"q{j}" for j in range(16))
    sample = RunDataset(collection, depth=3, targets="score")[0]
    assert sample.targets == [9.0, 8.0, 7.0]


def test_a_triples_file_drops_the_tuples_of_held_out_queries(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir", BEIR_SPLITS)
    (folder / "triples.tsv").write_text(
        "".join(f"q{j}\td{j % 4}\td{(j + 1) % 4}\n" for j in range(18))
    )
    collection = load_local(folder, dev_percent=10)
    dev = set(collection.qrels["dev"])
    kept = [t.query_id for t in collection.triples]
    assert len(kept) == 16 and not dev & set(kept)


def test_relevance_map_applies_to_every_split(tmp_path: Path) -> None:
    collection = load_local(write_trec(tmp_path / "trec"), relevance_map={1: 5, 2: 6})
    grades = {
        g for split in collection.qrels.values() for docs in split.values() for g in docs.values()
    }
    assert grades == {5, 6}


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no corpus file; expected one of corpus.jsonl"):
        load_local(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_local(tmp_path / "nope")


def test_a_malformed_corpus_line_is_named(tmp_path: Path) -> None:
    folder = write_trec(tmp_path / "trec")
    with (folder / "corpus.tsv").open("a") as handle:
        handle.write("no tab on this line\n")
    with pytest.raises(DataFormatError, match=r"corpus.tsv:41: expected 'id<TAB>text'"):
        load_local(folder)


def test_a_large_file_is_indexed_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    records = [
        {"_id": f"d{i}", "title": "T" if i % 2 else "", "text": f"text {i}"} for i in range(50)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    texts = load_texts(path, lazy_above_bytes=10)
    assert isinstance(texts, TextFile)
    assert dict(texts.items()) == load_texts(path)  # same content as the in-memory reader
    assert texts["d7"] == "T text 7" and texts["d10"] == "text 10" and len(texts) == 50
    assert "d99" not in texts
    with pytest.raises(KeyError):
        texts["d99"]
    collection = load_local(write_trec(tmp_path / "trec"), lazy_above_bytes=10)
    assert isinstance(collection.docs, TextFile)
    assert [s.id for s in DocDataset(collection)][:2] == ["d0", "d1"]  # streams the file in order


def test_a_malformed_line_of_a_large_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": "ok"}\n{"id": "q2"}\n')
    with pytest.raises(DataFormatError, match=r"queries.jsonl:2: expected a JSON object"):
        load_texts(path, lazy_above_bytes=1)
