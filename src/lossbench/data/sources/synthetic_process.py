"""The generative process of the synthetic collection (documented in :mod:`lossbench.data.sources.synthetic`):
vocabulary, topics and concepts, documents, queries with graded judgements, triples and a teacher run,
all drawn from one seeded random generator."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class _Words:
    """What texts are drawn from: the background words (Zipf-distributed), each topic's topic words
    and each topic's concepts."""

    zipf: _Zipf
    topic_words: tuple[tuple[str, ...], ...]
    concepts: tuple[tuple[_Concept, ...], ...]


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


def _make_docs(spec: SyntheticSpec, rng: random.Random, vocabulary: _Words) -> tuple[_Doc, ...]:
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
            words += [vocabulary.concepts[topic][facet].doc_word] * rng.randint(*FACET_REPEATS)
        topic_word_count = max(1, round(DOC_TOPIC_WORD_FRACTION * length))
        words += rng.choices(vocabulary.topic_words[topic], k=topic_word_count)
        words += vocabulary.zipf.draw(rng, max(0, length - len(words)))
        rng.shuffle(words)
        docs.append(_Doc(f"d{index}", topic, frozenset(facets), " ".join(words)))
    return tuple(docs)


def _by_topic(num_topics: int, docs: tuple[_Doc, ...]) -> list[list[int]]:
    """Indices of each topic's documents, in corpus order."""
    by_topic: list[list[int]] = [[] for _ in range(num_topics)]
    for index, doc in enumerate(docs):
        by_topic[doc.topic].append(index)
    return by_topic


def grade(query_concepts: frozenset[int], doc_concepts: frozenset[int]) -> int:
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
    vocabulary: _Words,
    docs: tuple[_Doc, ...],
    by_topic: list[list[int]],
) -> tuple[int, frozenset[int], str, dict[int, int]]:
    """One candidate query (process step 5) with its qrels (step 6); may have too few relevant."""
    topic = rng.randrange(spec.num_topics)
    chosen = frozenset(rng.sample(range(spec.concepts_per_topic), rng.choice(QUERY_CONCEPTS)))
    words = [rng.choice(vocabulary.concepts[topic][c].query_words) for c in sorted(chosen)]
    if rng.random() < QUERY_TOPIC_WORD_PROB:
        words.append(rng.choice(vocabulary.topic_words[topic]))
    words += vocabulary.zipf.draw(rng, max(1, rng.randint(*QUERY_LENGTH) - len(words)))
    rng.shuffle(words)
    qrels = {}
    for index in by_topic[topic]:
        g = grade(chosen, docs[index].concepts)
        if g:
            qrels[index] = g
    return topic, chosen, " ".join(words), qrels


def _make_queries(
    spec: SyntheticSpec, rng: random.Random, vocabulary: _Words, docs: tuple[_Doc, ...]
) -> tuple[_Query, ...]:
    """Draw every split's queries, re-drawing duplicates and under-judged ones (step 7)."""
    by_topic = _by_topic(spec.num_topics, docs)
    counts = (spec.num_train_queries, spec.num_dev_queries, spec.num_test_queries)
    seen: set[str] = set()
    queries = []
    for split, count in zip(SPLITS, counts, strict=True):
        for i in range(count):
            for _ in range(MAX_QUERY_TRIES):
                topic, chosen, text, qrels = _draw_query(spec, rng, vocabulary, docs, by_topic)
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


def build_collection(spec: SyntheticSpec) -> _Generated:
    """Run the whole generative process in memory."""
    _validate(spec)
    rng = random.Random(spec.seed)
    background, topic_words, concepts = _vocabulary(spec, rng)
    vocabulary = _Words(_Zipf(background), topic_words, concepts)
    docs = _make_docs(spec, rng, vocabulary)
    queries = _make_queries(spec, rng, vocabulary, docs)
    triples = _make_triples(spec, rng, docs, queries)
    teacher = _make_teacher(spec, rng, docs, queries)
    return _Generated(background, topic_words, concepts, docs, queries, triples, teacher)
