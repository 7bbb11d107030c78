"""A small, deterministic, synthetic retrieval collection: the default dataset of every run and test.

The collection is built so that a MiniLM bi-encoder has something real to learn in ~80 training
steps: queries and their relevant documents name the same things with *different* words, so exact
word matching is weak (a term-overlap ranker scores nDCG@10 ~0.05 on the test queries, random ~0.01)
and so is the pretrained encoder, which has never seen these words; fine-tuning on the training
queries teaches the mapping, part of which (the stem variants below) is a general skill that a few
steps can pick up, part of which (arbitrary synonyms) has to be memorised per concept.

Generative process
------------------
Everything is drawn from one ``random.Random(spec.seed)``, in a fixed order, over sorted or indexed
sequences (never ``hash()`` of strings), so one spec always gives byte-identical files.

1. **Words.** A word is a pseudo-word: a stem of two consonant-vowel syllables plus a final ``k``,
   ``x`` or ``z`` (``"bakoz"``, ``"tumix"``), consonants from ``CONSONANTS`` and vowels from
   ``VOWELS``. There are 14 * 5 * 14 * 5 = 4,900 such stems; almost none of the words is English
   or a whole token of the MiniLM WordPiece vocabulary (each splits into 2-3 pieces), so the
   pretrained model has no prior for them. If more stems are needed, three-syllable stems (six
   letters, so never equal to a two-syllable one) are added. The stems are shuffled and dealt out
   without replacement: every word of the vocabulary has its own stem, so all words are unique and
   share no stem, except a concept's stem variant (step 3).
2. **Background vocabulary.** ``background_vocab`` filler words with Zipf frequencies: the word of
   rank r is drawn with probability proportional to ``1 / r**ZIPF_EXPONENT`` (1.1). Filler is shared
   by every document and query and carries no information (the frequent words act like stop words,
   the rare ones create accidental matches).
3. **Topics and concepts.** ``num_topics`` topics. Each topic has ``TOPIC_WORDS`` (4) topic words,
   used by its documents and by about half its queries (the signal an untrained model can pick up
   by exact matching: it finds the topic, not the relevant documents in it), and
   ``concepts_per_topic`` concepts. A concept has one DOCUMENT word and one or two QUERY words
   (``SYNONYM_COUNTS``, equal odds). With probability ``VARIANT_PROB`` (0.5) the first query word is
   a stem variant of the document word (same stem, another final: ``"tumix"`` -> ``"tumiz"``), the
   others are unrelated words. A concept's query words never appear in any document: that is the
   vocabulary mismatch to learn.
4. **Documents.** ``num_docs`` documents; topics are dealt round-robin and shuffled, so each topic
   gets ``num_docs / num_topics`` documents. A document has 2-4 distinct concepts of its topic (its
   facets, ``DOC_FACETS``). Its length L is uniform in ``[0.8, 1.2] * doc_length`` words; its words
   are each facet's document word repeated 2-3 times (``FACET_REPEATS``), ``round(0.2 * L)`` (at
   least 1) topic words of its topic drawn with replacement (``DOC_TOPIC_WORD_FRACTION``) and Zipf
   filler up to L words, all shuffled. (At ~2.6 WordPiece tokens a word, a 30-word document is ~80
   tokens: a 64-token document limit cuts a few words, rarely every copy of a facet word.)
5. **Queries.** A query has one topic (uniform) and 2 or 3 distinct concepts of it
   (``QUERY_CONCEPTS``, equal odds). Its words are one query word per concept (uniform among the
   concept's query words), one topic word with probability ``QUERY_TOPIC_WORD_PROB`` (0.5), and
   Zipf filler (at least one word) up to a length uniform in 4..6 (``QUERY_LENGTH``; 4-6 words is
   ~12-18 tokens, about what a 16-token query limit keeps), all shuffled.
6. **Relevance.** Let Q be the query's concept set and D the document's. A document of another topic
   has grade 0. Otherwise the grade comes from the cosine of the two concept sets,
   ``c = |Q & D| / sqrt(|Q| * |D|)``: 3 if ``c >= 0.9`` (the document is about exactly the query's
   concepts), 2 if ``c >= 0.75``, 1 if ``c >= 0.6``, else 0. So a document needs at least two of the
   query's concepts to be relevant, and one with extra facets is less relevant than a focused one.
   (Grading by the plain number of shared concepts would make ~60% of a topic's documents relevant
   to every query, leaving few same-topic negatives; the cosine gives ~8 relevant documents per
   query, from 2 to ~17, with a mix of grades, and a mean-pooled bi-encoder's similarity is
   naturally a cosine of bags of concepts.) A query with fewer than ``MIN_RELEVANT`` (2) relevant
   documents, or whose text equals an earlier query's text (any split), is re-drawn.
7. **Splits.** Train, dev and test queries are drawn one after the other from the same process, in
   that order; ids are ``train-<i>``, ``dev-<i>`` and ``test-<i>``. Every query is judged: its qrels
   list each relevant document (grades 1-3), the best first.
8. **Training triples.** ``negatives_per_query`` triples per train query. The positive is a relevant
   document drawn with weight ``2**grade - 1`` (higher grades preferred). The negative is a HARD
   negative: a document of the same topic with a strictly lower grade than the positive (mostly
   grade-0 documents sharing a concept or the topic words with the query); only when the topic has
   none is it a random document of another topic. A triple is not repeated for the same query while
   others remain.
9. **Teacher run.** For each train query, a pool of ``teacher_depth`` documents (fewer if the corpus
   is smaller): all its relevant documents, other documents of its topic, and ``teacher_depth // 5``
   random documents of other topics (more if the topic is too small to fill the pool). The noisy
   teacher scores each candidate ``grade + 0.35 * |Q & D| + 0.6 * [same topic] + N(0, 1)``
   (``TEACHER_NOISE``; correlated with the truth but imperfect: its nDCG@10 against the qrels is
   ~0.8) and ranks the pool; scores are written with 4 decimals and made strictly decreasing.

Files (BEIR layout, see :func:`generate`): ``corpus.jsonl``, ``queries.jsonl``,
``qrels/{train,dev,test}.tsv``, ``triples.tsv``, ``teacher.run``, ``meta.json``; :func:`cached` adds
a ``DONE`` marker. Changing the process changes the files: bump ``GENERATOR_VERSION`` (part of the
fingerprint, so caches of the old version are not reused).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

GENERATOR_VERSION = 1
"""Bumped whenever the generated files change for a given spec (part of the fingerprint)."""

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
FINALS = "kxz"
ZIPF_EXPONENT = 1.1
TOPIC_WORDS = 4
SYNONYM_COUNTS = (1, 2)
VARIANT_PROB = 0.5
DOC_FACETS = (2, 4)
FACET_REPEATS = (2, 3)
DOC_TOPIC_WORD_FRACTION = 0.2
QUERY_CONCEPTS = (2, 3)
QUERY_TOPIC_WORD_PROB = 0.5
QUERY_LENGTH = (4, 6)
MIN_RELEVANT = 2
TEACHER_NOISE = 1.0
MAX_QUERY_TRIES = 1000
SPLITS = ("train", "dev", "test")
DONE_MARKER = "DONE"
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"


@dataclass(frozen=True)
class SyntheticSpec:
    """Every knob of the synthetic collection; the same spec always gives the same files."""

    seed: int = 0
    num_topics: int = 20
    concepts_per_topic: int = 8
    num_docs: int = 1200
    num_train_queries: int = 800
    num_dev_queries: int = 50
    num_test_queries: int = 100
    doc_length: int = 30
    background_vocab: int = 2000
    teacher_depth: int = 50
    negatives_per_query: int = 2

    def fingerprint(self) -> str:
        """A short stable hash of all fields and the generator version (the cache folder name)."""
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class _Concept:
    """One concept: the word documents use for it and the synonyms queries use instead."""

    topic: int
    doc_word: str
    query_words: tuple[str, ...]


@dataclass(frozen=True)
class _Doc:
    """A generated document: its topic, its facets (concept indices within the topic), its text."""

    doc_id: str
    topic: int
    concepts: frozenset[int]
    text: str


@dataclass(frozen=True)
class _Query:
    """A generated query with its judged documents (doc index -> grade >= 1)."""

    query_id: str
    split: str
    topic: int
    concepts: frozenset[int]
    text: str
    qrels: dict[int, int]


@dataclass(frozen=True)
class _Generated:
    """Everything :func:`generate` writes, in memory (used by the tests too)."""

    background: tuple[str, ...]
    topic_words: tuple[tuple[str, ...], ...]
    concepts: tuple[tuple[_Concept, ...], ...]
    docs: tuple[_Doc, ...]
    queries: tuple[_Query, ...]
    triples: tuple[tuple[str, str, str], ...]
    teacher: tuple[tuple[str, str, int, float], ...]


def _validate(spec: SyntheticSpec) -> None:
    """Reject specs the process cannot satisfy."""
    if spec.num_topics < 1 or spec.num_docs < spec.num_topics:
        raise ValueError("need at least one topic and at least one document per topic")
    if spec.concepts_per_topic < 3:
        raise ValueError("concepts_per_topic must be >= 3 (queries name 2-3 concepts)")
    if spec.doc_length < 1 or spec.background_vocab < 1:
        raise ValueError("doc_length and background_vocab must be >= 1")
    if min(spec.num_train_queries, spec.num_dev_queries, spec.num_test_queries) < 0:
        raise ValueError("query counts must be >= 0")
    if spec.teacher_depth < 1 or spec.negatives_per_query < 0:
        raise ValueError("teacher_depth must be >= 1 and negatives_per_query >= 0")


def _stems(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct stems: shuffled CV+CV stems first, then CV+CV+CV stems if needed."""
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    pool = [a + b for a in syllables for b in syllables]
    rng.shuffle(pool)
    if count <= len(pool):
        return pool[:count]
    stems = list(pool)
    seen: set[str] = set()
    while len(stems) < count:
        stem = "".join(rng.choice(syllables) for _ in range(3))
        if stem not in seen:
            seen.add(stem)
            stems.append(stem)
    return stems


class _Zipf:
    """Draws background words with probability proportional to ``1 / rank**ZIPF_EXPONENT``."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words
        weights = [1.0 / (rank**ZIPF_EXPONENT) for rank in range(1, len(words) + 1)]
        self.cum_weights = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random, k: int) -> list[str]:
        """``k`` independent draws."""
        return rng.choices(self.words, cum_weights=self.cum_weights, k=k)


def _concept(topic: int, stem: str, synonym_stems: list[str], rng: random.Random) -> _Concept:
    """A concept: its document word, then query synonyms (the first maybe a stem variant)."""
    final = rng.choice(FINALS)
    synonyms: list[str] = []
    if rng.random() < VARIANT_PROB:
        synonyms.append(stem + rng.choice([f for f in FINALS if f != final]))
    synonyms += [other + rng.choice(FINALS) for other in synonym_stems[len(synonyms) :]]
    return _Concept(topic, stem + final, tuple(synonyms))


def _vocabulary(
    spec: SyntheticSpec, rng: random.Random
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], tuple[tuple[_Concept, ...], ...]]:
    """Background words, per-topic topic words and per-topic concepts, all words unique."""
    synonym_counts = [
        [rng.choice(SYNONYM_COUNTS) for _ in range(spec.concepts_per_topic)]
        for _ in range(spec.num_topics)
    ]
    concept_stems = sum(1 + n for n in itertools.chain.from_iterable(synonym_counts))
    total = spec.background_vocab + spec.num_topics * TOPIC_WORDS + concept_stems
    stems = iter(_stems(total, rng))
    background = tuple(next(stems) + rng.choice(FINALS) for _ in range(spec.background_vocab))
    topic_words = tuple(
        tuple(next(stems) + rng.choice(FINALS) for _ in range(TOPIC_WORDS))
        for _ in range(spec.num_topics)
    )
    concepts = tuple(
        tuple(
            _concept(topic, next(stems), list(itertools.islice(stems, n)), rng)
            for n in synonym_counts[topic]
        )
        for topic in range(spec.num_topics)
    )
    return background, topic_words, concepts


def _make_docs(
    spec: SyntheticSpec,
    rng: random.Random,
    zipf: _Zipf,
    topic_words: tuple[tuple[str, ...], ...],
    concepts: tuple[tuple[_Concept, ...], ...],
) -> tuple[_Doc, ...]:
    """Draw the corpus (process step 4)."""
    topics = [i % spec.num_topics for i in range(spec.num_docs)]
    rng.shuffle(topics)
    low = max(1, round(0.8 * spec.doc_length))
    high = max(low, round(1.2 * spec.doc_length))
    docs = []
    for index, topic in enumerate(topics):
        k = rng.randint(DOC_FACETS[0], min(DOC_FACETS[1], spec.concepts_per_topic))
        facets = sorted(rng.sample(range(spec.concepts_per_topic), k))
        length = rng.randint(low, high)
        words = []
        for facet in facets:
            words += [concepts[topic][facet].doc_word] * rng.randint(*FACET_REPEATS)
        words += rng.choices(topic_words[topic], k=max(1, round(DOC_TOPIC_WORD_FRACTION * length)))
        words += zipf.draw(rng, max(0, length - len(words)))
        rng.shuffle(words)
        docs.append(_Doc(f"d{index}", topic, frozenset(facets), " ".join(words)))
    return tuple(docs)


def _by_topic(num_topics: int, docs: tuple[_Doc, ...]) -> list[list[int]]:
    """Indices of each topic's documents, in corpus order."""
    by_topic: list[list[int]] = [[] for _ in range(num_topics)]
    for index, doc in enumerate(docs):
        by_topic[doc.topic].append(index)
    return by_topic


def _grade(query_concepts: frozenset[int], doc_concepts: frozenset[int]) -> int:
    """Relevance grade 0..3 of a same-topic document from the cosine of the concept sets."""
    shared = len(query_concepts & doc_concepts)
    if not shared:
        return 0
    cosine = shared / math.sqrt(len(query_concepts) * len(doc_concepts))
    if cosine >= 0.9:
        return 3
    if cosine >= 0.75:
        return 2
    return 1 if cosine >= 0.6 else 0


def _draw_query(
    spec: SyntheticSpec,
    rng: random.Random,
    zipf: _Zipf,
    topic_words: tuple[tuple[str, ...], ...],
    concepts: tuple[tuple[_Concept, ...], ...],
    docs: tuple[_Doc, ...],
    by_topic: list[list[int]],
) -> tuple[int, frozenset[int], str, dict[int, int]]:
    """One candidate query (process step 5) with its qrels (step 6); may have too few relevant."""
    topic = rng.randrange(spec.num_topics)
    chosen = frozenset(rng.sample(range(spec.concepts_per_topic), rng.choice(QUERY_CONCEPTS)))
    words = [rng.choice(concepts[topic][c].query_words) for c in sorted(chosen)]
    if rng.random() < QUERY_TOPIC_WORD_PROB:
        words.append(rng.choice(topic_words[topic]))
    words += zipf.draw(rng, max(1, rng.randint(*QUERY_LENGTH) - len(words)))
    rng.shuffle(words)
    qrels = {}
    for index in by_topic[topic]:
        g = _grade(chosen, docs[index].concepts)
        if g:
            qrels[index] = g
    return topic, chosen, " ".join(words), qrels


def _make_queries(
    spec: SyntheticSpec,
    rng: random.Random,
    zipf: _Zipf,
    topic_words: tuple[tuple[str, ...], ...],
    concepts: tuple[tuple[_Concept, ...], ...],
    docs: tuple[_Doc, ...],
) -> tuple[_Query, ...]:
    """Draw every split's queries, re-drawing duplicates and under-judged ones (step 7)."""
    by_topic = _by_topic(spec.num_topics, docs)
    counts = (spec.num_train_queries, spec.num_dev_queries, spec.num_test_queries)
    seen: set[str] = set()
    queries = []
    for split, count in zip(SPLITS, counts, strict=True):
        for i in range(count):
            for _ in range(MAX_QUERY_TRIES):
                topic, chosen, text, qrels = _draw_query(
                    spec, rng, zipf, topic_words, concepts, docs, by_topic
                )
                if len(qrels) >= MIN_RELEVANT and text not in seen:
                    break
            else:
                raise RuntimeError(f"could not draw query {split}-{i}; the spec is too small")
            seen.add(text)
            queries.append(_Query(f"{split}-{i}", split, topic, chosen, text, qrels))
    return tuple(queries)


def _make_triples(
    spec: SyntheticSpec, rng: random.Random, docs: tuple[_Doc, ...], queries: tuple[_Query, ...]
) -> tuple[tuple[str, str, str], ...]:
    """``negatives_per_query`` (query, positive, hard negative) triples per train query (step 8)."""
    by_topic = _by_topic(spec.num_topics, docs)
    triples = []
    for query in queries:
        if query.split != "train":
            continue
        positives = sorted(query.qrels)
        weights = [2 ** query.qrels[d] - 1 for d in positives]
        same_topic = by_topic[query.topic]
        made: set[tuple[int, int]] = set()
        for _ in range(spec.negatives_per_query):
            for _attempt in range(10):
                pos = rng.choices(positives, weights=weights)[0]
                pos_grade = query.qrels[pos]
                harder = [i for i in same_topic if query.qrels.get(i, 0) < pos_grade]
                if harder:
                    neg = rng.choice(harder)
                else:
                    neg = rng.choice([i for i in range(len(docs)) if docs[i].topic != query.topic])
                if (pos, neg) not in made:
                    break
            made.add((pos, neg))
            triples.append((query.query_id, docs[pos].doc_id, docs[neg].doc_id))
    return tuple(triples)


def _teacher_pool(
    spec: SyntheticSpec, rng: random.Random, by_topic: list[list[int]], query: _Query
) -> list[int]:
    """Candidate documents of one train query: relevant, same-topic, then random other-topic."""
    num_docs = sum(len(indices) for indices in by_topic)
    depth = min(spec.teacher_depth, num_docs)
    same = [i for i in by_topic[query.topic] if i not in query.qrels]
    rng.shuffle(same)
    head = (sorted(query.qrels) + same)[: max(0, depth - spec.teacher_depth // 5)]
    others = [i for t, indices in enumerate(by_topic) if t != query.topic for i in indices]
    return head + rng.sample(sorted(others), min(len(others), depth - len(head)))


def _make_teacher(
    spec: SyntheticSpec, rng: random.Random, docs: tuple[_Doc, ...], queries: tuple[_Query, ...]
) -> tuple[tuple[str, str, int, float], ...]:
    """The noisy teacher's top-``teacher_depth`` run over the train queries (step 9)."""
    by_topic = _by_topic(spec.num_topics, docs)
    lines = []
    for query in queries:
        if query.split != "train":
            continue
        scored = []
        for i in _teacher_pool(spec, rng, by_topic, query):
            doc = docs[i]
            same = doc.topic == query.topic
            shared = len(query.concepts & doc.concepts) if same else 0
            score = query.qrels.get(i, 0) + 0.35 * shared + 0.6 * same
            scored.append((score + rng.gauss(0.0, TEACHER_NOISE), i))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        previous = math.inf
        for rank, (score, i) in enumerate(scored, start=1):
            value = min(round(score, 4), round(previous - 1e-4, 4))
            previous = value
            lines.append((query.query_id, docs[i].doc_id, rank, value))
    return tuple(lines)


def _build(spec: SyntheticSpec) -> _Generated:
    """Run the whole generative process in memory."""
    _validate(spec)
    rng = random.Random(spec.seed)
    background, topic_words, concepts = _vocabulary(spec, rng)
    zipf = _Zipf(background)
    docs = _make_docs(spec, rng, zipf, topic_words, concepts)
    queries = _make_queries(spec, rng, zipf, topic_words, concepts, docs)
    triples = _make_triples(spec, rng, docs, queries)
    teacher = _make_teacher(spec, rng, docs, queries)
    return _Generated(background, topic_words, concepts, docs, queries, triples, teacher)


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write ``lines`` (each ending in a newline) as UTF-8 with Unix line ends."""
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(lines)


def _meta(spec: SyntheticSpec, collection: _Generated) -> dict[str, object]:
    """The spec fields plus the counts of everything written."""
    per_split = {s: [q for q in collection.queries if q.split == s] for s in SPLITS}
    return {
        **asdict(spec),
        "fingerprint": spec.fingerprint(),
        "generator_version": GENERATOR_VERSION,
        "counts": {
            "docs": len(collection.docs),
            "queries": {s: len(qs) for s, qs in per_split.items()},
            "judgements": {s: sum(len(q.qrels) for q in qs) for s, qs in per_split.items()},
            "triples": len(collection.triples),
            "teacher_lines": len(collection.teacher),
        },
    }


def generate(spec: SyntheticSpec, out_dir: Path) -> Path:
    """Write the collection described by ``spec`` into ``out_dir`` (created if needed).

    Layout: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``;
    all splits), ``qrels/{train,dev,test}.tsv`` (header ``query-id corpus-id score``, grades 1..3),
    ``triples.tsv`` (``qid pos neg``, no header), ``teacher.run`` (TREC run of the train queries) and
    ``meta.json`` (spec and counts), written last. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    collection = _build(spec)
    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)
    _write_lines(
        out_dir / "corpus.jsonl",
        [
            json.dumps({"_id": d.doc_id, "title": "", "text": d.text}) + "\n"
            for d in collection.docs
        ],
    )
    _write_lines(
        out_dir / "queries.jsonl",
        [json.dumps({"_id": q.query_id, "text": q.text}) + "\n" for q in collection.queries],
    )
    for split in SPLITS:
        lines = [QRELS_HEADER]
        for q in collection.queries:
            if q.split == split:
                ranked = sorted(q.qrels.items(), key=lambda item: (-item[1], item[0]))
                lines += [f"{q.query_id}\td{d}\t{g}\n" for d, g in ranked]
        _write_lines(out_dir / "qrels" / f"{split}.tsv", lines)
    _write_lines(out_dir / "triples.tsv", ["\t".join(t) + "\n" for t in collection.triples])
    _write_lines(
        out_dir / "teacher.run",
        [f"{q} Q0 {d} {r} {s:.4f} synthetic-teacher\n" for q, d, r, s in collection.teacher],
    )
    meta = json.dumps(_meta(spec, collection), indent=2, sort_keys=True) + "\n"
    _write_lines(out_dir / "meta.json", [meta])
    return out_dir


def _is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished cache entry (its marker is written just before the rename)."""
    return (folder / DONE_MARKER).is_file()


def cached(spec: SyntheticSpec, cache_root: Path) -> Path:
    """Return ``cache_root / synthetic-<fingerprint>``, generating it first if it is absent.

    The collection is generated into a temporary sibling folder, marked ``DONE`` and renamed into
    place, so no reader ever sees a half-written folder; when two processes race, the rename of the
    second fails (the target exists) and it discards its copy. A leftover folder without the marker
    (not made by this function) is moved aside and replaced.
    """
    cache_root = Path(cache_root)
    target = cache_root / f"synthetic-{spec.fingerprint()}"
    if _is_complete(target):
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache_root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache entry is an ordinary folder
    try:
        generate(spec, tmp)
        (tmp / DONE_MARKER).write_text(spec.fingerprint() + "\n", encoding="utf-8")
        if target.exists() and not _is_complete(target):
            _discard(target, cache_root)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _discard(folder: Path, cache_root: Path) -> None:
    """Move an incomplete ``folder`` aside atomically, then delete it."""
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.trash-", dir=cache_root))
    with contextlib.suppress(OSError):  # someone else moved or replaced it first
        os.rename(folder, trash / "old")
    shutil.rmtree(trash, ignore_errors=True)
