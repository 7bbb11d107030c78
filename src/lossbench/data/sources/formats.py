"""Readers and writers of the plain file formats: JSONL/TSV corpora and queries, qrels, triples, runs.

Every reader names the file and line (or parquet row) of a malformed record and says what it
expected there. The ``iter_*`` readers stream, so a 40M-line triples file never sits in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from lossbench.data.collection import Qrels, ScoredRun, describe

if TYPE_CHECKING:
    from lossbench.evaluation.ranking import RankedRun


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the file and line."""


class TrainTuple(NamedTuple):
    """One training tuple: a query, its docs (positive first) and, optionally, a score per doc."""

    query_id: str
    doc_ids: tuple[str, ...]
    scores: tuple[float, ...] | None = None


class RunRow(NamedTuple):
    """One line of a run: a query, a doc, the doc's score, and its rank when the file has one."""

    query_id: str
    doc_id: str
    score: float
    rank: int | None = None


RUN_SUFFIXES = (".parquet", ".jsonl")
"""Run files read by their suffix; anything else is read as a TREC run."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def parse_text_line(path: Path, number: int, line: str) -> tuple[str, str]:
    """``(id, text)`` of one line of a JSONL (``{"_id", "text"[, "title"]}``) or TSV (``id<TAB>text``) file."""
    if path.suffix == ".jsonl":
        try:
            record = json.loads(line)
            doc_id, text = str(record["_id"]), str(record["text"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            expected = 'a JSON object with "_id" and "text"'
            raise DataFormatError(describe(path, number, expected, line)) from error
        title = str(record.get("title") or "")
        return doc_id, f"{title} {text}".strip() if title else text
    parts = line.rstrip("\r\n").split("\t", 1)
    if len(parts) != 2:
        raise DataFormatError(describe(path, number, "'id<TAB>text'", line))
    return parts[0], parts[1]


def read_texts(path: Path) -> dict[str, str]:
    """Read ``id -> text`` from JSONL (``{"_id", "text"[, "title"]}``) or TSV (``id<TAB>text``)."""
    texts: dict[str, str] = {}
    for number, line in _lines(path):
        doc_id, text = parse_text_line(path, number, line)
        texts[doc_id] = text
    return texts


def read_qrels(path: Path) -> Qrels:
    """Read qrels: TREC (``qid iter docid grade``) or BEIR TSV (``query-id<TAB>corpus-id<TAB>score``).

    A BEIR header line is skipped. With several judgements of the same pair, the maximum grade wins.
    """
    qrels: Qrels = {}
    for number, line in _lines(path):
        parts = line.split()
        if number == 1 and parts and parts[0] == "query-id":
            continue
        if len(parts) == 4:
            qid, _, doc_id, grade_text = parts
        elif len(parts) == 3:
            qid, doc_id, grade_text = parts
        else:
            expected = "'qid iteration docid grade' (TREC) or 'qid<TAB>docid<TAB>grade' (BEIR)"
            raise DataFormatError(describe(path, number, expected, line))
        try:
            grade = int(float(grade_text))
        except ValueError as error:
            raise DataFormatError(describe(path, number, "an integer grade", line)) from error
        docs = qrels.setdefault(qid, {})
        docs[doc_id] = max(grade, docs.get(doc_id, grade))
    return qrels


def read_triples(path: Path) -> list[tuple[str, str, str]]:
    """Read training triples ``qid<TAB>positive docid<TAB>negative docid`` (extra columns ignored)."""
    triples: list[tuple[str, str, str]] = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) < 3:
            raise DataFormatError(describe(path, number, "'qid<TAB>pos_docid<TAB>neg_docid'", line))
        triples.append((parts[0], parts[1], parts[2]))
    return triples


TUPLES_TSV = "'qid<TAB>pos_docid<TAB>neg_docid' or 'qid<TAB>pos_docid<TAB>neg_docid<TAB>pos_score<TAB>neg_score'"
TUPLES_JSONL = (
    'a JSON object with "query_id" and a list "doc_ids" (and optionally "scores", one per doc)'
)


def _tuple_from_tsv(path: Path, number: int, line: str) -> TrainTuple:
    parts = line.split()
    if len(parts) == 3:
        return TrainTuple(parts[0], (parts[1], parts[2]))
    if len(parts) == 5:
        try:
            scores = (float(parts[3]), float(parts[4]))
        except ValueError as error:
            raise DataFormatError(
                describe(path, number, f"numeric scores in {TUPLES_TSV}", line)
            ) from error
        return TrainTuple(parts[0], (parts[1], parts[2]), scores)
    raise DataFormatError(describe(path, number, TUPLES_TSV, line))


def _tuple_from_json(path: Path, number: int, line: str) -> TrainTuple:
    try:
        record = json.loads(line)
        doc_ids = tuple(str(d) for d in record["doc_ids"])
        raw = record.get("scores")
        scores = None if raw is None else tuple(float(s) for s in raw)
        query_id = str(record["query_id"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataFormatError(describe(path, number, TUPLES_JSONL, line)) from error
    if len(doc_ids) < 2 or (scores is not None and len(scores) != len(doc_ids)):
        raise DataFormatError(describe(path, number, f"{TUPLES_JSONL}; at least 2 docs", line))
    return TrainTuple(query_id, doc_ids, scores)


def iter_tuples(path: Path) -> Iterator[TrainTuple]:
    """Stream training tuples from a TSV (``qid pos neg [pos_score neg_score]``) or JSONL file.

    JSONL records are ``{"query_id": ..., "doc_ids": [pos, neg, ...], "scores": [...]}`` (scores
    optional), so a tuple may hold several negatives.
    """
    parse = _tuple_from_json if path.suffix == ".jsonl" else _tuple_from_tsv
    for number, line in _lines(path):
        yield parse(path, number, line)


def _trec_row(path: Path, number: int, line: str) -> RunRow:
    parts = line.split()
    if len(parts) != 6:
        raise DataFormatError(describe(path, number, "'qid Q0 docid rank score tag'", line))
    try:
        rank = int(parts[3])
        score = float(parts[4])
    except ValueError as error:
        raise DataFormatError(
            describe(path, number, "an integer rank and a numeric score", line)
        ) from error
    return RunRow(parts[0], parts[2], score, rank)


RUN_JSONL = (
    'a JSON object with "query_id", "doc_id", a numeric "score" (and optionally an integer "rank")'
)


def _json_row(path: Path, number: int, line: str) -> RunRow:
    try:
        record = json.loads(line)
        rank = record.get("rank")
        return RunRow(
            str(record["query_id"]),
            str(record["doc_id"]),
            float(record["score"]),
            None if rank is None else int(rank),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataFormatError(describe(path, number, RUN_JSONL, line)) from error


def _parquet_rows(path: Path) -> Iterator[RunRow]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a file that is not parquet
        raise DataFormatError(f"{path}: expected a parquet file ({error})") from error
    columns = set(parquet.schema_arrow.names)
    missing = {"query_id", "doc_id", "score"} - columns
    if missing:
        raise DataFormatError(
            f"{path}: expected columns query_id, doc_id, score (and optionally rank); "
            f"missing {', '.join(sorted(missing))}, found {', '.join(sorted(columns))}"
        )
    wanted = ["query_id", "doc_id", "score"] + (["rank"] if "rank" in columns else [])
    row_number = 0
    for batch in parquet.iter_batches(columns=wanted, batch_size=65_536):
        data = batch.to_pydict()
        ranks = data.get("rank") or [None] * batch.num_rows
        for qid, doc_id, score, rank in zip(
            data["query_id"], data["doc_id"], data["score"], ranks, strict=True
        ):
            row_number += 1
            try:
                yield RunRow(
                    str(qid), str(doc_id), float(score), None if rank is None else int(rank)
                )
            except (TypeError, ValueError) as error:
                shown = f"query_id={qid!r} doc_id={doc_id!r} score={score!r} rank={rank!r}"
                raise DataFormatError(
                    f"{path}: row {row_number}: expected a numeric score and an integer rank, got {shown}"
                ) from error


def iter_run(path: Path) -> Iterator[RunRow]:
    """Stream the rows of a run: TREC (``qid Q0 docid rank score tag``), ``.jsonl`` or ``.parquet``.

    JSONL records and parquet columns are ``query_id``, ``doc_id``, ``score`` and optionally ``rank``.
    """
    if path.suffix == ".parquet":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        yield from _parquet_rows(path)
        return
    parse = _json_row if path.suffix == ".jsonl" else _trec_row
    for number, line in _lines(path):
        yield parse(path, number, line)


def read_trec_run(path: Path) -> ScoredRun:
    """Read a TREC run file ``qid Q0 docid rank score tag`` (the rank column is not used: scores
    order a run). A doc listed twice for a query keeps its highest score."""
    run: ScoredRun = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise DataFormatError(describe(path, number, "'qid Q0 docid rank score tag'", line))
        try:
            int(parts[3])
            score = float(parts[4])
        except ValueError as error:
            raise DataFormatError(
                describe(path, number, "an integer rank and a numeric score", line)
            ) from error
        docs = run.setdefault(parts[0], {})
        docs[parts[2]] = max(score, docs.get(parts[2], score))
    return run


def write_trec_run(
    run: Mapping[str, Mapping[str, float]] | RankedRun, path: Path, tag: str = "lossbench"
) -> Path:
    """Write ``run`` as a TREC run file in the ranking of record, queries sorted by id.

    Each query's docs are in the order of record (:mod:`lossbench.evaluation.ranking`: decreasing
    score, ties by doc id) with their scores of record, strictly decreasing and written with 9
    significant digits, so ranx and trec_eval read back exactly the ranking that was evaluated.
    """
    from lossbench.evaluation.ranking import SCORE_FORMAT, rank_run

    ranked = rank_run(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for qid in sorted(ranked):
            ranking = ranked[qid]
            for position, (doc_id, score) in enumerate(
                zip(ranking.doc_ids, ranking.scores, strict=True), start=1
            ):
                handle.write(f"{qid} Q0 {doc_id} {position} {SCORE_FORMAT.format(score)} {tag}\n")
    return path


def write_qrels(qrels: Qrels, path: Path) -> Path:
    """Write ``qrels`` in TREC format (``qid 0 docid grade``), sorted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for qid in sorted(qrels):
            for doc_id, grade in sorted(qrels[qid].items()):
                handle.write(f"{qid} 0 {doc_id} {grade}\n")
    return path
