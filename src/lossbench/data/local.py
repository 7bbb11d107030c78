"""Read a collection from a local folder (the BEIR layout, plus optional triples and a teacher run).

Layout::

    DIR/corpus.jsonl | corpus.tsv        doc id -> text
    DIR/queries.jsonl | queries.tsv      query id -> text (all splits in one file)
    DIR/qrels/{train,dev,test}.tsv       BEIR TSV (with header) or TREC qrels
    DIR/triples.tsv                      optional: qid, positive doc id, negative doc id
    DIR/teacher.run                      optional: TREC run with teacher scores for train queries

A query belongs to a split when that split's qrels judge it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lossbench.data.collection import SPLITS, Collection, map_relevance
from lossbench.data.formats import read_qrels, read_texts, read_trec_run, read_triples


def _first_existing(folder: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {what} file; expected one of {', '.join(names)}")


def load_local(
    path: str | Path,
    name: str = "local",
    relevance_map: Mapping[int, int] | None = None,
) -> Collection:
    """Load the collection stored in ``path`` (see the module docstring for the layout)."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: not a folder; dataset.path must name a collection folder"
        )
    docs = read_texts(_first_existing(folder, ("corpus.jsonl", "corpus.tsv"), "corpus"))
    all_queries = read_texts(_first_existing(folder, ("queries.jsonl", "queries.tsv"), "queries"))
    qrels = {}
    queries = {}
    for split in SPLITS:
        qrels_path = folder / "qrels" / f"{split}.tsv"
        if not qrels_path.exists():
            continue
        qrels[split] = map_relevance(read_qrels(qrels_path), relevance_map)
        queries[split] = {qid: all_queries[qid] for qid in qrels[split] if qid in all_queries}
    triples_path = folder / "triples.tsv"
    run_path = folder / "teacher.run"
    return Collection(
        name=name,
        docs=docs,
        queries=queries,
        qrels=qrels,
        triples=read_triples(triples_path) if triples_path.exists() else None,
        teacher_run=read_trec_run(run_path) if run_path.exists() else None,
        source=str(folder),
    )
