"""Encode many texts with a trained bi-encoder: inference mode, length-sorted batches, tokenized in workers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lossbench.data.batches import InferenceCollator
from lossbench.data.datasets import TextSample
from lossbench.models.module import BiEncoderModule


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on a GPU, nothing on the CPU (where fp32 is both faster and exact)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def workers_worth_starting(num_workers: int, num_texts: int, batch_size: int) -> int:
    """At most one worker per two batches: starting a worker costs about as much as tokenizing a
    batch, so a short pass (a few hundred queries, a small corpus) starts few or none (seen on an
    H100: 12 workers for 3 batches of 512 docs took ~1 s per batch, ten times the tokenizing)."""
    batches = -(-num_texts // batch_size)
    return max(0, min(num_workers, batches // 2))


def iter_encoded(
    module: BiEncoderModule,
    samples: Sequence[TextSample],
    kind: str,
    batch_size: int = 128,
    num_workers: int = 0,
    progress: bool = True,
) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Encode ``samples`` as queries or docs (``kind``), one batch at a time: ``(ids, (B, dim))``.

    Texts are sorted by length (longest first) so each batch pads little, and tokenized by the
    DataLoader's workers while the model encodes the previous batch. The vectors are float32 on the
    module's device. Consumers that keep every batch (an index) can convert each one as it comes
    (a sparse index keeps only the non-zeros of SPLADE's vocabulary-sized vectors).
    """
    if kind not in ("query", "doc"):
        raise ValueError(f"kind={kind!r}; valid: query, doc")
    max_length = module.config.query_length if kind == "query" else module.config.doc_length
    ordered = sorted(samples, key=lambda sample: len(sample.text), reverse=True)
    num_workers = workers_worth_starting(num_workers, len(ordered), batch_size)
    loader: DataLoader[Any] = DataLoader(
        ordered,  # type: ignore[arg-type]
        batch_size=batch_size,
        collate_fn=InferenceCollator(module.tokenizer, max_length),
        num_workers=num_workers,
        pin_memory=module.device.type == "cuda",
    )
    encode = module.encode_queries if kind == "query" else module.encode_docs
    was_training = module.training
    module.eval()
    try:
        for batch in tqdm(loader, desc=f"encoding {kind}s", disable=not progress, leave=False):
            batch = batch.to(module.device)
            with torch.inference_mode(), autocast_for(module.device):
                vectors = encode(batch.encoding).float()  # (B, dim)
            yield batch.ids, vectors
    finally:
        module.train(was_training)


def encode_texts(
    module: BiEncoderModule,
    samples: Sequence[TextSample],
    kind: str,
    batch_size: int = 128,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[list[str], torch.Tensor]:
    """Encode ``samples`` as queries or docs (``kind``); returns their ids and float32 vectors ``(N, dim)``.

    The batches of :func:`iter_encoded`, concatenated (dense: for SPLADE prefer
    :func:`iter_encoded`, which never holds every vocabulary-sized vector at once). The vectors stay
    on the module's device, in the order of the returned ids.
    """
    ids: list[str] = []
    chunks: list[torch.Tensor] = []
    for batch_ids, vectors in iter_encoded(
        module, samples, kind, batch_size=batch_size, num_workers=num_workers, progress=progress
    ):
        chunks.append(vectors)
        ids.extend(batch_ids)
    return ids, torch.cat(chunks) if chunks else torch.empty(0)


def iter_encoded_docs(
    module: BiEncoderModule,
    items: Iterable[tuple[str, str]],
    batch_size: int = 128,
    num_workers: int = 0,
    texts_per_chunk: int = 100_000,
    progress: bool = True,
) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Encode ``(doc id, text)`` items, ``texts_per_chunk`` at a time (each chunk length-sorted)."""
    docs = iter(items)
    while chunk := [TextSample(doc_id, text) for doc_id, text in islice(docs, texts_per_chunk)]:
        yield from iter_encoded(
            module, chunk, "doc", batch_size=batch_size, num_workers=num_workers, progress=progress
        )
