"""The one check every index makes on the docs it is given."""

from __future__ import annotations

import torch


def check_docs(embeddings: torch.Tensor, doc_ids: list[str], dim: int | None) -> None:
    """``embeddings`` must be ``(len(doc_ids), dim)``; ``dim`` None: any width (the first add)."""
    if embeddings.dim() != 2 or embeddings.shape[0] != len(doc_ids):
        raise ValueError(
            f"embeddings {tuple(embeddings.shape)} do not match {len(doc_ids)} doc ids"
        )
    if dim is not None and embeddings.shape[1] != dim:
        raise ValueError(f"embeddings have {embeddings.shape[1]} dimensions; the index has {dim}")
