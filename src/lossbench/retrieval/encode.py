"""Encode many texts with a trained bi-encoder: inference mode, length-sorted batches, tokenized ahead."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lossbench.data.batches import InferenceBatch, InferenceCollator
from lossbench.data.samples import TextSample, TokenizedSample
from lossbench.data.token_store import CorpusTokens
from lossbench.data.worker_context import worker_context
from lossbench.models.module import BiEncoderModule
from lossbench.models.ranking_module import RankingModule


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on a GPU, nothing on the CPU (where fp32 is both faster and exact)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def eager(module: RankingModule) -> contextlib.AbstractContextManager[object]:
    """Run a compiled module eagerly (a length-sorted pass has a new shape per batch)."""
    if module.compiled:
        return torch.compiler.set_stance("force_eager")
    return contextlib.nullcontext()


def workers_worth_starting(num_workers: int, num_texts: int, batch_size: int) -> int:
    """At most one worker per two batches: starting a worker costs about as much as tokenizing a
    batch, so a short pass (a few hundred queries, a small corpus) starts few or none."""
    batches = -(-num_texts // batch_size)
    return max(0, min(num_workers, batches // 2))


@contextlib.contextmanager
def tokenizer_parallelism() -> Iterator[None]:
    """Let the Rust tokenizer spread a batch over every core (``TOKENIZERS_PARALLELISM``), restored
    after: set to ``false`` before DataLoader workers fork, so they neither warn nor deadlock."""
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous


def tokenized_ahead(
    samples: Sequence[TextSample],
    collate: Callable[[list[TextSample]], InferenceBatch],
    batch_size: int,
    pin_memory: bool,
    depth: int = 2,
) -> Iterator[InferenceBatch]:
    """The batches of ``samples``, each tokenized (and pinned) in a background thread ``depth``
    batches ahead of the consumer.

    The fast tokenizer releases the GIL and, with :func:`tokenizer_parallelism`, tokenizes a batch
    on every core, so the GPU encodes one batch while the next ones are tokenized, with no worker
    process to start (a DataLoader worker costs about a batch's tokenizing to start, every pass).
    """

    def make(offset: int) -> InferenceBatch:
        batch = collate(list(samples[offset : offset + batch_size]))
        if pin_memory:
            batch.encoding = {k: v.pin_memory() for k, v in batch.encoding.items()}
        return batch

    offsets = iter(range(0, len(samples), batch_size))
    with tokenizer_parallelism(), ThreadPoolExecutor(1, "lossbench-tokenize") as pool:
        pending: deque[Future[InferenceBatch]] = deque()
        try:
            for offset in offsets:
                pending.append(pool.submit(make, offset))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # the consumer stopped early
                future.cancel()


def iter_encoded(
    module: BiEncoderModule,
    samples: Sequence[TextSample],
    kind: str,
    batch_size: int = 128,
    num_workers: int = 0,
    progress: bool = True,
    tokenize_ahead: bool | None = None,
) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Encode ``samples`` as queries or docs (``kind``), one batch at a time: ``(ids, (B, dim))``
    (a multi-vector model: ``(B, L, dim)``, ``L`` the batch's longest text).

    Texts are sorted by length (longest first) so each batch pads little, and tokenized while the
    model encodes the previous batch: by ``num_workers`` DataLoader workers, or with 0 workers by a
    background thread (:func:`tokenized_ahead`; ``tokenize_ahead=None`` does so on a GPU, while on
    the CPU the main process tokenizes, a few % of the model's time there). The vectors are float32
    on the module's device. Consumers that keep every batch (an index) can convert each one as it
    comes (a sparse index keeps only the non-zeros of SPLADE's vocabulary-sized vectors).
    """
    if kind not in ("query", "doc"):
        raise ValueError(f"kind={kind!r}; valid: query, doc")
    max_length = module.config.query_length if kind == "query" else module.config.doc_length
    ordered = sorted(samples, key=lambda sample: len(sample.text), reverse=True)
    num_workers = workers_worth_starting(num_workers, len(ordered), batch_size)
    # the module's token cache, where this process tokenizes (a worker's additions would be lost)
    cache = module.token_cache if num_workers == 0 else None
    collate = InferenceCollator(module.tokenizer, max_length, cache)
    on_gpu = module.device.type == "cuda"
    if tokenize_ahead is None:
        tokenize_ahead = on_gpu
    batches: Iterable[InferenceBatch]
    if num_workers == 0 and tokenize_ahead:
        batches = tokenized_ahead(ordered, collate, batch_size, pin_memory=on_gpu)
    else:
        batches = DataLoader(
            ordered,  # type: ignore[arg-type]
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=num_workers,
            multiprocessing_context=worker_context(num_workers),
            pin_memory=on_gpu,
        )
    total = -(-len(ordered) // batch_size)
    encode = module.encode_queries if kind == "query" else module.encode_docs
    was_training = module.training
    module.eval()
    try:
        bar = tqdm(batches, f"encoding {kind}s", total, disable=not progress, leave=False)
        for batch in bar:
            batch = batch.to(module.device)
            with torch.inference_mode(), autocast_for(module.device), eager(module):
                vectors = encode(batch.encoding).float()  # (B, *E)
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
    """Encode ``samples`` as queries or docs (``kind``); returns their ids and float32 vectors ``(N, dim)``
    (a multi-vector model: ``(N, L, dim)``, padded with zero vectors to the longest text).

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
    if chunks and chunks[0].dim() == 3:  # token vectors: zero vectors are tokens that do not count
        length = max(chunk.shape[1] for chunk in chunks)
        chunks = [F.pad(chunk, (0, 0, 0, length - chunk.shape[1])) for chunk in chunks]
    return ids, torch.cat(chunks) if chunks else torch.empty(0)


def corpus_tokens_for(module: BiEncoderModule, docs: Any) -> CorpusTokens | None:
    """The module's on-disk token ids of ``docs`` (:mod:`lossbench.data.token_store`), when it
    holds that corpus's at its doc length; else None (another corpus: the tokenizer runs)."""
    store: CorpusTokens | None = getattr(module, "corpus_tokens", None)
    if store is not None and store.serves(docs, module.config.doc_length):
        return store
    return None


def iter_encoded_docs(
    module: BiEncoderModule,
    items: Iterable[tuple[str, str]],
    batch_size: int = 128,
    num_workers: int = 0,
    texts_per_chunk: int = 100_000,
    progress: bool = True,
    store: CorpusTokens | None = None,
    first_position: int = 0,
) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Encode ``(doc id, text)`` items, ``texts_per_chunk`` at a time (each chunk length-sorted).

    With ``store`` (the corpus's token ids, :func:`corpus_tokens_for`), the items are the corpus's
    docs in its order from ``first_position`` on, and each doc's ids are read from the store."""
    docs = iter(items)
    position = first_position
    while chunk := list(islice(docs, texts_per_chunk)):
        samples: list[TextSample] = [
            TextSample(doc_id, text)
            if store is None
            else TokenizedSample(doc_id, text, store.row(position + i))
            for i, (doc_id, text) in enumerate(chunk)
        ]
        position += len(chunk)
        yield from iter_encoded(
            module,
            samples,
            "doc",
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        )
