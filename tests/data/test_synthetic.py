"""Tests of the synthetic retrieval collection generator."""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from lossbench.data.sources import synthetic
from lossbench.data.sources.synthetic import SyntheticSpec, cached, generate
from lossbench.data.sources.synthetic_process import build_collection, grade

SPLITS = ("train", "dev", "test")
FILES = (
    "corpus.jsonl",
    "queries.jsonl",
    "qrels/train.tsv",
    "qrels/dev.tsv",
    "qrels/test.tsv",
    "triples.tsv",
    "teacher.run",
    "meta.json",
)
SMALL = SyntheticSpec(
    seed=3,
    num_topics=6,
    num_docs=240,
    num_train_queries=60,
    num_dev_queries=10,
    num_test_queries=20,
    background_vocab=300,
    teacher_depth=20,
    negatives_per_query=3,
)


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default collection, generated once for the module."""
    return generate(SyntheticSpec(), tmp_path_factory.mktemp("default"))


def read_jsonl(path: Path) -> dict[str, str]:
    """``_id -> text`` of a BEIR jsonl file."""
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return {row["_id"]: row["text"] for row in rows}


def read_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """``qid -> {docid: grade}`` of one split, checking the header."""
    lines = (folder / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in lines[1:]:
        qid, docid, score = line.split("\t")
        assert docid not in qrels[qid]
        qrels[qid][docid] = int(score)
    return dict(qrels)


def read_run(folder: Path) -> dict[str, list[tuple[str, int, float]]]:
    """``qid -> [(docid, rank, score)]`` of the teacher run, in file order."""
    run: dict[str, list[tuple[str, int, float]]] = defaultdict(list)
    for line in (folder / "teacher.run").read_text(encoding="utf-8").splitlines():
        qid, q0, docid, rank, score, tag = line.split(" ")
        assert (q0, tag) == ("Q0", "synthetic-teacher")
        run[qid].append((docid, int(rank), float(score)))
    return dict(run)


def ndcg_at_10(ranking: list[str], judged: dict[str, int]) -> float:
    """nDCG@10 with linear gains."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def test_same_spec_gives_identical_bytes(tmp_path: Path) -> None:
    first = generate(SMALL, tmp_path / "a")
    second = generate(SMALL, tmp_path / "b")
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_different_seed_gives_different_corpus(tmp_path: Path) -> None:
    first = generate(SMALL, tmp_path / "a")
    other = SyntheticSpec(**{**SMALL.__dict__, "seed": SMALL.seed + 1})
    second = generate(other, tmp_path / "b")
    assert (first / "corpus.jsonl").read_bytes() != (second / "corpus.jsonl").read_bytes()
    assert SMALL.fingerprint() != other.fingerprint()
    assert SMALL.fingerprint() == SyntheticSpec(**SMALL.__dict__).fingerprint()


def test_counts_match_spec_and_meta(default_dir: Path) -> None:
    spec = SyntheticSpec()
    meta = json.loads((default_dir / "meta.json").read_text(encoding="utf-8"))
    corpus = read_jsonl(default_dir / "corpus.jsonl")
    queries = read_jsonl(default_dir / "queries.jsonl")
    assert len(corpus) == spec.num_docs == meta["counts"]["docs"]
    assert len(queries) == spec.num_train_queries + spec.num_dev_queries + spec.num_test_queries
    expected = {
        "train": spec.num_train_queries,
        "dev": spec.num_dev_queries,
        "test": spec.num_test_queries,
    }
    assert meta["counts"]["queries"] == expected
    for field, value in spec.__dict__.items():
        assert meta[field] == value
    for split in SPLITS:
        qrels = read_qrels(default_dir, split)
        assert meta["counts"]["judgements"][split] == sum(len(j) for j in qrels.values())
    triples = (default_dir / "triples.tsv").read_text(encoding="utf-8").splitlines()
    assert (
        len(triples)
        == meta["counts"]["triples"]
        == spec.num_train_queries * spec.negatives_per_query
    )
    teacher = (default_dir / "teacher.run").read_text(encoding="utf-8").splitlines()
    assert len(teacher) == meta["counts"]["teacher_lines"] == spec.num_train_queries * 50
    lengths = [len(text.split()) for text in corpus.values()]
    assert abs(sum(lengths) / len(lengths) - spec.doc_length) < 2
    assert all(4 <= len(text.split()) <= 6 for text in queries.values())


def test_qrels_are_valid(default_dir: Path) -> None:
    corpus = read_jsonl(default_dir / "corpus.jsonl")
    queries = read_jsonl(default_dir / "queries.jsonl")
    grades: Counter[int] = Counter()
    sizes = []
    for split in SPLITS:
        qrels = read_qrels(default_dir, split)
        assert set(qrels) == {q for q in queries if q.startswith(f"{split}-")}
        for judged in qrels.values():
            assert set(judged) <= set(corpus)
            assert len(judged) >= 2
            sizes.append(len(judged))
            grades.update(judged.values())
    assert set(grades) == {1, 2, 3}
    assert 4 <= sum(sizes) / len(sizes) <= 12


def test_query_texts_are_unique_across_splits(default_dir: Path) -> None:
    queries = read_jsonl(default_dir / "queries.jsonl")
    assert len(set(queries.values())) == len(queries)


def test_triples_are_valid(default_dir: Path) -> None:
    spec = SyntheticSpec()
    collection = build_collection(spec)
    topic = {doc.doc_id: doc.topic for doc in collection.docs}
    query_topic = {q.query_id: q.topic for q in collection.queries}
    qrels = read_qrels(default_dir, "train")
    lines = (default_dir / "triples.tsv").read_text(encoding="utf-8").splitlines()
    per_query: Counter[str] = Counter()
    same_topic = 0
    for line in lines:
        qid, pos, neg = line.split("\t")
        per_query[qid] += 1
        assert qrels[qid][pos] > qrels[qid].get(neg, 0)
        assert topic[pos] == query_topic[qid]
        same_topic += topic[neg] == query_topic[qid]
    assert set(per_query.values()) == {spec.negatives_per_query}
    assert set(per_query) == set(qrels)
    assert same_topic >= 0.9 * len(lines)


def test_teacher_run_is_valid(default_dir: Path) -> None:
    spec = SyntheticSpec()
    corpus = read_jsonl(default_dir / "corpus.jsonl")
    qrels = read_qrels(default_dir, "train")
    run = read_run(default_dir)
    assert set(run) == set(qrels)
    quality = []
    for qid, rows in run.items():
        assert [rank for _, rank, _ in rows] == list(range(1, spec.teacher_depth + 1))
        scores = [score for _, _, score in rows]
        assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
        docs = [docid for docid, _, _ in rows]
        assert len(set(docs)) == len(docs) and set(docs) <= set(corpus)
        assert set(qrels[qid]) <= set(docs)
        quality.append(ndcg_at_10(docs, qrels[qid]))
    assert 0.5 < sum(quality) / len(quality) < 0.97  # correlated but imperfect


def test_query_synonyms_never_appear_in_documents() -> None:
    collection = build_collection(SMALL)
    doc_words = {w for doc in collection.docs for w in doc.text.split()}
    for topic in collection.concepts:
        for concept in topic:
            assert concept.doc_word in doc_words
            assert not set(concept.query_words) & doc_words
    words = list(collection.background) + [w for t in collection.topic_words for w in t]
    words += [w for t in collection.concepts for c in t for w in (c.doc_word, *c.query_words)]
    assert len(set(words)) == len(words)
    assert all(w.isalpha() and w.islower() and len(w) <= 7 for w in words)


def test_some_query_words_are_stem_variants() -> None:
    collection = build_collection(SyntheticSpec())
    concepts = [c for topic in collection.concepts for c in topic]
    stem = {}
    for word in collection.background:
        stem.setdefault(word[:-1], []).append(word)
    variants = sum(c.query_words[0][:-1] == c.doc_word[:-1] for c in concepts)
    assert 0.3 < variants / len(concepts) < 0.7
    for concept in concepts:
        for word in concept.query_words[1:]:
            assert word[:-1] != concept.doc_word[:-1]
    assert all(len(words) == 1 for words in stem.values())  # filler words share no stem


def test_grade_follows_concept_cosine() -> None:
    assert grade(frozenset({1, 2}), frozenset({1, 2})) == 3
    assert grade(frozenset({1, 2}), frozenset({1, 2, 5})) == 2
    assert grade(frozenset({1, 2}), frozenset({1, 2, 5, 6})) == 1
    assert grade(frozenset({1, 2, 3}), frozenset({1, 2, 4})) == 1
    assert grade(frozenset({1, 2}), frozenset({1, 5})) == 0


def test_exact_term_matching_is_weak(default_dir: Path) -> None:
    corpus = {d: set(t.split()) for d, t in read_jsonl(default_dir / "corpus.jsonl").items()}
    queries = read_jsonl(default_dir / "queries.jsonl")
    qrels = read_qrels(default_dir, "test")
    df = Counter(w for words in corpus.values() for w in words)
    ids = sorted(corpus, key=lambda d: int(d[1:]))
    rng = random.Random(0)
    overlap, shuffled, in_relevant = [], [], []
    for qid, judged in qrels.items():
        terms = set(queries[qid].split())
        idf = {w: math.log(len(corpus) / df[w]) for w in terms if df[w]}
        scores = {d: sum(idf.get(w, 0.0) for w in terms & corpus[d]) for d in ids}
        overlap.append(ndcg_at_10(sorted(ids, key=lambda d: -scores[d]), judged))
        shuffled.append(ndcg_at_10(rng.sample(ids, len(ids)), judged))
        relevant_words = set().union(*(corpus[d] for d in judged))
        words = queries[qid].split()
        in_relevant.append(sum(w in relevant_words for w in words) / len(words))
    mean_overlap = sum(overlap) / len(overlap)
    assert 2 * sum(shuffled) / len(shuffled) < mean_overlap < 0.6
    assert sum(in_relevant) / len(in_relevant) < 0.5


def test_cached_generates_once(tmp_path: Path) -> None:
    folder = cached(SMALL, tmp_path)
    assert folder == tmp_path / f"synthetic-{SMALL.fingerprint()}"
    for name in (*FILES, "DONE"):
        assert (folder / name).is_file(), name
    stamp = (folder / "corpus.jsonl").stat().st_mtime_ns
    assert cached(SMALL, tmp_path) == folder
    assert (folder / "corpus.jsonl").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temp folders left


def test_cached_replaces_an_incomplete_folder(tmp_path: Path) -> None:
    target = tmp_path / f"synthetic-{SMALL.fingerprint()}"
    target.mkdir()
    (target / "corpus.jsonl").write_text("half written\n", encoding="utf-8")
    folder = cached(SMALL, tmp_path)
    assert folder == target and (folder / "DONE").is_file()
    reference = generate(SMALL, tmp_path / "ref")
    for name in FILES:
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folder.name, "ref"])


def test_cached_loser_of_a_race_discards_its_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / f"synthetic-{SMALL.fingerprint()}"
    real_generate = synthetic.generate

    def generate_while_another_process_wins(spec: SyntheticSpec, out_dir: Path) -> Path:
        winner = real_generate(spec, tmp_path / ".winner")
        (winner / "DONE").write_text("winner\n", encoding="utf-8")
        winner.rename(target)
        return real_generate(spec, out_dir)

    monkeypatch.setattr(synthetic, "generate", generate_while_another_process_wins)
    assert cached(SMALL, tmp_path) == target
    assert (target / "DONE").read_text(encoding="utf-8") == "winner\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
