"""Cross-encoder re-ranking: pairs/s against a bare forward, and a training step against a minimal one.

Two figures, each measured in one invocation with both sides interleaved round by round:

* ``rerank``: pairs per second of :func:`lossbench.retrieval.rerank.rerank` (what a run's
  validation and test do: token ids through the module's token cache, pairs sorted by length and
  batched, inference mode, bf16 on a GPU, scores scattered back into a run) against ``bare``, a
  forward-only loop over the same pairs already tokenized, padded and sorted exactly as lossbench
  batches them (the ceiling). ``rerank_cold`` clears the token cache first (a run's first pass);
  ``rerank_warm`` keeps it (every later validation of the same candidates). Goal: >= 0.85 x bare.
* ``train``: seconds per optimizer step of ``CrossEncoderModule`` trained by ``LightningIRTrainer``
  (``lossbench_lean``: no logger, progress bar or clipping; ``lossbench_pipeline``: pipeline.run's
  Trainer settings, MLflow logger and LR schedule) on a TupleDataset through the data module (pairs
  tokenized in a DataLoader worker), against ``minimal``: a hand-written cross-encoder step on
  pre-tokenized pairs already on the device (CLS pooling, a linear head, cross-entropy over each
  query's candidates, AdamW). A round's ratio is against the mean of the minimal steps timed just
  before and after it; the reported ratio is the median over rounds. Goal: <= 1.15 x minimal.

Queries have ``query_length`` one-token words; docs a random number of words between a quarter and
one and a half times ``doc_length`` (variable lengths, so sorting by length matters as in a real
run; training docs are all full-length, like the minimal step's ids).

    python -m bench.rerank              # CPU shapes (MiniLM, 20 queries x 50 candidates, 24/64 tokens)
    python -m bench.rerank --quick      # a check that it works
    python -m bench.rerank --gpu        # GPU shapes: MiniLM and BERT-base, 200 x 100, bf16
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from bench.common import (
    MODELS,
    WORK_DIR,
    add_int_options,
    bf16_autocast,
    device_parser,
    fill_defaults,
    make_texts,
    model_folder,
    random_ids,
    random_init,
    start_device,
    synchronize,
    table,
    word_pool,
)
from bench.record import write_result


def cross_encoder(model: str, args: argparse.Namespace, loss: Any = None) -> Any:
    """A CrossEncoderModule as ``model=cross_minilm`` builds it (CLS pooling, fresh head)."""
    from lossbench.models import CrossEncoderConfig, CrossEncoderModule

    config = CrossEncoderConfig(
        query_length=args.query_length,
        doc_length=args.doc_length,
        pooling="first",
        random_init=random_init(model),
    )
    torch.manual_seed(0)
    return CrossEncoderModule(
        model_folder(model), config=config, loss_functions=[loss] if loss else None
    )


# ---- re-ranking ----------------------------------------------------------------------------------
def candidate_texts(
    tokenizer: Any, args: argparse.Namespace
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """``args.queries`` queries with ``args.depth`` candidates each, and their texts."""
    words = word_pool(tokenizer)
    rng = random.Random(5)
    queries = dict(
        zip(
            (f"q{i}" for i in range(args.queries)),
            make_texts(words, args.queries, args.query_length, seed=6),
            strict=True,
        )
    )
    num_docs = args.queries * args.depth
    low, high = max(1, args.doc_length // 4), args.doc_length * 3 // 2
    docs = {
        f"d{i}": " ".join(rng.choices(words, k=rng.randint(low, high))) for i in range(num_docs)
    }
    candidates = {
        qid: [f"d{i * args.depth + j}" for j in range(args.depth)] for i, qid in enumerate(queries)
    }
    return candidates, queries, docs


def bare_batches(
    module: Any, texts: tuple[Any, Any, Any], batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """The pairs tokenized, sorted and padded as :func:`rerank` batches them, on the device."""
    import numpy as np

    candidates, queries, docs = texts
    pairs = [(q, d) for q, ds in candidates.items() for d in ds]
    tokenizer = module.pair_tokenizer()
    rows = tokenizer.rows([queries[q] for q, _ in pairs], [docs[d] for _, d in pairs])
    order = np.argsort([-len(row) for row in rows], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        encoding = tokenizer.pad([rows[i] for i in order[start : start + batch_size]])
        batches.append({k: v.to(module.device) for k, v in encoding.items()})
    return batches


def time_bare(module: Any, batches: list[dict[str, torch.Tensor]]) -> float:
    """Seconds of a forward-only pass over ``batches`` (CLS through the head, scores to the host)."""
    from lossbench.retrieval.encode import autocast_for

    backbone, head = module.backbone, module.score_head
    synchronize(module.device)
    start = time.perf_counter()
    with torch.inference_mode(), autocast_for(module.device):
        for encoding in batches:
            scores = head(backbone(**encoding).last_hidden_state[:, 0]).squeeze(-1)
            scores.float().cpu()
    return time.perf_counter() - start


def time_rerank(module: Any, texts: tuple[Any, Any, Any], batch_size: int, warm: bool) -> float:
    """Seconds of :func:`rerank` over the candidates (token cache cleared unless ``warm``)."""
    from lossbench.retrieval.rerank import rerank

    candidates, queries, docs = texts
    if not warm:
        module.token_cache.clear()
    synchronize(module.device)
    start = time.perf_counter()
    rerank(module, candidates, queries, docs, batch_size, progress=False)
    return time.perf_counter() - start


def bench_rerank(model: str, args: argparse.Namespace, target: torch.device) -> dict[str, Any]:
    module = cross_encoder(model, args).to(target).eval()
    size = args.batch_size
    texts = candidate_texts(module.tokenizer, args)
    pairs = sum(len(docs) for docs in texts[0].values())
    batches = bare_batches(module, texts, size)
    time_bare(module, batches[:2])  # warm-up
    time_rerank(module, texts, size, warm=True)  # warm-up; fills the cache for rerank_warm
    seconds: dict[str, list[float]] = {"bare": [], "rerank_cold": [], "rerank_warm": []}
    ratios: dict[str, list[float]] = {"rerank_cold": [], "rerank_warm": []}
    for number in range(1, args.rounds + 1):
        print(f"[{model}] re-ranking, round {number} of {args.rounds} ...", flush=True)
        bare = time_bare(module, batches)
        cold = time_rerank(module, texts, size, warm=False)
        warm = time_rerank(module, texts, size, warm=True)
        bare_after = time_bare(module, batches)
        around = (bare + bare_after) / 2
        seconds["bare"] += [bare, bare_after]
        seconds["rerank_cold"].append(cold)
        seconds["rerank_warm"].append(warm)
        ratios["rerank_cold"].append(around / cold)
        ratios["rerank_warm"].append(around / warm)
    rows = {
        name: {
            "pairs_per_s": pairs / statistics.median(values),
            "runs_s": values,
            "ratio_to_bare": statistics.median(ratios[name]) if name in ratios else 1.0,
        }
        for name, values in seconds.items()
    }
    del module, batches
    gc.collect()
    return {"pairs": pairs, "rows": rows}


# ---- training ------------------------------------------------------------------------------------
def minimal_step(module: Any, args: argparse.Namespace, target: torch.device) -> Any:
    """One optimizer step of the smallest cross-encoder training loop (returns the loss)."""
    backbone, head = module.backbone, module.score_head
    vocab = int(backbone.config.vocab_size)
    length = args.query_length + args.doc_length + 3
    pairs = random_ids(args.train_queries * args.train_docs, length, vocab, target, seed=7)
    pairs["token_type_ids"] = torch.zeros_like(pairs["input_ids"])
    pairs["token_type_ids"][:, args.query_length + 2 :] = 1
    labels = torch.zeros(args.train_queries, dtype=torch.long, device=target)
    kwargs: dict[str, Any] = {"lr": 1e-5}
    if target.type == "cuda":
        kwargs["fused"] = True
    optimizer = torch.optim.AdamW(module.parameters(), **kwargs)

    def step() -> torch.Tensor:
        with bf16_autocast(target):
            cls = backbone(**pairs).last_hidden_state[:, 0]  # (Q*D, H)
            scores = head(cls).view(args.train_queries, args.train_docs)  # (Q, D)
            loss = F.cross_entropy(scores.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def time_minimal(model: str, args: argparse.Namespace, target: torch.device) -> float:
    module = cross_encoder(model, args).to(target).train()
    step = minimal_step(module, args, target)
    for _ in range(args.warmup):
        step()
    synchronize(target)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(target)
    seconds = (time.perf_counter() - start) / args.steps
    del step, module
    gc.collect()
    return seconds


def time_lossbench(
    model: str, args: argparse.Namespace, target: torch.device, variant: str
) -> dict[str, Any]:
    """``LightningIRTrainer.fit`` over ``warmup + steps`` steps with the real data path."""
    import shutil
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    from bench.train_step import StepTimer, full_batches, pipeline_settings, training_data
    from lossbench.data import LightningIRDataModule, TupleDataset
    from lossbench.loss import InfoNCE
    from lossbench.training.hardware import training_workers
    from lossbench.training.schedulers import LinearWarmupDecay
    from lossbench.training.trainer import LightningIRTrainer

    total = args.warmup + args.steps
    module = cross_encoder(model, args, InfoNCE())
    workers = training_workers(None, target)
    shape = SimpleNamespace(
        queries=args.train_queries,
        docs=args.train_docs,
        query_length=args.query_length,
        doc_length=args.doc_length,
    )
    tuples, docs, queries = training_data(module.tokenizer, shape, full_batches(total, workers))
    timer = StepTimer(args.warmup, args.steps, target)
    scratch = Path(tempfile.mkdtemp(prefix="rerank-train-", dir=WORK_DIR))
    stack = contextlib.ExitStack()
    try:
        trainer_args: dict[str, Any]
        if variant == "lossbench_pipeline":
            trainer_args, schedule = pipeline_settings()
            module.set_optimizer(torch.optim.AdamW, **schedule["optimizer"])
            module.set_lr_schedule(
                LinearWarmupDecay(schedule["warmup_steps"], total, schedule["final_factor"])
            )
            from lossbench.experiment.mlflow_logger import MlflowRunLogger
            from lossbench.experiment.tracking import tracked_run

            tracked = stack.enter_context(
                tracked_run(f"sqlite:///{scratch}/mlflow.db", "bench", "rerank", str(scratch))
            )
            trainer_args["logger"] = MlflowRunLogger(tracked)
        else:
            module.set_optimizer(torch.optim.AdamW, lr=1e-5)
            trainer_args = {"logger": False, "enable_progress_bar": False}
        trainer_args.update(
            accelerator="auto",
            devices=1,
            max_steps=total,
            callbacks=[timer],
            default_root_dir=str(scratch),
        )
        data = LightningIRDataModule(
            train_dataset=TupleDataset(tuples, docs=docs, queries=queries),
            train_batch_size=args.train_queries,
            num_workers=workers,
        )
        LightningIRTrainer(**trainer_args).fit(module, data)
        return timer.result()
    finally:
        stack.close()
        shutil.rmtree(scratch, ignore_errors=True)
        del module
        gc.collect()


def bench_train(model: str, args: argparse.Namespace, target: torch.device) -> dict[str, Any]:
    minimal = [time_minimal(model, args, target)]
    variants = ("lossbench_lean", "lossbench_pipeline")
    steps: dict[str, list[float]] = {v: [] for v in variants}
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    for number in range(1, args.rounds + 1):
        for variant in variants:
            print(f"[{model}] training, {variant}, round {number} of {args.rounds} ...", flush=True)
            steps[variant].append(time_lossbench(model, args, target, variant)["step_s"])
        minimal.append(time_minimal(model, args, target))
        around = (minimal[-2] + minimal[-1]) / 2
        for variant in variants:
            ratios[variant].append(steps[variant][-1] / around)
    rows = {"minimal": {"step_s": statistics.median(minimal), "runs_s": minimal}}
    for variant in variants:
        rows[variant] = {
            "step_s": statistics.median(steps[variant]),
            "runs_s": steps[variant],
            "ratio_to_minimal": statistics.median(ratios[variant]),
        }
    return rows


# ---- the benchmark -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = device_parser(__doc__, "GPU shapes (both models, bf16)", models=True)
    add_int_options(
        parser,
        {
            "--queries": "queries re-ranked (20; 200 --gpu)",
            "--depth": "candidates per query (50; 100 --gpu)",
            "--batch-size": "pairs per batch (128; 512 --gpu)",
            "--query-length": "query tokens (24)",
            "--doc-length": "doc tokens (64)",
            "--train-queries": "queries per step (16; 32 --gpu)",
            "--train-docs": "candidates per query (4; 8 --gpu)",
            "--warmup": "untimed steps first (3; 10 --gpu; 1 quick)",
            "--steps": "timed steps (8; 50 --gpu; 2 quick)",
            "--rounds": "interleaved rounds (3; 1 quick)",
            "--threads": "torch CPU threads (default: torch's)",
        },
    )
    parser.add_argument(
        "--parts", nargs="+", default=["rerank", "train"], choices=["rerank", "train"]
    )
    args = parser.parse_args(argv)
    gpu, quick = args.gpu, args.quick
    defaults = {
        "models": list(MODELS) if gpu else ["minilm"],
        "queries": 4 if quick else (200 if gpu else 20),
        "depth": 20 if quick else (100 if gpu else 50),
        "batch_size": 512 if gpu else 128,
        "query_length": 24,
        "doc_length": 64,
        "train_queries": 32 if gpu else (4 if quick else 16),
        "train_docs": 8 if gpu else 4,
        "warmup": 1 if quick else (10 if gpu else 3),
        "steps": 2 if quick else (50 if gpu else 8),
        "rounds": 1 if quick else 3,
    }
    return fill_defaults(args, defaults)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    target = start_device(args)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    lines = []
    for model in args.models:
        results[model] = {}
        if "rerank" in args.parts:
            found = bench_rerank(model, args, target)
            results[model]["rerank"] = found
            rows = [{"variant": name, **row} for name, row in found["rows"].items()]
            title = f"{model}: re-ranking {found['pairs']} pairs, batch {args.batch_size}"
            lines += [title, table(rows, ["variant", "pairs_per_s", "ratio_to_bare"]), ""]
        if "train" in args.parts:
            rows_by_variant = bench_train(model, args, target)
            results[model]["train"] = rows_by_variant
            rows = [{"variant": name, **row} for name, row in rows_by_variant.items()]
            shape = f"{args.train_queries} x {args.train_docs} pairs"
            lines += [
                f"{model}: training step, {shape}",
                table(rows, ["variant", "step_s", "ratio_to_minimal"]),
                "",
            ]
    print("\n".join(lines))
    settings = {k: v for k, v in vars(args).items() if k != "parts"}
    path = write_result(
        f"rerank_{target.type}",
        {
            "settings": settings,
            "goals": {"rerank": ">= 0.85", "train": "<= 1.15"},
            "results": results,
        },
        quick=args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
