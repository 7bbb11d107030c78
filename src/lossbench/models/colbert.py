"""The ColBERT encoder: a projected, L2-normalized vector per token (see :class:`ColConfig`)."""

from __future__ import annotations

import string
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from lossbench.models.config import ColConfig
from lossbench.models.encoders import TextEncoder
from lossbench.models.scoring import MaxSim, Scoring


def punctuation_ids(tokenizer: Any) -> list[int]:
    """The token ids of the ASCII punctuation characters that the tokenizer keeps as one token."""
    ids = set()
    for symbol in string.punctuation:
        encoded = tokenizer(symbol, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1:
            ids.add(int(encoded[0]))
    return sorted(ids)


class ColEncoder(TextEncoder):
    """ColBERT: ``E_i = normalize(W · h_i)`` for every token ``i``; ``encode(...) -> (B, L, dim)``.

    Queries are augmented with mask tokens up to ``query_length`` (every position then counts);
    docs lose their padding and punctuation tokens. A token that does not count comes out as a
    zero vector, which :class:`~lossbench.models.scoring.MaxSim` and the MaxSim indexes ignore.

    Args:
        backbone: the transformer.
        config: the :class:`ColConfig`.
        tokenizer: the model's tokenizer (its mask, padding and punctuation token ids).
    """

    scoring: ClassVar[Scoring] = MaxSim()
    skiplist: torch.Tensor

    def __init__(self, backbone: PreTrainedModel, config: ColConfig, tokenizer: Any) -> None:
        super().__init__(backbone, config)
        hidden_size = int(backbone.config.hidden_size)
        config.check_backbone(hidden_size, tokenizer)
        self.config: ColConfig = config
        self.projection = nn.Linear(
            hidden_size, config.embedding_dim, bias=config.projection == "linear"
        )
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = int(tokenizer.pad_token_id or 0)
        skipped = punctuation_ids(tokenizer) if config.mask_punctuation else []
        self.register_buffer("skiplist", torch.tensor(skipped, dtype=torch.long), persistent=False)

    def encode(self, encoding: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        return self(encoding, kind)  # type: ignore[no-any-return]

    def forward(self, encoding: dict[str, torch.Tensor], kind: str = "doc") -> torch.Tensor:
        if kind == "query":
            encoding, counts = self.query_inputs(encoding)
        else:
            counts = self.doc_tokens(encoding)  # (B, L)
        vectors = self.projection(self.hidden_states(encoding))  # (B, L, dim)
        if self.config.similarity == "cosine":
            vectors = F.normalize(vectors, dim=-1)
        return vectors.masked_fill(~counts.unsqueeze(-1), 0.0)  # (B, L, dim)

    def query_inputs(
        self, encoding: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The backbone's inputs for queries and which of their tokens count ``(B, L)``.

        With query augmentation every query is padded to ``query_length`` and its padding becomes
        mask tokens, which attend to the query but are not attended to (ColBERTv2's default), and
        which all count; without it, only the real tokens count.
        """
        ids, attention = encoding["input_ids"], encoding["attention_mask"]
        if not self.config.query_augmentation:
            return encoding, attention.bool()
        missing = self.config.query_length - ids.shape[1]
        if missing > 0:
            ids = F.pad(ids, (0, missing), value=self.pad_token_id)
            attention = F.pad(attention, (0, missing), value=0)
        ids = torch.where(attention.bool(), ids, self.mask_token_id)  # (B, query_length)
        counts = torch.ones_like(ids, dtype=torch.bool)
        return {"input_ids": ids, "attention_mask": attention}, counts

    def doc_tokens(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        """Which tokens of docs count ``(B, L)``: the real ones that are not punctuation."""
        counts = encoding["attention_mask"].bool()
        if self.skiplist.numel():
            counts = counts & ~torch.isin(encoding["input_ids"], self.skiplist)
        return counts
