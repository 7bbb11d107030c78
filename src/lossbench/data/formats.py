"""Readers and writers of the plain file formats: JSONL/TSV corpora and queries, qrels, triples, TREC runs.

Every reader names the file and line of a malformed record and says what it expected there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from lossbench.data.collection import Qrels, ScoredRun, describe


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the file and line."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def read_texts(path: Path) -> dict[str, str]:
    """Read ``id -> text`` from JSONL (``{"_id", "text"[, "title"]}``) or TSV (``id<TAB>text``)."""
    texts: dict[str, str] = {}
    jsonl = path.suffix == ".jsonl"
    for number, line in _lines(path):
        if jsonl:
            try:
                record = json.loads(line)
                doc_id, text = str(record["_id"]), str(record["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                expected = 'a JSON object with "_id" and "text"'
                raise DataFormatError(describe(path, number, expected, line)) from error
            title = str(record.get("title") or "")
            texts[doc_id] = f"{title} {text}".strip() if title else text
        else:
            parts = line.rstrip("\n").split("\t", 1)
            if len(parts) != 2:
                raise DataFormatError(describe(path, number, "'id<TAB>text'", line))
            texts[parts[0]] = parts[1]
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


def read_trec_run(path: Path) -> ScoredRun:
    """Read a TREC run file ``qid Q0 docid rank score tag``."""
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
        run.setdefault(parts[0], {})[parts[2]] = score
    return run


def write_trec_run(run: ScoredRun, path: Path, tag: str = "lossbench") -> Path:
    """Write ``run`` as a TREC run file, each query's docs by descending score (ties by doc id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for qid in sorted(run):
            ranked = sorted(run[qid].items(), key=lambda item: (-item[1], item[0]))
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    return path
