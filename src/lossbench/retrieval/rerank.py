"""Re-rank a first stage's candidates with a cross-encoder: every (query, candidate) pair scored,
pairs sorted by length and batched so that each batch pads little, bf16 on a GPU (where the next
chunk of pairs is tokenized in a thread while the current one is scored)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from lossbench.data.collection import ScoredRun
from lossbench.data.pairs import PairRow, PairTokenizer
from lossbench.retrieval.encode import autocast_for, eager, tokenizer_parallelism

if TYPE_CHECKING:
    from lossbench.models.cross_encoder import CrossEncoderModule

PAIRS_PER_CHUNK = 16_384
"""Pairs tokenized and length-sorted at a time (their token ids are held at once)."""

Chunk = tuple[list[tuple[str, str]], list[PairRow]]


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
    tokenize_ahead: bool | None = None,
) -> ScoredRun:
    """The cross-encoder's score of every candidate: ``{query id: {doc id: score}}``.

    ``candidates`` maps each query id to its candidate doc ids (a first stage's run works as is: its
    docs are the keys). Pairs are tokenized through the module's token cache (a doc re-ranked again,
    at the next validation, skips the tokenizer), sorted by length (longest first) ``PAIRS_PER_CHUNK``
    at a time, and scored ``batch_size`` at a time in inference mode, in bf16 on a GPU.
    ``tokenize_ahead`` (None: on a GPU) tokenizes the next chunk in a thread meanwhile.
    """
    pairs_tokenizer = module.pair_tokenizer(cached=True)
    total = sum(len(doc_ids) for doc_ids in candidates.values())
    run: ScoredRun = {query_id: {} for query_id in candidates}
    if tokenize_ahead is None:
        tokenize_ahead = module.device.type == "cuda"
    chunks = tokenized_chunks(candidates, queries, docs, pairs_tokenizer, tokenize_ahead)
    was_training = module.training
    module.eval()
    bar = tqdm(total=total, desc="re-ranking", unit="pair", disable=not progress, leave=False)
    try:
        for chunk, rows in chunks:
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


def tokenized_chunks(
    candidates: Mapping[str, Collection[str]],
    queries: Mapping[str, str],
    docs: Mapping[str, str],
    pairs_tokenizer: PairTokenizer,
    ahead: bool,
) -> Iterator[Chunk]:
    """The pairs ``PAIRS_PER_CHUNK`` at a time with their token ids; ``ahead``: each chunk is
    tokenized in a background thread while the consumer scores the previous one (the fast
    tokenizer releases the GIL)."""
    pairs = candidate_pairs(candidates)

    def tokenize(chunk: list[tuple[str, str]]) -> Chunk:
        if not chunk:
            return chunk, []
        texts = [queries[q] for q, _ in chunk], [docs[d] for _, d in chunk]
        return chunk, pairs_tokenizer.rows(*texts)

    def next_chunk() -> list[tuple[str, str]]:
        return list(islice(pairs, PAIRS_PER_CHUNK))

    if not ahead:
        while chunk := next_chunk():
            yield tokenize(chunk)
        return
    with tokenizer_parallelism(), ThreadPoolExecutor(1, "lossbench-pairs") as pool:
        pending = pool.submit(tokenize, next_chunk())
        while True:
            chunk, rows = pending.result()
            if not chunk:
                return
            pending = pool.submit(tokenize, next_chunk())
            yield chunk, rows


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
