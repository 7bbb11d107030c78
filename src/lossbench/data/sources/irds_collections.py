"""Collections from ir_datasets: a small judged collection split by rule (Cranfield), and MS MARCO.

Both return the one :class:`~lossbench.data.collection.Collection`; the docs stay in ir_datasets'
docs store (:class:`~lossbench.data.sources.irds.IrDatasetsDocs`), never copied into memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from lossbench.data.collection import Collection, Qrels
from lossbench.data.mining import mine_triples_with_bm25, mining_note
from lossbench.data.runs import RUN_HINT, read_run_source
from lossbench.data.sources.irds import IrDatasetsDocs, load_dataset, read_qrels, read_queries
from lossbench.data.sources.resolve import LazyMapping, SubsetDocs, is_existing_path
from lossbench.data.splits import hash_order, split_by_percent
from lossbench.data.streams import IrDatasetsDocPairs, TuplesFile


def _plain(mapping: Mapping[int, int] | None) -> dict[int, int] | None:
    """A Hydra DictConfig (or any mapping) of grades as a plain ``int -> int`` dict."""
    return None if mapping is None else {int(k): int(v) for k, v in mapping.items()}


def ir_datasets_collection(
    dataset_id: str,
    name: str | None = None,
    relevance_map: Mapping[int, int] | None = None,
    dev_percent: float = 20.0,
    test_percent: float = 20.0,
    doc_fields: Sequence[str] | None = None,
    query_fields: Sequence[str] | None = None,
    negatives_per_positive: int = 1,
    mining_depth: int = 100,
    seed: int = 0,
    fold: int = 0,
) -> Collection:
    """A collection from an ir_datasets dataset with one set of judged queries (e.g. ``cranfield``).

    The judged queries are split by the fixed rule of :func:`lossbench.data.splits.split_by_percent`
    (hash order: the first ``test_percent`` test, the next ``dev_percent`` dev, the rest train;
    ``fold`` rotates the order by that many test slices, for k-fold cross-validation).
    Training triples pair each positive (grade > 0 after ``relevance_map``) of a train query with
    ``negatives_per_positive`` negatives drawn from its BM25 top ``mining_depth``.

    Args:
        dataset_id: the ir_datasets id.
        name: the collection's name (default: the id).
        relevance_map: grade -> grade so that larger is better (Cranfield: 1->4, 2->3, 3->2, 4->1,
            -1->0); unmapped grades are kept.
        doc_fields, query_fields: record fields that make the text (None: ir_datasets' default text).
    """
    load_dataset(dataset_id)
    docs = IrDatasetsDocs(dataset_id, doc_fields)
    queries = read_queries(dataset_id, query_fields)
    qrels = read_qrels(dataset_id, _plain(relevance_map))
    judged = [qid for qid in qrels if qid in queries]
    splits = split_by_percent(judged, dev_percent, test_percent, fold)
    split_qrels: dict[str, Qrels] = {s: {q: qrels[q] for q in ids} for s, ids in splits.items()}
    split_queries = {s: {q: queries[q] for q in ids} for s, ids in splits.items()}
    triples = mine_triples_with_bm25(
        split_queries["train"],
        split_qrels["train"],
        docs,
        negatives_per_positive,
        mining_depth,
        seed,
    )
    sizes = ", ".join(f"{s} {len(ids)}" for s, ids in splits.items())
    return Collection(
        name=name or dataset_id,
        docs=docs,
        queries=split_queries,
        qrels=split_qrels,
        triples=triples,
        source=f"ir_datasets:{dataset_id}",
        extra={
            "split_rule": f"hash order, fold {fold}; test {test_percent}%, dev {dev_percent}%: {sizes}",
            "triples": mining_note(mining_depth, negatives_per_positive),
        },
    )


def msmarco_collection(
    name: str = "msmarco_passage",
    corpus: str = "msmarco-passage",
    train_queries: str = "msmarco-passage/train",
    triples: str | Path | None = "msmarco-passage/train/triples-small",
    teacher_run: str | Path | None = None,
    run_depth: int = 100,
    evaluation: str = "msmarco-passage/dev/small",
    num_dev_queries: int = 200,
    num_test_queries: int = 1000,
    num_other_docs: int = 100_000,
) -> Collection:
    """MS MARCO passage: training triples or a teacher run, evaluation on queries of ``dev/small``.

    Args:
        name: the collection's name.
        corpus: the ir_datasets id of the docs.
        train_queries: the ir_datasets id whose queries and qrels the training data refers to.
        triples: ir_datasets docpairs id or a triples file (streamed), or None.
        teacher_run: a run with teacher scores for the train queries: a run file (TREC, ``.jsonl``,
            ``.parquet``) or an ir_datasets id with scoreddocs; or None.
        run_depth: keep the teacher run's top ``run_depth`` per query (-1: all).
        evaluation: the ir_datasets id of the judged queries that are split into dev and test: in hash
            order (:func:`lossbench.data.splits.hash_order`), the first ``num_dev_queries`` validate
            and the next ``num_test_queries`` (-1: all the rest) test.
        num_other_docs: the index holds the judged docs of the dev and test queries plus the first
            ``num_other_docs`` docs of the corpus, so that it fits a laptop (metrics are then
            higher than on the full corpus, but comparable across losses); -1 indexes all 8.8M.
            Training reads any doc of the corpus, lazily.
    """
    # the training source first: a wrong run id or file fails before anything is downloaded
    triples_source, run = _msmarco_training(name, triples, teacher_run, run_depth)
    full = IrDatasetsDocs(corpus)
    dev_ids, test_ids, eval_queries, eval_qrels = _dev_and_test(
        evaluation, num_dev_queries, num_test_queries
    )
    qrels: dict[str, Mapping[str, Mapping[str, int]]] = {
        "dev": {q: eval_qrels[q] for q in dev_ids},
        "test": {q: eval_qrels[q] for q in test_ids},
        "train": LazyMapping(partial(read_qrels, train_queries), f"qrels of {train_queries}"),
    }
    queries: dict[str, Mapping[str, str]] = {
        "dev": {q: eval_queries[q] for q in dev_ids},
        "test": {q: eval_queries[q] for q in test_ids},
        "train": LazyMapping(partial(read_queries, train_queries), f"queries of {train_queries}"),
    }
    docs = _indexed_docs(full, qrels, num_other_docs)
    return Collection(
        name=name,
        docs=docs,
        queries=queries,
        qrels=qrels,  # type: ignore[arg-type]
        triples=triples_source,
        teacher_run=run,
        source=f"ir_datasets:{corpus}",
        extra={"index": f"{len(docs)} docs", "evaluation": evaluation},
        train_docs=full,
    )


def _indexed_docs(
    full: IrDatasetsDocs, qrels: Mapping[str, Mapping[str, Mapping[str, int]]], num_other_docs: int
) -> Mapping[str, str]:
    """The docs the index holds: the judged docs of the dev and test queries plus the corpus's first
    ``num_other_docs`` (-1: the whole corpus)."""
    if num_other_docs < 0:
        return full
    judged = [d for split in ("dev", "test") for q in qrels[split].values() for d in q]
    others = (doc.doc_id for doc in itertools.islice(full.dataset.docs_iter(), num_other_docs))
    return SubsetDocs(full, [*judged, *others])


def _msmarco_training(
    name: str, triples: str | Path | None, teacher_run: str | Path | None, run_depth: int
) -> tuple[Any, dict[str, dict[str, float]] | None]:
    """The triples (a file or docpairs, streamed) and the teacher run (its top ``run_depth``)."""
    triples_source = None
    if triples is not None:
        triples_source = (
            TuplesFile(Path(triples).expanduser())
            if is_existing_path(triples)
            else IrDatasetsDocPairs(str(triples))
        )
    run = None
    if teacher_run is not None:
        ranked, _ = read_run_source(teacher_run, run_depth, hint=RUN_HINT)
        run = {qid: dict(zip(r.doc_ids, r.scores, strict=True)) for qid, r in ranked.items()}
    if triples_source is None and run is None:
        raise ValueError(f"{name}: give triples or a teacher_run to train from")
    return triples_source, run


def _dev_and_test(
    evaluation: str, num_dev_queries: int, num_test_queries: int
) -> tuple[list[str], list[str], dict[str, str], Qrels]:
    """The judged queries of ``evaluation`` in hash order: the first ``num_dev_queries`` validate,
    the next ``num_test_queries`` (-1: all the rest) test. Also returns its queries and qrels."""
    eval_queries = read_queries(evaluation)
    eval_qrels = read_qrels(evaluation)
    ordered = hash_order(q for q in eval_qrels if q in eval_queries)
    dev_ids = ordered[:num_dev_queries]
    rest = ordered[num_dev_queries:]
    test_ids = rest if num_test_queries < 0 else rest[:num_test_queries]
    if not dev_ids or not test_ids:
        raise ValueError(
            f"{evaluation}: {len(ordered)} judged queries leave none for dev or test "
            f"(num_dev_queries={num_dev_queries}, num_test_queries={num_test_queries})"
        )
    return dev_ids, test_ids, eval_queries, eval_qrels
