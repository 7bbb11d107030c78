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
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from lossbench.data.sources.synthetic_process import (
    GENERATOR_VERSION,
    SPLITS,
    SyntheticSpec,
    _Generated,
    build_collection,
)

__all__ = ["GENERATOR_VERSION", "SyntheticSpec", "cached", "generate"]

DONE_MARKER = "DONE"
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"


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
    collection = build_collection(spec)
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
