"""Machine-dependent defaults, the sync-free loss guard, buffered MLflow logging, compile_encoders."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from lossbench.training import hardware
from lossbench.training.callbacks import FiniteLossGuard, NonFiniteLossError
from lossbench.training.trainer import LightningIRTrainer


def test_null_settings_pick_cpu_defaults_and_explicit_ones_win() -> None:
    cpu = torch.device("cpu")
    assert hardware.training_workers(None, cpu) == 1
    assert hardware.encoding_workers(None, cpu) == 0
    assert hardware.inference_batch_size(None, cpu) == 128
    assert hardware.training_workers(3, cpu) == 3
    assert hardware.encoding_workers(2, "cuda") == 2
    assert hardware.inference_batch_size(64, "cuda") == 64


def test_gpu_defaults_leave_two_cores_and_cap_at_twelve(monkeypatch) -> None:
    monkeypatch.setattr(hardware, "available_cpus", lambda: 16)
    assert hardware.training_workers(None, "cuda") == 12
    assert hardware.encoding_workers(None, "cuda") == 0  # a thread tokenizes ahead, into the cache
    assert hardware.inference_batch_size(None, "cuda") == 512
    monkeypatch.setattr(hardware, "available_cpus", lambda: 2)
    assert hardware.training_workers(None, "cuda") == 1


def test_inference_device_follows_the_accelerator(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert hardware.inference_device("auto").type == "cuda"
    assert hardware.inference_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.inference_device("gpu").type == "cpu"


def test_trainer_logs_every_step_on_the_cpu_unless_told() -> None:
    assert LightningIRTrainer(accelerator="cpu", max_steps=1).log_every_n_steps == 1
    assert LightningIRTrainer(accelerator="cpu", log_every_n_steps=5).log_every_n_steps == 5


class _Trainer:
    def __init__(self, log_every_n_steps: int = 1) -> None:
        self.global_step = 0
        self.log_every_n_steps = log_every_n_steps


class _Module:
    last_losses: dict[str, torch.Tensor] = {}


def test_guard_names_the_first_bad_step_even_when_it_checks_later() -> None:
    guard, trainer, module = FiniteLossGuard(check_every_n_steps=5), _Trainer(), _Module()
    for step, value in enumerate([1.0, 2.0, float("nan"), float("inf")], start=1):
        trainer.global_step = step
        module.last_losses = {"ranknet": torch.tensor(value)}
        guard.on_train_batch_end(trainer, module, torch.tensor(value), None, step)  # type: ignore[arg-type]
    # global_step 3 counts the bad batch's optimizer step; train/loss logs that batch at step 2
    with pytest.raises(
        NonFiniteLossError, match=r"loss is nan at step 2 \(train/loss's step\) \(ranknet=nan\)"
    ):
        guard.check()


def test_guard_names_the_step_lightning_logs_the_batch_under() -> None:
    """Lightning logs a batch's metrics under its count of batches that stepped (here behind the
    optimizer steps, as with gradient accumulation or a resumed loop): the guard names that step."""
    from types import SimpleNamespace

    guard, trainer, module = FiniteLossGuard(), _Trainer(), _Module()
    trainer.global_step = 9
    trainer.fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=17))  # type: ignore[attr-defined]
    with pytest.raises(NonFiniteLossError, match="at step 17 "):
        guard.on_train_batch_end(trainer, module, torch.tensor(float("nan")), None, 0)  # type: ignore[arg-type]


def test_guard_checks_on_its_interval() -> None:
    guard, trainer, module = FiniteLossGuard(check_every_n_steps=2), _Trainer(), _Module()
    trainer.global_step = 1
    guard.on_train_batch_end(trainer, module, torch.tensor(float("nan")), None, 1)  # type: ignore[arg-type]
    trainer.global_step = 2
    with pytest.raises(NonFiniteLossError, match="at step 0 "):
        guard.on_train_batch_end(trainer, module, torch.tensor(1.0), None, 2)  # type: ignore[arg-type]


def test_guard_checks_before_a_checkpoint_and_at_the_end() -> None:
    guard, trainer, module = FiniteLossGuard(check_every_n_steps=100), _Trainer(), _Module()
    trainer.global_step = 1
    guard.on_train_batch_end(trainer, module, torch.tensor(float("nan")), None, 1)  # type: ignore[arg-type]
    with pytest.raises(NonFiniteLossError, match="at step 0 "):
        guard.on_save_checkpoint(trainer, module, {})  # type: ignore[arg-type]
    with pytest.raises(NonFiniteLossError):
        guard.on_train_end(trainer, module)  # type: ignore[arg-type]
    FiniteLossGuard().on_train_end(trainer, module)  # type: ignore[arg-type]  # nothing seen: fine


def test_compile_encoders_keeps_parameter_names(tiny_module) -> None:  # noqa: ANN001
    names = list(tiny_module.state_dict())
    tiny_module.compile_encoders()
    assert list(tiny_module.state_dict()) == names


def test_trainer_draws_a_plain_progress_bar_unless_one_is_given() -> None:
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    trainer = LightningIRTrainer(accelerator="cpu", max_steps=1)
    (bar,) = [c for c in trainer.callbacks if isinstance(c, TQDMProgressBar)]
    assert bar.refresh_rate == 1
    trainer = LightningIRTrainer(accelerator="cpu", callbacks=[RichProgressBar()])
    assert not any(isinstance(c, TQDMProgressBar) for c in trainer.callbacks)


def test_short_encoding_passes_start_few_workers() -> None:
    from lossbench.retrieval.encode import workers_worth_starting

    assert workers_worth_starting(12, 1200, 512) == 1  # 3 batches
    assert workers_worth_starting(12, 100, 128) == 0  # 1 batch: tokenize in the main process
    assert workers_worth_starting(12, 1_000_000, 512) == 12
    assert workers_worth_starting(0, 1_000_000, 512) == 0


def test_fused_adamw_trains_with_gradient_clipping_under_bf16(tiny_module) -> None:  # noqa: ANN001
    """Lightning refuses to clip for fused optimizers; lossbench clips itself when nothing scales."""
    from lossbench.data import LightningIRDataModule, TupleDataset
    from lossbench.loss import RankNet

    tiny_module.loss_functions, tiny_module.loss_weights = [RankNet()], [1.0]
    tiny_module.loss_names = ["ranknet"]
    tiny_module.set_optimizer(torch.optim.AdamW, lr=1.0, fused=True)  # a huge step: clipping shows
    norms: list[float] = []

    def record_norm(optimizer, *args) -> None:  # noqa: ANN001, ANN002  # the grads it stepped on
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        norms.append(float(torch.stack([g.norm() for g in grads if g is not None]).norm()))

    class NormProbe(L.Callback):
        def on_train_start(self, trainer, module) -> None:  # noqa: ANN001
            trainer.optimizers[0].register_step_post_hook(record_norm)

    tuples = [("q0", "d0", "d1"), ("q1", "d1", "d0")] * 2
    texts = {"d0": "a cat sat", "d1": "dogs bark loudly"}
    dataset = TupleDataset(tuples, docs=texts, queries={"q0": "cat", "q1": "dog"})
    trainer = LightningIRTrainer(
        accelerator="cpu",
        precision="bf16-mixed",
        max_steps=2,
        gradient_clip_val=0.5,
        enable_progress_bar=False,
        callbacks=[NormProbe()],
    )
    trainer.fit(tiny_module, LightningIRDataModule(train_dataset=dataset, train_batch_size=2))
    assert trainer.optimizers[0].defaults["fused"] is True
    assert trainer.global_step == 2
    # the optimizer steps on clipped gradients
    assert norms and max(norms) <= 0.5 + 1e-3


def test_lightning_lines_print_once_under_a_root_handler() -> None:
    import logging

    import lossbench.training.trainer  # noqa: F401  (sets up Lightning's logging)

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)  # what Hydra's logging does
    try:
        logging.getLogger("lightning.pytorch.utilities.rank_zero").info("once")
    finally:
        root.removeHandler(handler)
    assert "once" not in seen  # printed by Lightning's own handler only


def test_fixed_length_training_batches_have_the_configured_shapes(tiny_module) -> None:  # noqa: ANN001
    from lossbench.data.batches import TrainCollator
    from lossbench.data.datasets import TrainSample

    samples = [
        TrainSample("q1", "short", ["a", "b"], ["one doc", "two"], [1.0, 0.0]),
        TrainSample("q2", "a longer query text", ["c"], ["three words here"], [1.0]),
    ]
    longest = TrainCollator(tiny_module.tokenizer, 16, 32)(samples)
    fixed = TrainCollator(tiny_module.tokenizer, 16, 32, fixed_length=True)(samples)
    assert longest.query_encoding["input_ids"].shape[1] < 16
    assert fixed.query_encoding["input_ids"].shape == (2, 16)
    assert fixed.doc_encoding["input_ids"].shape == (3, 32)
    # the same tokens, more padding: the masks agree where the shorter batch has columns
    width = longest.doc_encoding["attention_mask"].shape[1]
    assert torch.equal(
        fixed.doc_encoding["attention_mask"][:, :width], longest.doc_encoding["attention_mask"]
    )
    assert int(fixed.doc_encoding["attention_mask"][:, width:].sum()) == 0


def test_a_compiled_module_trains_on_fixed_lengths_and_encodes_eagerly(tiny_module) -> None:  # noqa: ANN001
    """compile=true: training batches have one shape per step; encoding an index never compiles."""
    from torch._dynamo.utils import counters

    from lossbench.data import LightningIRDataModule
    from lossbench.data.datasets import TextSample
    from lossbench.retrieval.encode import encode_texts

    samples = [TextSample(f"d{i}", "word " * (i + 1)) for i in range(6)]
    _, before = encode_texts(tiny_module, samples, "doc", batch_size=2, progress=False)
    tiny_module.compile_encoders()
    assert tiny_module.compiled
    data = LightningIRDataModule(train_dataset=samples, train_batch_size=2)  # type: ignore[arg-type]
    data.trainer = SimpleNamespace(lightning_module=tiny_module)  # type: ignore[assignment]
    assert data.train_dataloader().collate_fn.fixed_length  # type: ignore[union-attr]
    frames = counters["frames"]["total"]
    _, after = encode_texts(tiny_module, samples, "doc", batch_size=2, progress=False)
    assert counters["frames"]["total"] == frames  # nothing compiled for three batch shapes
    torch.testing.assert_close(after, before)
