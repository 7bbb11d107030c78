"""Weight schedulers: the factor at chosen steps, keys through lists, restoring, logging in a real fit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lossbench.loss import FLOPSRegularization, RankNet
from lossbench.training.weight_schedulers import (
    GenericConstantSchedulerWithLinearWarmup,
    GenericConstantSchedulerWithQuadraticWarmup,
    GenericLinearSchedulerWithLinearWarmup,
    get_key,
    set_key,
)

KEYS = ["loss_functions.1.query_weight", "loss_functions.1.doc_weight"]


def test_constant_with_linear_warmup_at_delay_mid_warmup_and_after() -> None:
    schedule = GenericConstantSchedulerWithLinearWarmup(
        KEYS, num_warmup_steps=4, num_delay_steps=10
    )
    assert schedule.value_lambda(0) == 0.0
    assert schedule.value_lambda(9) == 0.0  # last delayed step
    assert schedule.value_lambda(10) == 0.0  # the warmup starts at 0
    assert schedule.value_lambda(11) == 0.25
    assert schedule.value_lambda(12) == 0.5  # mid-warmup
    assert schedule.value_lambda(13) == 0.75
    assert schedule.value_lambda(14) == 1.0  # delay + warmup
    assert schedule.value_lambda(10_000) == 1.0


def test_the_guides_numbers() -> None:
    schedule = GenericConstantSchedulerWithLinearWarmup(
        keys=KEYS, num_warmup_steps=20_000, num_delay_steps=50_000
    )
    assert [schedule.value_lambda(n) for n in (49_999, 50_000, 60_000, 70_000, 99_999)] == [
        0.0,
        0.0,
        0.5,
        1.0,
        1.0,
    ]


def test_no_delay_no_warmup() -> None:
    assert GenericConstantSchedulerWithLinearWarmup(KEYS, 0).value_lambda(0) == 1.0
    schedule = GenericConstantSchedulerWithLinearWarmup(KEYS, num_warmup_steps=2)
    assert [schedule.value_lambda(n) for n in range(3)] == [0.0, 0.5, 1.0]


def test_quadratic_warmup() -> None:
    schedule = GenericConstantSchedulerWithQuadraticWarmup(
        KEYS, num_warmup_steps=4, num_delay_steps=2
    )
    assert [schedule.value_lambda(n) for n in range(8)] == [0, 0, 0, 1 / 16, 1 / 4, 9 / 16, 1, 1]


def test_linear_decay_after_warmup() -> None:
    schedule = GenericLinearSchedulerWithLinearWarmup(
        KEYS, num_warmup_steps=2, num_training_steps=8, final_value=0.2, num_delay_steps=2
    )
    values = [schedule.value_lambda(n) for n in range(10)]
    assert values == pytest.approx([0, 0, 0, 0.5, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2])
    with pytest.raises(ValueError, match="ends before the warmup"):
        GenericLinearSchedulerWithLinearWarmup(KEYS, num_warmup_steps=5, num_training_steps=3)


def test_keys_index_lists_and_read_plain_attributes() -> None:
    module = SimpleNamespace(loss_functions=[RankNet(), FLOPSRegularization(8e-4, 6e-4)])
    assert get_key(module, "loss_functions.1.query_weight") == 8e-4
    set_key(module, "loss_functions.1.doc_weight", 1.5)
    assert module.loss_functions[1].doc_weight == 1.5
    set_key(module, "loss_functions.0", "replaced")  # an integer at the end sets a list item
    assert module.loss_functions[0] == "replaced"
    with pytest.raises(KeyError, match="out of range"):
        get_key(module, "loss_functions.2.query_weight")
    with pytest.raises(KeyError, match="has no attribute 'nope'"):
        get_key(module, "loss_functions.1.nope")
    with pytest.raises(KeyError, match="must be a list index"):
        get_key(module, "loss_functions.first.query_weight")


def test_bad_keys_fail_at_train_start_with_the_key_named() -> None:
    module = SimpleNamespace(loss_functions=[RankNet()])
    schedule = GenericConstantSchedulerWithLinearWarmup(KEYS, num_warmup_steps=2)
    with pytest.raises(ValueError, match=r"loss_functions\.1\.query_weight.*out of range"):
        schedule.check_keys(module)
    schedule = GenericConstantSchedulerWithLinearWarmup(["loss_functions.0"], 2)
    with pytest.raises(ValueError, match="not a number"):
        schedule.check_keys(module)
    with pytest.raises(ValueError, match="keys is empty"):
        GenericConstantSchedulerWithLinearWarmup([], 2)


class Recorder:
    """A stand-in trainer/module pair for driving the hooks by hand."""

    def __init__(self) -> None:
        self.loss_functions = [RankNet(), FLOPSRegularization(8e-4, 6e-4)]
        self.logged: dict[str, list[float]] = {}

    def log(self, name: str, value: float, **kwargs: object) -> None:
        self.logged.setdefault(name, []).append(value)


def test_hooks_scale_the_originals_and_restore_them() -> None:
    module = Recorder()
    schedule = GenericConstantSchedulerWithLinearWarmup(KEYS, num_warmup_steps=2, num_delay_steps=1)
    trainer = SimpleNamespace(global_step=0)
    schedule.on_train_start(trainer, module)  # type: ignore[arg-type]
    seen = []
    for step in range(5):
        trainer.global_step = step
        schedule.on_train_batch_start(trainer, module, None, step)  # type: ignore[arg-type]
        seen.append(module.loss_functions[1].query_weight)
    assert seen == pytest.approx([0.0, 0.0, 4e-4, 8e-4, 8e-4])
    assert module.logged["schedule/loss_functions.1.doc_weight"] == pytest.approx(
        [0.0, 0.0, 3e-4, 6e-4, 6e-4]
    )
    schedule.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert module.loss_functions[1].query_weight == 8e-4
    assert module.loss_functions[1].doc_weight == 6e-4


def test_a_real_fit_uses_and_logs_the_scheduled_weight(tiny_module) -> None:
    """In Lightning's loop: step n trains with lambda(n) * weight and logs it at step n."""
    import lightning as L
    from torch.utils.data import DataLoader

    from lossbench.data.batches import TrainCollator
    from lossbench.data.datasets import TrainSample
    from lossbench.training.trainer import LightningIRTrainer

    class Capture(L.Callback):
        def __init__(self) -> None:
            self.weights: list[float] = []
            self.logged: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # noqa: ANN001
            self.weights.append(pl_module.loss_functions[1].doc_weight)
            self.logged.append(
                float(trainer.callback_metrics["schedule/loss_functions.1.doc_weight"])
            )

    tiny_module.loss_functions = [RankNet(), FLOPSRegularization(0.5, 0.25)]
    tiny_module.loss_weights = [1.0, 1.0]
    tiny_module.loss_names = ["ranknet", "flops"]
    samples = [
        TrainSample(f"q{i}", f"query {i}", ["a", "b"], ["doc one", "doc two"], [1.0, 0.0])
        for i in range(6)
    ]
    collate = TrainCollator(tiny_module.tokenizer, 16, 32)
    loader = DataLoader(samples, batch_size=1, collate_fn=collate)  # type: ignore[arg-type]
    schedule = GenericConstantSchedulerWithLinearWarmup(KEYS, num_warmup_steps=2, num_delay_steps=2)
    capture = Capture()
    trainer = LightningIRTrainer(
        max_steps=6, callbacks=[schedule, capture], enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(tiny_module, loader)
    expected = [0.25 * schedule.value_lambda(n) for n in range(6)]
    assert capture.weights == pytest.approx(expected)
    assert capture.logged == pytest.approx(expected)
    assert expected == pytest.approx([0, 0, 0, 0.125, 0.25, 0.25])
    assert tiny_module.loss_functions[1].doc_weight == 0.25  # restored
    assert torch.is_tensor(trainer.callback_metrics["train/loss"])
