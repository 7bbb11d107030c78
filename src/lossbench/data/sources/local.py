"""Read a collection from a local folder: BEIR's layout as is, or TREC/TSV files.

Layout (the first name that exists wins; ``corpus``, ``queries``, ``triples`` and ``run`` may also
be given as paths, relative to the folder)::

    corpus.jsonl | corpus.tsv | docs.jsonl | docs.tsv | collection.tsv     doc id -> text
    queries.jsonl | queries.tsv | topics.tsv                                query id -> text (all splits)
        and/or queries/{split}.jsonl | queries/{split}.tsv                  per split
    qrels/{split}.tsv | .txt | .qrels  or  qrels.{split}.tsv | .txt         BEIR TSV (header) or TREC
    triples.tsv | triples.jsonl          optional: training tuples (streamed, never loaded whole)
    teacher.run | teacher.jsonl | teacher.parquet | train.run   optional: run of the train queries
                                                                with teacher scores

JSONL records are ``{"_id", "text"[, "title"]}``; TSV lines ``id<TAB>text``. A query belongs to a
split when that split's qrels judge it; queries not judged by dev or test qrels may train. Large
corpus and query files are indexed on disk rather than read into memory
(:mod:`lossbench.data.sources.textfile`).

What a folder lacks is derived by fixed rules:

- no ``triples`` file but train qrels: triples from the train qrels, negatives mined by BM25
  (:func:`lossbench.data.mining.mine_triples_with_bm25`);
- no dev qrels but train qrels (BEIR sets with only train and test): the first ``dev_percent`` of
  the train queries in hash order (:func:`lossbench.data.splits.hold_out`) validate and do not train.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from lossbench.data.collection import SPLITS, Collection, Qrels, map_relevance
from lossbench.data.mining import mine_triples_with_bm25, mining_note
from lossbench.data.sources.formats import iter_run, read_qrels
from lossbench.data.sources.textfile import LAZY_ABOVE_BYTES, load_texts
from lossbench.data.splits import hold_out
from lossbench.data.streams import FilteredTuples, TuplesFile

log = logging.getLogger(__name__)

CORPUS_NAMES = ("corpus.jsonl", "corpus.tsv", "docs.jsonl", "docs.tsv", "collection.tsv")
QUERIES_NAMES = ("queries.jsonl", "queries.tsv", "topics.tsv")
TRIPLES_NAMES = ("triples.tsv", "triples.jsonl")
RUN_NAMES = ("teacher.run", "teacher.jsonl", "teacher.parquet", "train.run")


def qrels_names(split: str) -> tuple[str, ...]:
    """Where the qrels of ``split`` may be, in order of preference."""
    return (
        f"qrels/{split}.tsv",
        f"qrels/{split}.txt",
        f"qrels/{split}.qrels",
        f"qrels.{split}.tsv",
        f"qrels.{split}.txt",
    )


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _given_or_found(
    folder: Path, given: str | Path | None, names: tuple[str, ...], what: str, required: bool
) -> Path | None:
    if given is not None:
        chosen = folder / Path(given).expanduser()
        if not chosen.is_file():
            raise FileNotFoundError(f"{chosen}: no such {what} file")
        return chosen
    found = _find(folder, names)
    if found is None and required:
        raise FileNotFoundError(f"{folder}: no {what} file; expected one of {', '.join(names)}")
    return found


def _read_queries(
    folder: Path, given: str | Path | None, lazy_above_bytes: int
) -> dict[str, str] | Mapping[str, str]:
    """All queries: the one queries file, plus (or else) ``queries/{split}.*`` files."""
    path = _given_or_found(folder, given, QUERIES_NAMES, "queries", required=False)
    per_split = [
        found
        for split in SPLITS
        if (found := _find(folder, (f"queries/{split}.jsonl", f"queries/{split}.tsv")))
    ]
    if path is None and not per_split:
        names = ", ".join((*QUERIES_NAMES, "queries/{split}.jsonl", "queries/{split}.tsv"))
        raise FileNotFoundError(f"{folder}: no queries file; expected one of {names}")
    if path is not None and not per_split:
        return load_texts(path, lazy_above_bytes)
    queries: dict[str, str] = {}
    for file in ([path] if path else []) + per_split:
        queries.update(load_texts(file, lazy_above_bytes).items())
    return queries


def load_local(
    path: str | Path,
    name: str = "local",
    relevance_map: Mapping[int, int] | None = None,
    corpus: str | Path | None = None,
    queries: str | Path | None = None,
    triples: str | Path | None = None,
    run: str | Path | None = None,
    dev_percent: float = 10.0,
    negatives_per_positive: int = 1,
    mining_depth: int = 100,
    seed: int = 0,
    lazy_above_bytes: int = LAZY_ABOVE_BYTES,
) -> Collection:
    """Load the collection stored in ``path`` (see the module docstring for the layout and rules).

    Args:
        path: the folder.
        name: the collection's name in logs and run names.
        relevance_map: grade -> grade, applied to every qrels file (unmapped grades are kept).
        corpus, queries, triples, run: file names (relative to ``path``) instead of the usual ones.
        dev_percent: share of the train queries held out for validation when there are no dev qrels.
        negatives_per_positive, mining_depth, seed: BM25 negative mining when there is no triples
            file (negatives per judged positive, drawn from the BM25 top ``mining_depth``).
        lazy_above_bytes: corpus and query files larger than this are indexed on disk.
    """
    folder = _collection_folder(path)
    corpus_path = _given_or_found(folder, corpus, CORPUS_NAMES, "corpus", required=True)
    assert corpus_path is not None
    docs = load_texts(corpus_path, lazy_above_bytes)
    all_queries = _read_queries(folder, queries, lazy_above_bytes)
    qrels, held_out, extra = _read_qrels(folder, relevance_map, dev_percent)
    evaluated = frozenset(qrels.get("dev", {})) | frozenset(qrels.get("test", {}))
    split_queries = _split_queries(folder, all_queries, qrels, evaluated)
    triples_path = _given_or_found(folder, triples, TRIPLES_NAMES, "triples", required=False)
    triples_source: object = None
    if triples_path is not None:
        source = TuplesFile(triples_path)
        triples_source = FilteredTuples(source, held_out) if held_out else source
    elif qrels.get("train"):
        triples_source = mine_triples_with_bm25(
            all_queries, qrels["train"], docs, negatives_per_positive, mining_depth, seed
        )
        extra["triples"] = mining_note(mining_depth, negatives_per_positive)
    run_path = _given_or_found(folder, run, RUN_NAMES, "run", required=False)
    return Collection(
        name=name,
        docs=docs,
        queries=split_queries,
        qrels=qrels,
        triples=triples_source or None,  # type: ignore[arg-type]
        teacher_run=_teacher_run(run_path, evaluated) if run_path is not None else None,
        source=str(folder),
        extra=extra,
    )


def _collection_folder(path: str | Path) -> Path:
    """``path`` as an absolute folder; a clear error when it is not one."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: not a folder; dataset.path must name a collection folder"
        )
    return folder


def _split_queries(
    folder: Path,
    all_queries: Mapping[str, str],
    qrels: dict[str, Qrels],
    evaluated: frozenset[str],
) -> dict[str, Mapping[str, str]]:
    """Each split's queries: dev and test those their qrels judge (a warning for judged queries
    the queries files lack), train every query neither of them judges."""
    split_queries: dict[str, Mapping[str, str]] = {}
    for split in ("dev", "test"):
        if split in qrels:
            split_queries[split] = {q: all_queries[q] for q in qrels[split] if q in all_queries}
            _warn_missing(folder, split, qrels[split], split_queries[split])
    split_queries["train"] = _TrainQueries(all_queries, evaluated)
    return split_queries


def _read_qrels(
    folder: Path, relevance_map: Mapping[int, int] | None, dev_percent: float
) -> tuple[dict[str, Qrels], frozenset[str], dict[str, str]]:
    """Each split's qrels (grades mapped); without dev qrels, ``dev_percent`` of the train queries
    held out for validation. Returns the qrels, the held-out query ids and a note for the logs."""
    qrels: dict[str, Qrels] = {}
    for split in SPLITS:
        qrels_path = _find(folder, qrels_names(split))
        if qrels_path is not None:
            qrels[split] = map_relevance(read_qrels(qrels_path), relevance_map)
    if "dev" in qrels or not qrels.get("train"):
        return qrels, frozenset(), {}
    dev_ids, train_ids = hold_out(qrels["train"], dev_percent)
    qrels["dev"] = {qid: qrels["train"][qid] for qid in dev_ids}
    qrels["train"] = {qid: qrels["train"][qid] for qid in train_ids}
    note = f"{len(dev_ids)} train queries held out ({dev_percent}% in hash order)"
    return qrels, frozenset(dev_ids), {"dev_split": note}


def _teacher_run(path: Path, evaluated: frozenset[str]) -> dict[str, dict[str, float]] | None:
    """The run file's scores for the training queries (never for a dev or test query)."""
    teacher_run: dict[str, dict[str, float]] = {}
    for row in iter_run(path):
        if row.query_id not in evaluated:
            teacher_run.setdefault(row.query_id, {})[row.doc_id] = row.score
    return teacher_run or None


def _warn_missing(folder: Path, split: str, qrels: Qrels, found: Mapping[str, str]) -> None:
    missing = len(qrels) - len(found)
    if missing:
        log.warning(
            "%s: %d judged %s queries have no text and are not evaluated", folder, missing, split
        )


class _TrainQueries(Mapping[str, str]):
    """The queries that may train: every query that dev and test qrels do not judge (no copy)."""

    def __init__(self, queries: Mapping[str, str], excluded: frozenset[str]) -> None:
        self.queries = queries
        self.excluded = excluded

    def __getitem__(self, qid: str) -> str:
        if qid in self.excluded:
            raise KeyError(qid)
        return self.queries[qid]

    def __contains__(self, qid: object) -> bool:
        return qid not in self.excluded and qid in self.queries

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (qid for qid in self.queries if qid not in self.excluded)

    def __len__(self) -> int:
        return sum(1 for _ in self)
