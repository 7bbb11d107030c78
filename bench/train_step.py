"""Training step: a minimal hand-written step vs lossbench's full Trainer step, in the same process.

    python -m bench.train_step            # CPU: MiniLM, 16 queries x 4 docs, 12 / 40 tokens
    python -m bench.train_step --quick    # a few steps, to check it works
    python -m bench.train_step --gpu      # H100 shapes: both models, 32 x 8, 32 / 180 tokens, bf16

Variants (each warmed up, then timed over ``--steps`` steps):

* ``minimal``: pre-tokenized ids already on the device, CLS pooling, dot product, cross-entropy over
  each query's candidates, AdamW (fused on a GPU), bf16 autocast on a GPU. Timed first and again
  after each round of lossbench variants (``--rounds``); a round's ratio uses the mean of the
  minimal steps just before and after it (the load of the machine drifts), and the reported ratio
  is the median over rounds.
* ``minimal_compiled`` (``--compile``, default on a GPU): the same step with ``torch.compile``.
* ``lossbench_pipeline``: ``LightningIRTrainer.fit`` of a ``BiEncoderModule`` (same backbone,
  CLS pooling, InfoNCE = the same cross-entropy) on a ``TupleDataset`` through
  ``LightningIRDataModule`` (tokenizing in its workers), with everything ``pipeline.run`` adds: the
  trainer settings of ``conf/trainer/default.yaml`` (progress bar, gradient clipping, logging every
  step on the CPU and every 10th on a GPU), an MLflow logger on a sqlite store (when mlflow is
  installed), the linear warmup/decay LR schedule, and the workers ``data.num_workers: null`` picks.
  ``--ablate KEY=VALUE`` adds a row of it with one Trainer argument changed (what does clipping or
  the progress bar cost?).
* ``lossbench_lean``: the same module and data module with no logger, no progress bar, no gradient
  clipping, ``--num-workers`` workers: what the step costs without the pipeline's extras.
* ``lossbench_compiled`` (with ``--compile``): ``lossbench_lean`` after
  ``BiEncoderModule.compile_encoders()`` (what ``compile=true`` does in the pipeline: static shapes,
  training batches padded to the full lengths); compare it with ``minimal_compiled``.
* ``data_path``: the DataLoader alone (TupleDataset + TrainCollator), ``--num-workers`` workers, and
  the collate (tokenization) of one batch in the main process: can the workers keep up?

A lossbench step's time is read by a Callback at ``on_train_batch_start`` (``time.perf_counter``):
``(end of the last step - start of the first timed step) / steps``, nothing subtracted (data waits,
logging, callbacks, optimizer and scheduler included). GPU work is synchronized at the two ends.
``max_gap_s`` is the longest step seen by the host: a compilation or a data stall inside the timed
steps shows there. The generated tuples give every worker's shard only full batches.
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
    MODELS,
    WORK_DIR,
    build_backbone,
    device,
    make_texts,
    merged_results,
    model_folder,
    peak_memory_mib,
    quiet_libraries,
    random_ids,
    random_init,
    reset_peak_memory,
    result_name,
    synchronize,
    table,
    word_pool,
    write_result,
)

REPO = Path(__file__).resolve().parent.parent


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
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if target.type == "cuda"
            else contextlib.nullcontext()
        )
        with autocast:
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
    """The Trainer arguments and optimizer/schedule config pipeline.run uses (read as plain YAML,
    so the benchmark needs no Hydra: a GPU machine may not have it)."""
    import yaml

    trainer = yaml.safe_load((REPO / "conf/trainer/default.yaml").read_text())
    schedule = yaml.safe_load((REPO / "conf/schedule/linear_warmup.yaml").read_text())
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


# ---- the benchmark -------------------------------------------------------------------------------
def gpu_workers() -> int:
    from lossbench.training.hardware import gpu_workers as workers

    return workers()


def parse_override(item: str) -> tuple[str, Any]:
    """``gradient_clip_val=0`` -> ``("gradient_clip_val", 0)`` (the value read as YAML)."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--trainer {item!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps: check that it works")
    parser.add_argument(
        "--gpu", action="store_true", help="the H100 shapes (both models, 32x8, 32/180)"
    )
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, help="default: minilm (CPU), both (--gpu)"
    )
    parser.add_argument("--queries", type=int, help="queries per step (16; 32 with --gpu)")
    parser.add_argument("--docs", type=int, help="docs per query (4; 8 with --gpu)")
    parser.add_argument("--query-length", type=int, help="query tokens (12; 32 with --gpu)")
    parser.add_argument("--doc-length", type=int, help="doc tokens (40; 180 with --gpu)")
    parser.add_argument(
        "--warmup", type=int, help="untimed steps first (3; 10 with --gpu; 1 quick)"
    )
    parser.add_argument("--steps", type=int, help="timed steps (10; 50 with --gpu; 2 quick)")
    parser.add_argument(
        "--num-workers",
        type=int,
        help="workers of lossbench_lean and data_path (1; up to 12 with --gpu)",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the torch.compile'd minimal step (default: on a GPU)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of (lossbench variants, minimal): medians over rounds (2 on the CPU, 1 --gpu/quick)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's; 1 is steadier on a busy machine)",
    )
    parser.add_argument(
        "--trainer",
        dest="trainer_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Trainer argument of lossbench_pipeline (ablations: gradient_clip_val=0)",
    )
    parser.add_argument(
        "--ablate",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also time lossbench_pipeline with this one Trainer argument changed, as its own row "
        "(repeatable: --ablate gradient_clip_val=0 --ablate enable_progress_bar=false)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["lossbench_pipeline", "lossbench_lean", "lossbench_compiled", "data_path"],
        choices=["lossbench_pipeline", "lossbench_lean", "lossbench_compiled", "data_path"],
        help="lossbench variants to time (minimal always runs)",
    )
    args = parser.parse_args(argv)
    args.trainer_overrides = dict(parse_override(item) for item in args.trainer_overrides)
    args.ablations = [parse_override(item) for item in args.ablate]
    gpu = args.gpu
    defaults = {
        "models": list(MODELS) if gpu else ["minilm"],
        "queries": 32 if gpu else 16,
        "docs": 8 if gpu else 4,
        "query_length": 32 if gpu else 12,
        "doc_length": 180 if gpu else 40,
        "warmup": 1 if args.quick else (10 if gpu else 3),
        "steps": 2 if args.quick else (50 if gpu else 10),
        "num_workers": gpu_workers() if gpu else 1,
        "compile": gpu,
        "rounds": 1 if (gpu or args.quick) else 2,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_libraries()
    target = device()
    if args.gpu and target.type != "cuda":
        raise SystemExit("--gpu: no CUDA device here; run the CPU benchmark without --gpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if target.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    shape = f"{args.queries}q x {args.docs}d, {args.query_length}/{args.doc_length} tok"
    print(
        f"training step on {target.type}: {shape}, warmup {args.warmup}, {args.steps} timed steps"
    )
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    for model in args.models:
        runs: dict[str, Any] = {}
        print(f"[{model}] minimal step ...", flush=True)
        minimal_runs = [time_minimal(model, args, target)]
        if args.compile:
            print(f"[{model}] minimal step, torch.compile ...", flush=True)
            runs["minimal_compiled"] = time_minimal(model, args, target, compiled=True)
        # row label -> (variant, Trainer overrides of lossbench_pipeline)
        variants: dict[str, tuple[str, dict[str, Any]]] = {}
        if "lossbench_pipeline" in args.variants:
            variants["lossbench_pipeline"] = ("lossbench_pipeline", args.trainer_overrides)
            for key, value in args.ablations:
                label = f"lossbench_pipeline[{key}={value}]"
                variants[label] = ("lossbench_pipeline", {**args.trainer_overrides, key: value})
        if "lossbench_lean" in args.variants:
            variants["lossbench_lean"] = ("lossbench_lean", {})
        if args.compile and "lossbench_compiled" in args.variants:
            variants["lossbench_compiled"] = ("lossbench_compiled", {})
        rounds: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for number in range(1, args.rounds + 1):
            for label, (variant, overrides) in variants.items():
                print(f"[{model}] {label}, round {number} of {args.rounds} ...", flush=True)
                result = time_lossbench(model, args, target, variant, args.num_workers, overrides)
                print(f"  {result['step_s']:.4f} s/step, longest {result['max_gap_s']:.3f} s")
                rounds[label].append(result)
            print(f"[{model}] minimal step again ...", flush=True)
            minimal_runs.append(time_minimal(model, args, target))
            # this round's ratio: against the minimal steps timed just before and just after it
            around = (minimal_runs[-2]["step_s"] + minimal_runs[-1]["step_s"]) / 2
            for variant in variants:
                rounds[variant][-1]["ratio_to_minimal"] = rounds[variant][-1]["step_s"] / around
        per_step = [t for run in minimal_runs for t in run.pop("per_step_s")]
        minimal = {
            "step_s": statistics.median(run["step_s"] for run in minimal_runs),
            "median_s": statistics.median(per_step) if per_step else None,
            "min_s": min(per_step) if per_step else None,
            "runs_s": [run["step_s"] for run in minimal_runs],
            "peak_mem_mib": minimal_runs[0]["peak_mem_mib"],
            "ratio_to_minimal": 1.0,
        }
        if "minimal_compiled" in runs:
            runs["minimal_compiled"].pop("per_step_s", None)
        for variant, results_of_rounds in rounds.items():
            mins = [run["min_s"] for run in results_of_rounds if run.get("min_s") is not None]
            runs[variant] = {
                "step_s": statistics.median(run["step_s"] for run in results_of_rounds),
                "median_s": results_of_rounds[-1]["median_s"],
                "min_s": min(mins) if mins else None,
                "ratio_to_minimal": statistics.median(
                    run["ratio_to_minimal"] for run in results_of_rounds
                ),
                "round_ratios": [run["ratio_to_minimal"] for run in results_of_rounds],
                "peak_mem_mib": max(
                    (run["peak_mem_mib"] for run in results_of_rounds if run["peak_mem_mib"]),
                    default=None,
                ),
                "num_workers": results_of_rounds[0]["num_workers"],
                "max_gap_s": max(run["max_gap_s"] for run in results_of_rounds),
            }
        runs = {"minimal": minimal, **runs}
        for name, run in runs.items():
            run.setdefault("ratio_to_minimal", run["step_s"] / minimal["step_s"])
            if run.get("min_s") and minimal["min_s"]:  # CPU: fastest step vs fastest step
                run["ratio_of_min"] = run["min_s"] / minimal["min_s"]
            if "minimal_compiled" in runs:
                run["ratio_to_compiled"] = run["step_s"] / runs["minimal_compiled"]["step_s"]
            rows.append({"model": model, "variant": name, **run})
        if "data_path" in args.variants:
            print(f"[{model}] data path ...", flush=True)
            data = time_data_path(model, args, args.num_workers)
            runs["data_path"] = data
            rows.append(
                {
                    "model": model,
                    "variant": f"data_path ({data['num_workers']} worker(s))",
                    "step_s": data["loader_batch_s"],
                    "collate_s": data["collate_s"],
                    "num_workers": data["num_workers"],
                }
            )
        results[model] = runs
        print(table([r for r in rows if r["model"] == model], SHORT_COLUMNS), flush=True)
        save(args, target, results, None)  # after each model: a cut-off run keeps what it measured
    columns = [
        "model",
        "variant",
        "step_s",
        "median_s",
        "min_s",
        "ratio_to_minimal",
        "ratio_of_min",
        "ratio_to_compiled",
        "max_gap_s",
        "peak_mem_mib",
        "num_workers",
        "collate_s",
    ]
    mlflow_ms = None
    if "lossbench_pipeline" in args.variants and mlflow_available():
        print("MLflow log_metrics per call ...", flush=True)
        mlflow_ms = time_mlflow_logging(10 if args.quick else 50)
    print()
    print(table(rows, columns))
    if mlflow_ms is not None:
        print(
            f"MLflow (sqlite) log_metrics: {mlflow_ms:.1f} ms per call; pipeline.run's logger "
            "buffers the steps and writes them every 50 steps or 15 s"
        )
    print(
        "goal: lossbench step <= 1.15 x minimal step (and <= 1.15 x the compiled one with compile)"
    )
    print(f"wrote {save(args, target, results, mlflow_ms)}")


SHORT_COLUMNS = [
    "model",
    "variant",
    "step_s",
    "ratio_to_minimal",
    "ratio_to_compiled",
    "max_gap_s",
    "peak_mem_mib",
]


def save(
    args: argparse.Namespace, target: torch.device, results: dict[str, Any], mlflow_ms: float | None
) -> Path:
    name = result_name("train_step", args.quick, target)
    return write_result(
        name,
        {
            "shape": {
                k: getattr(args, k)
                for k in ("queries", "docs", "query_length", "doc_length", "warmup", "steps")
            },
            "precision": "bf16-mixed" if target.type == "cuda" else "fp32",
            "results": merged_results(name, results),
            "mlflow_log_metrics_ms": mlflow_ms,
            "goal": {"max_ratio_to_minimal": 1.15},
        },
    )


if __name__ == "__main__":
    main()
