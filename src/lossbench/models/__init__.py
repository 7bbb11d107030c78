"""Models: configurations, backbones, encoders, and the Lightning modules (RankingModule, what every
trained ranker shares; BiEncoderModule; CrossEncoderModule)."""

from __future__ import annotations

from lossbench.models.config import (
    BiEncoderConfig,
    ColConfig,
    CrossEncoderConfig,
    DprConfig,
    SpladeConfig,
)
from lossbench.models.cross_encoder import CrossEncoderModule
from lossbench.models.module import BiEncoderModule
from lossbench.models.ranking_module import RankingModule

__all__ = [
    "BiEncoderConfig",
    "BiEncoderModule",
    "ColConfig",
    "CrossEncoderConfig",
    "CrossEncoderModule",
    "DprConfig",
    "RankingModule",
    "SpladeConfig",
]
