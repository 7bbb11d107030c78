"""Re-rank a first stage's candidates with a cross-encoder: every (query, candidate) pair scored,
pairs sorted by length and batched so that each batch pads little, bf16 on a GPU."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from lossbench.data.collection import ScoredRun
from lossbench.retrieval.encode import autocast_for, eager

if TYPE_CHECKING:
    from lossbench.models.cross_encoder import CrossEncoderModule

PAIRS_PER_CHUNK = 100_000
"""Pairs tokenized and length-sorted at a time (their token ids are held at once)."""


def candidate_pairs(candidates: Mapping[str, Collection[str]]) -> Iterator[tuple[str, str]]:
    """``(query id, doc id)`` for every candidate of every query, in the run's order."""
    for query_id, doc_ids in candidates.items():
        for doc_id in doc_ids:
            yield query_id, doc_id


def rerank(
    module: CrossEncoderModule,
    candidates: Mapping[str, Collection[str]],
    queries: Mapping[str, str],
    docs: Mapping[str, str],
    batch_size: int = 128,
    progress: bool = True,
) -> ScoredRun:
    """The cross-encoder's score of every candidate: ``{query id: {doc id: score}}``.

    ``candidates`` maps each query id to its candidate doc ids (a first stage's run works as is: its
    docs are the keys). Pairs are tokenized through the module's token cache (a doc re-ranked again,
    at the next validation, skips the tokenizer), sorted by length (longest first) ``PAIRS_PER_CHUNK``
    at a time, and scored ``batch_size`` at a time in inference mode, in bf16 on a GPU.
    """
    pairs_tokenizer = module.pair_tokenizer(cached=True)
    total = sum(len(doc_ids) for doc_ids in candidates.values())
    run: ScoredRun = {query_id: {} for query_id in candidates}
    was_training = module.training
    module.eval()
    bar = tqdm(total=total, desc="re-ranking", unit="pair", disable=not progress, leave=False)
    try:
        pairs = candidate_pairs(candidates)
        while chunk := list(islice(pairs, PAIRS_PER_CHUNK)):
            rows = pairs_tokenizer.rows([queries[q] for q, _ in chunk], [docs[d] for _, d in chunk])
            order = np.argsort([-len(row) for row in rows], kind="stable")
            scores = np.empty(len(chunk), dtype=np.float32)
            for start in range(0, len(order), batch_size):
                positions = order[start : start + batch_size]
                encoding = pairs_tokenizer.pad([rows[i] for i in positions])
                scores[positions] = _score(module, encoding)
                bar.update(len(positions))
            for (query_id, doc_id), score in zip(chunk, scores.tolist(), strict=True):
                run[query_id][doc_id] = score
    finally:
        bar.close()
        module.train(was_training)
    return run


def _score(module: CrossEncoderModule, encoding: dict[str, torch.Tensor]) -> np.ndarray:
    """One batch's scores as float32 numpy."""
    device = module.device
    on_gpu = device.type == "cuda"
    encoding = {
        k: (v.pin_memory() if on_gpu else v).to(device, non_blocking=True)
        for k, v in encoding.items()
    }
    with torch.inference_mode(), autocast_for(device), eager(module):
        scores = module.score(encoding).float()  # (B,)
    return scores.cpu().numpy()
