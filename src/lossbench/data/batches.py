"""Training and inference batches, and the collators that tokenize them inside DataLoader workers."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Self

import torch

from lossbench.data.datasets import TextSample, TrainSample
from lossbench.data.token_cache import TokenCache


class OnDevice:
    """A batch (a dataclass) whose :meth:`to` moves its tensors and dicts of tensors to a device."""

    def to(self, device: torch.device | str) -> Self:
        moved: dict[str, Any] = {}
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                moved[field.name] = value.to(device, non_blocking=True)
            elif isinstance(value, dict):
                moved[field.name] = {k: v.to(device, non_blocking=True) for k, v in value.items()}
        return replace(self, **moved)  # type: ignore[type-var]


@dataclass
class TrainBatch(OnDevice):
    """One training batch: Q queries, each with up to D candidate docs (padded, masked).

    ``doc_encoding`` holds only the real docs, in row-major order of ``doc_mask``; the module scatters
    their embeddings into ``(Q, D, dim)``.
    """

    query_ids: list[str]
    query_encoding: dict[str, torch.Tensor]  # (Q, Lq) each
    doc_encoding: dict[str, torch.Tensor]  # (N_real, Ld) each
    doc_mask: torch.Tensor  # (Q, D) bool
    targets: torch.Tensor  # (Q, D) float


@dataclass
class InferenceBatch(OnDevice):
    """A batch of queries or docs to encode."""

    ids: list[str]
    encoding: dict[str, torch.Tensor]  # (B, L) each


def padded_candidates(samples: list[TrainSample]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's candidate list padded to the longest: the ``(Q, D)`` mask of real candidates
    and their targets (0 where padded)."""
    num_docs = max(len(sample.doc_texts) for sample in samples)
    mask = torch.zeros(len(samples), num_docs, dtype=torch.bool)  # (Q, D)
    targets = torch.zeros(len(samples), num_docs, dtype=torch.float32)  # (Q, D)
    for row, sample in enumerate(samples):
        count = len(sample.doc_texts)
        mask[row, :count] = True
        targets[row, :count] = torch.as_tensor(sample.targets, dtype=torch.float32)
    return mask, targets


def _tokenize(
    tokenizer: Any, texts: list[str], max_length: int, fixed_length: bool = False
) -> dict[str, torch.Tensor]:
    """Token ids and attention mask, padded to the longest text (or to ``max_length``: fixed)."""
    encoded = tokenizer(
        texts,
        max_length=max_length,
        truncation=True,
        padding="max_length" if fixed_length else True,
        return_tensors="pt",
        return_token_type_ids=False,
    )
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


class TrainCollator:
    """Pads each query's candidate list to the batch's longest and tokenizes queries and docs.

    ``fixed_length`` pads every text to ``query_length`` / ``doc_length`` instead of the batch's
    longest, so each step has the same shapes (a compiled model then never recompiles for a length).
    """

    def __init__(
        self, tokenizer: Any, query_length: int, doc_length: int, fixed_length: bool = False
    ) -> None:
        self.tokenizer = tokenizer
        self.query_length = query_length
        self.doc_length = doc_length
        self.fixed_length = fixed_length

    def __call__(self, samples: list[TrainSample]) -> TrainBatch:
        mask, targets = padded_candidates(samples)
        doc_texts = [text for sample in samples for text in sample.doc_texts]
        return TrainBatch(
            query_ids=[sample.query_id for sample in samples],
            query_encoding=_tokenize(
                self.tokenizer,
                [s.query_text for s in samples],
                self.query_length,
                self.fixed_length,
            ),
            doc_encoding=_tokenize(self.tokenizer, doc_texts, self.doc_length, self.fixed_length),
            doc_mask=mask,
            targets=targets,
        )


class InferenceCollator:
    """Tokenizes a batch of queries or docs to at most ``max_length`` tokens (through ``cache``, a
    :class:`~lossbench.data.token_cache.TokenCache`, when given: texts seen before skip the tokenizer)."""

    def __init__(self, tokenizer: Any, max_length: int, cache: TokenCache | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.cache = cache

    def __call__(self, samples: list[TextSample]) -> InferenceBatch:
        texts = [sample.text for sample in samples]
        if self.cache is not None:
            encoding = self.cache.tokenize(self.tokenizer, texts, self.max_length)
        else:
            encoding = _tokenize(self.tokenizer, texts, self.max_length)
        return InferenceBatch(ids=[sample.id for sample in samples], encoding=encoding)
