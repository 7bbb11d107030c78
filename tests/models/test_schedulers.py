"""LR schedule factors at chosen steps."""

from __future__ import annotations

import pytest

from lossbench.training.schedulers import ConstantWithWarmup, CosineWithWarmup, LinearWarmupDecay


def test_constant_with_warmup() -> None:
    schedule = ConstantWithWarmup(warmup_steps=3)
    assert [schedule(s) for s in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert ConstantWithWarmup(0)(0) == 1.0


def test_linear_warmup_then_decay() -> None:
    schedule = LinearWarmupDecay(warmup_steps=2, total_steps=6, final_factor=0.0)
    assert [schedule(s) for s in range(7)] == pytest.approx(
        [1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25, 0.0]
    )
    assert LinearWarmupDecay(0, 10, final_factor=0.1)(10) == pytest.approx(0.1)
    assert LinearWarmupDecay(10, 5)(7) == pytest.approx(8 / 11)  # the warmup takes the whole run


def test_cosine() -> None:
    schedule = CosineWithWarmup(warmup_steps=0, total_steps=4)
    assert [schedule(s) for s in range(5)] == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466, 0.0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="warmup_steps"):
        ConstantWithWarmup(-1)
    with pytest.raises(ValueError, match="total_steps"):
        LinearWarmupDecay(0, 0)
