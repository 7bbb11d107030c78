"""Local folders: BEIR's layout as is and TREC/TSV files, derived dev splits and triples, lazy files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lossbench.data.datasets import DocDataset, RunDataset, TupleDataset
from lossbench.data.formats import DataFormatError
from lossbench.data.local import load_local
from lossbench.data.textfile import TextFile, load_texts

TOPICS = [
    ["wing", "lift", "airfoil", "flap", "stall"],
    ["heat", "conduction", "slab", "thermal", "flux"],
    ["shock", "wave", "supersonic", "mach", "nozzle"],
    ["boundary", "layer", "turbulent", "laminar", "skin"],
]


def tiny_collection(
    seed: int = 0,
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """40 docs and 24 queries on 4 topics; each query judges 3 docs of its topic."""
    rng = random.Random(seed)
    docs, queries, qrels = {}, {}, {}
    for i in range(40):
        words = TOPICS[i % 4]
        docs[f"d{i}"] = " ".join(rng.choice(words) for _ in range(8)) + " study results"
    for j in range(24):
        topic = j % 4
        queries[f"q{j}"] = " ".join(rng.sample(TOPICS[topic], 2))
        judged = [f"d{i}" for i in range(topic, 40, 4)]
        qrels[f"q{j}"] = {doc: 1 + (k == 0) for k, doc in enumerate(rng.sample(judged, 3))}
    return docs, queries, qrels


def write_beir(folder: Path, splits: dict[str, list[str]]) -> Path:
    """BEIR layout: corpus.jsonl, queries.jsonl, qrels/{split}.tsv with a header."""
    docs, queries, qrels = tiny_collection()
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for doc_id, text in docs.items():
            handle.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as handle:
        for qid, text in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, qids in splits.items():
        lines = ["query-id\tcorpus-id\tscore\n"]
        lines += [f"{q}\t{d}\t{g}\n" for q in qids for d, g in qrels[q].items()]
        (folder / "qrels" / f"{split}.tsv").write_text("".join(lines))
    return folder


def write_trec(folder: Path) -> Path:
    """TREC/TSV layout: corpus.tsv, queries.tsv, TREC qrels per split, triples.tsv, teacher.run."""
    docs, queries, qrels = tiny_collection()
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in docs.items()))
    (folder / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()))
    splits = {"train": range(0, 16), "dev": range(16, 20), "test": range(20, 24)}
    for split, numbers in splits.items():
        lines = [f"q{j} 0 {d} {g}\n" for j in numbers for d, g in qrels[f"q{j}"].items()]
        (folder / "qrels" / f"{split}.txt").write_text("".join(lines))
    triples = []
    run = []
    for j in splits["train"]:
        positives = sorted(qrels[f"q{j}"])
        negative = f"d{(j % 4 + 1) % 4}"
        triples += [f"q{j}\t{p}\t{negative}\n" for p in positives]
        scored = [*positives, negative, f"d{(j % 4 + 2) % 4}"]
        run += [f"q{j} Q0 {d} {r} {10.0 - r:.1f} teacher\n" for r, d in enumerate(scored, 1)]
    (folder / "triples.tsv").write_text("".join(triples))
    (folder / "teacher.run").write_text("".join(run))
    return folder


BEIR_SPLITS = {"train": [f"q{j}" for j in range(18)], "test": [f"q{j}" for j in range(18, 24)]}


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
