"""Bi-encoder models: configurations, backbones and the Lightning module."""

from __future__ import annotations

from lossbench.models.config import BiEncoderConfig, DprConfig, SpladeConfig
from lossbench.models.module import BiEncoderModule

__all__ = ["BiEncoderConfig", "BiEncoderModule", "DprConfig", "SpladeConfig"]
