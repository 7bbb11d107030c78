"""Training triples from qrels, with hard negatives mined by BM25 (for collections without triples)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lossbench.data.collection import Qrels

if TYPE_CHECKING:
    from lossbench.retrieval.bm25 import BM25Index


def mine_triples(
    queries: Mapping[str, str],
    qrels: Qrels,
    bm25: BM25Index,
    negatives_per_positive: int = 1,
    depth: int = 100,
    seed: int = 0,
) -> list[tuple[str, str, str]]:
    """``(query, positive, negative)`` triples for the judged ``queries``.

    Positives are the docs graded > 0. Negatives are drawn (without replacement per positive) from
    the query's BM25 top ``depth`` minus its positives, so they share words with the query but are
    not judged relevant (judged non-relevant docs stay candidates). A query whose BM25 list holds
    no candidate draws its negatives from the whole corpus. Deterministic given ``seed``: queries
    and positives are visited in sorted order with one ``random.Random(seed)``.
    """
    if negatives_per_positive < 1:
        raise ValueError(f"negatives_per_positive={negatives_per_positive}: need at least 1")
    rng = random.Random(seed)
    triples: list[tuple[str, str, str]] = []
    retrieved = bm25.search(queries, depth)  # every query at once
    for qid in sorted(queries):
        judged = qrels.get(qid, {})
        positives = sorted(d for d, grade in judged.items() if grade > 0)
        if not positives:
            continue
        relevant = set(positives)
        ranked = sorted(retrieved.get(qid, {}).items(), key=lambda item: (-item[1], item[0]))
        candidates = [d for d, _ in ranked if d not in relevant]
        if not candidates:
            candidates = [d for d in bm25.doc_ids if d not in relevant]
        if not candidates:
            continue
        for positive in positives:
            count = min(negatives_per_positive, len(candidates))
            for negative in rng.sample(candidates, count):
                triples.append((qid, positive, negative))
    return triples


def mine_triples_with_bm25(
    queries: Mapping[str, str],
    qrels: Qrels,
    docs: Mapping[str, str],
    negatives_per_positive: int = 1,
    depth: int = 100,
    seed: int = 0,
) -> list[tuple[str, str, str]]:
    """:func:`mine_triples` for the queries ``qrels`` judges, over a BM25 index of ``docs`` built
    here (a collection without training triples: its train qrels' positives, BM25 negatives)."""
    from lossbench.retrieval.bm25 import BM25Index

    judged = {q: queries[q] for q in sorted(qrels) if q in queries}
    return mine_triples(judged, qrels, BM25Index().add(docs), negatives_per_positive, depth, seed)


def mining_note(depth: int, negatives_per_positive: int) -> str:
    """How a collection's triples were mined, for its ``extra`` (the run's logged params)."""
    return f"mined with BM25 (top {depth}, {negatives_per_positive}/positive)"
