"""The two sides of the training-step benchmark (:mod:`bench.train_step`): a minimal hand-written
step, and lossbench's step through ``LightningIRTrainer.fit`` with the pipeline's settings or lean.

Each ``time_*`` function builds its side from scratch, warms it up, times ``shape.steps`` steps and
returns seconds per step (plus what it saw: the longest step, peak GPU memory).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from bench.common import (
    WORK_DIR,
    bf16_autocast,
    build_backbone,
    make_texts,
    model_folder,
    peak_memory_mib,
    random_ids,
    random_init,
    reset_peak_memory,
    synchronize,
    word_pool,
)
from bench.record import REPO


# ---- the minimal step ----------------------------------------------------------------------------
def minimal_step(
    backbone: torch.nn.Module,
    shape: argparse.Namespace,
    target: torch.device,
    compiled: bool = False,
) -> Callable[[], torch.Tensor]:
    """One optimizer step of the smallest bi-encoder training loop (returns the loss, not synced)."""
    vocab = int(getattr(backbone, "config").vocab_size)  # noqa: B009  (a transformers model)
    num_q, num_d = shape.queries, shape.docs
    query = random_ids(num_q, shape.query_length, vocab, target, seed=1)
    docs = random_ids(num_q * num_d, shape.doc_length, vocab, target, seed=2)
    labels = torch.zeros(num_q, dtype=torch.long, device=target)
    kwargs: dict[str, Any] = {"lr": 1e-5}
    if target.type == "cuda":
        kwargs["fused"] = True
    optimizer = torch.optim.AdamW(backbone.parameters(), **kwargs)

    def loss_of_batch() -> torch.Tensor:
        q = backbone(**query).last_hidden_state[:, 0]  # (Q, H)
        d = backbone(**docs).last_hidden_state[:, 0].view(num_q, num_d, -1)  # (Q, D, H)
        scores = torch.einsum("qh,qdh->qd", q, d)  # (Q, D)
        return F.cross_entropy(scores.float(), labels)

    forward = torch.compile(loss_of_batch) if compiled else loss_of_batch

    def step() -> torch.Tensor:
        with bf16_autocast(target):
            loss = forward()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def time_minimal(
    model: str, shape: argparse.Namespace, target: torch.device, compiled: bool = False
) -> dict[str, Any]:
    """Warm up, then time ``shape.steps`` minimal steps (synchronized at both ends only)."""
    backbone = build_backbone(model).to(target).train()
    step = minimal_step(backbone, shape, target, compiled)
    for _ in range(shape.warmup):
        step()
    synchronize(target)
    reset_peak_memory(target)
    per_step = []
    start = time.perf_counter()
    for _ in range(shape.steps):
        begin = time.perf_counter()
        step()
        if target.type == "cpu":
            per_step.append(time.perf_counter() - begin)
    synchronize(target)
    total = time.perf_counter() - start
    result = {
        "step_s": total / shape.steps,
        "per_step_s": per_step,
        "peak_mem_mib": peak_memory_mib(target),
    }
    del step, backbone
    gc.collect()
    if target.type == "cuda":
        torch.cuda.empty_cache()
    return result


# ---- lossbench's step ----------------------------------------------------------------------------
class StepTimer(L.Callback):
    """Records ``time.perf_counter()`` at every ``on_train_batch_start`` and at the last batch's end.

    The GPU is synchronized only where timing starts (after ``warmup`` steps) and ends, so the
    asynchronous queue of a normal run is left alone.
    """

    def __init__(self, warmup: int, steps: int, target: torch.device) -> None:
        self.warmup, self.steps, self.target = warmup, steps, target
        self.starts: list[float] = []
        self.end: float | None = None
        self.peak_mem_mib: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if len(self.starts) == self.warmup:
            synchronize(self.target)
            reset_peak_memory(self.target)
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if len(self.starts) == self.warmup + self.steps:
            synchronize(self.target)
            self.end = time.perf_counter()
            self.peak_mem_mib = peak_memory_mib(self.target)

    def result(self) -> dict[str, Any]:
        if self.end is None or len(self.starts) < self.warmup + self.steps:
            raise RuntimeError(
                f"only {len(self.starts)} steps ran; expected {self.warmup + self.steps}"
            )
        timed = self.starts[self.warmup :] + [self.end]
        gaps = [b - a for a, b in zip(timed, timed[1:], strict=False)]
        cpu = self.target.type == "cpu"  # on a GPU, unsynchronized per-step gaps mean little
        return {
            "step_s": (self.end - self.starts[self.warmup]) / self.steps,
            "median_s": statistics.median(gaps) if cpu else None,
            "min_s": min(gaps) if cpu else None,
            # the host's longest step: a (re)compilation or a data stall shows here, even on a GPU
            "max_gap_s": max(gaps),
            "peak_mem_mib": self.peak_mem_mib,
        }


def training_data(
    tokenizer: Any, shape: argparse.Namespace, num_batches: int
) -> tuple[list[tuple[str, ...]], dict[str, str], dict[str, str]]:
    """Tuples ``(qid, pos, neg, ...)`` for ``num_batches`` batches, and the texts they name.

    Queries have ``query_length`` one-token words and docs ``doc_length`` (each is truncated to its
    token limit, so every batch is full-length, like the minimal step's ids).
    """
    words = word_pool(tokenizer)
    num_queries = shape.queries * num_batches
    num_docs = max(2000, shape.docs * 50)
    queries = dict(
        zip(
            (f"q{i}" for i in range(num_queries)),
            make_texts(words, num_queries, shape.query_length, seed=3),
            strict=True,
        )
    )
    docs = dict(
        zip(
            (f"d{i}" for i in range(num_docs)),
            make_texts(words, num_docs, shape.doc_length, seed=4),
            strict=True,
        )
    )
    tuples = [
        (f"q{i}", *(f"d{(i * shape.docs + j) % num_docs}" for j in range(shape.docs)))
        for i in range(num_queries)
    ]
    return tuples, docs, queries


def pipeline_settings() -> tuple[dict[str, Any], dict[str, Any]]:
    """The Trainer arguments and optimizer/schedule config pipeline.run uses on the default dataset
    (the YAML files read as they are, with the ``${dataset.recommended.*}`` they refer to: the
    synthetic dataset's declared settings over the schema's general ones)."""
    import dataclasses

    import yaml

    from lossbench.experiment.schema import RecommendedConf

    declared = yaml.safe_load((REPO / "conf/dataset/synthetic.yaml").read_text())
    recommended = {**dataclasses.asdict(RecommendedConf()), **declared.get("recommended", {})}

    def resolved(path: str) -> Any:
        def value(item: Any) -> Any:
            if isinstance(item, dict):
                return {key: value(inner) for key, inner in item.items()}
            prefix = "${dataset.recommended."
            if isinstance(item, str) and item.startswith(prefix) and item.endswith("}"):
                return recommended[item[len(prefix) : -1]]
            return item

        return value(yaml.safe_load((REPO / path).read_text()))

    trainer = resolved("conf/trainer/default.yaml")
    schedule = resolved("conf/schedule/linear_warmup.yaml")
    optimizer = {str(k): v for k, v in schedule["optimizer"].items() if not str(k).startswith("_")}
    optimizer["lr"] = float(optimizer["lr"])
    schedule_args: dict[str, Any] = {
        "warmup_steps": int(schedule["lr_schedule"]["warmup_steps"]),
        "final_factor": float(schedule["lr_schedule"]["final_factor"]),
        "optimizer": optimizer,
    }
    return {str(k): v for k, v in trainer.items()}, schedule_args


def mlflow_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("mlflow") is not None
    except ImportError:
        return False


def full_batches(steps: int, num_workers: int) -> int:
    """Batches to generate so that every worker's shard holds only full batches, at least ``steps``
    in all (a streamed dataset's shards end with a partial batch: smaller and faster, and a new
    shape for a compiled model)."""
    workers = max(1, num_workers)
    return workers * (-(-steps // workers) + 1)


def time_lossbench(
    model: str,
    shape: argparse.Namespace,
    target: torch.device,
    variant: str,
    num_workers: int,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time ``LightningIRTrainer.fit`` over ``warmup + steps`` steps with the real data path
    (``overrides``: Trainer arguments of ``lossbench_pipeline`` replaced, for ablations)."""
    from lossbench.data import LightningIRDataModule, TupleDataset
    from lossbench.loss import InfoNCE
    from lossbench.models import BiEncoderModule
    from lossbench.models.config import DprConfig
    from lossbench.training.schedulers import LinearWarmupDecay
    from lossbench.training.trainer import LightningIRTrainer

    total_steps = shape.warmup + shape.steps
    config = DprConfig(
        query_length=shape.query_length,
        doc_length=shape.doc_length,
        pooling="first",
        random_init=random_init(model),
    )
    L.seed_everything(0, verbose=False)
    module = BiEncoderModule(model_folder(model), config=config, loss_functions=[InfoNCE()])
    if variant == "lossbench_compiled":
        module.compile_encoders()
    if variant == "lossbench_pipeline":
        from lossbench.training.hardware import training_workers

        num_workers = training_workers(None, target)  # data.num_workers: null
    tuples, docs, queries = training_data(
        module.tokenizer, shape, full_batches(total_steps, num_workers)
    )
    dataset = TupleDataset(tuples, docs=docs, queries=queries)
    trainer_args, schedule = pipeline_settings()
    timer = StepTimer(shape.warmup, shape.steps, target)
    scratch = Path(tempfile.mkdtemp(prefix="train-", dir=WORK_DIR))
    stack = contextlib.ExitStack()
    logged = False
    try:
        if variant == "lossbench_pipeline":
            module.set_optimizer(torch.optim.AdamW, **schedule["optimizer"])
            module.set_lr_schedule(
                LinearWarmupDecay(schedule["warmup_steps"], total_steps, schedule["final_factor"])
            )
            if mlflow_available():
                from lossbench.experiment.mlflow_logger import MlflowRunLogger
                from lossbench.experiment.tracking import tracked_run

                tracked = stack.enter_context(
                    tracked_run(
                        f"sqlite:///{scratch}/mlflow.db",
                        "bench",
                        "train_step",
                        str(scratch / "art"),
                    )
                )
                trainer_args = {**trainer_args, "logger": MlflowRunLogger(tracked)}
                logged = True
            else:
                print("  (mlflow is not installed here: timed without the MLflow logger)")
            trainer_args.update(overrides or {})
        else:
            module.set_optimizer(torch.optim.AdamW, lr=1e-5)
            trainer_args = {
                "accelerator": "auto",
                "devices": 1,
                "logger": False,
                "enable_progress_bar": False,
            }
        callbacks: list[L.Callback] = [timer]
        if variant == "lossbench_pipeline":  # pipeline.run's own callback on every step
            from lossbench.training.callbacks import FiniteLossGuard

            callbacks.insert(0, FiniteLossGuard())
        trainer_args.update(
            max_steps=total_steps, callbacks=callbacks, default_root_dir=str(scratch)
        )
        data = LightningIRDataModule(
            train_dataset=dataset, train_batch_size=shape.queries, num_workers=num_workers
        )
        trainer = LightningIRTrainer(**trainer_args)
        trainer.fit(module, data)
        result = timer.result()
        result["num_workers"] = num_workers
        result["mlflow_logger"] = logged
    finally:
        stack.close()
        shutil.rmtree(scratch, ignore_errors=True)
    del module
    gc.collect()
    if target.type == "cuda":
        torch.cuda.empty_cache()
    return result


def time_data_path(model: str, shape: argparse.Namespace, num_workers: int) -> dict[str, Any]:
    """The DataLoader alone (batches/s it delivers) and one batch's collate in this process."""
    from torch.utils.data import DataLoader

    from lossbench.data import TupleDataset
    from lossbench.data.batches import TrainCollator
    from lossbench.data.streams import as_train_tuple
    from lossbench.models.backbone import load_tokenizer

    tokenizer = load_tokenizer(model_folder(model))
    batches = shape.warmup + shape.steps
    tuples, docs, queries = training_data(tokenizer, shape, full_batches(batches, num_workers))
    dataset = TupleDataset(tuples, docs=docs, queries=queries)
    collate = TrainCollator(tokenizer, shape.query_length, shape.doc_length)
    samples = [dataset.sample(as_train_tuple(item)) for item in tuples[: shape.queries]]
    collate_times = []
    for _ in range(5):
        start = time.perf_counter()
        collate(samples)
        collate_times.append(time.perf_counter() - start)
    loader = DataLoader(
        dataset, batch_size=shape.queries, collate_fn=collate, num_workers=num_workers
    )
    iterator = iter(loader)
    next(iterator)  # workers started, first batch made
    start = time.perf_counter()
    count = 0
    for _ in range(batches - 1):
        next(iterator)
        count += 1
    loader_s = (time.perf_counter() - start) / max(count, 1)
    del iterator
    return {
        "collate_s": statistics.median(collate_times),
        "loader_batch_s": loader_s,
        "num_workers": num_workers,
    }


def time_mlflow_logging(calls: int = 50) -> float:
    """Milliseconds of one ``TrackedRun.log_metrics`` call (what the MLflow logger does every step)."""
    from lossbench.experiment.tracking import tracked_run

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mlflow-", dir=WORK_DIR))
    try:
        with tracked_run(f"sqlite:///{scratch}/mlflow.db", "bench", "log", str(scratch)) as run:
            run.log_metrics({"train/loss": 1.0}, 0)  # warm-up
            start = time.perf_counter()
            for step in range(1, calls + 1):
                run.log_metrics({"train/loss": 1.0 / step}, step)
            return (time.perf_counter() - start) / calls * 1000
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
