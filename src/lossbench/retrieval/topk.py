"""A running top-k over score chunks: what keeps exact search's memory bounded by the chunk."""

from __future__ import annotations

import torch


class RunningTopK:
    """The best ``k`` (score, doc position) pairs of each query, over chunks of docs seen so far."""

    def __init__(self, num_queries: int, k: int, device: torch.device | str) -> None:
        self.k = k
        self.scores = torch.full((num_queries, 0), float("-inf"), device=device)  # (B, <=k)
        self.positions = torch.empty((num_queries, 0), dtype=torch.long, device=device)

    def add(self, scores: torch.Tensor, offset: int) -> None:
        """Merge a chunk's scores ``(B, C)`` whose first column is doc position ``offset``."""
        top = scores.topk(min(self.k, scores.shape[1]), dim=1)
        merged_scores = torch.cat([self.scores, top.values.to(self.scores.dtype)], dim=1)
        merged_positions = torch.cat([self.positions, top.indices + offset], dim=1)
        keep = merged_scores.topk(min(self.k, merged_scores.shape[1]), dim=1)
        self.scores = keep.values
        self.positions = merged_positions.gather(1, keep.indices)
