"""bf16 training smoke test on a GPU: lossbench's library path end to end, no Hydra or MLflow.

    python -m bench.gpu_smoke            # MiniLM-L6 (as shipped, or random-init), RankNet, 60 steps

What ``pipeline.run`` does on the embedded default, minus config and tracking (a GPU machine without
internet may lack those packages): the synthetic collection, an untrained index + test search, 60
bf16-mixed training steps with validation on dev at the end, the final index reused, the test
search, and the evaluation of record (ranx). Checks: the run uses the GPU and bf16 autocast, every loss is finite,
the model moved back by Lightning is encoded on the GPU again, and nDCG@10 is reported before and
after (a rise is expected with pretrained weights; random init on 60 steps may not move much).
Prints one line per check and writes ``bench/results/gpu_smoke.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import (
    WORK_DIR,
    device,
    model_folder,
    peak_memory_mib,
    quiet_libraries,
    random_init,
    reset_peak_memory,
    synchronize,
)
from bench.record import write_result


class _LossRecorder:
    """Keeps every step's loss on the device; read once at the end (no per-step wait)."""

    def __init__(self) -> None:
        import lightning as L

        class Recorder(L.Callback):
            def __init__(self) -> None:
                self.losses: list[torch.Tensor] = []
                self.autocast_dtype: torch.dtype | None = None

            def on_train_batch_end(
                self, trainer: Any, module: Any, outputs: Any, *args: Any
            ) -> None:
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                self.losses.append(loss.detach())

            def on_train_start(self, trainer: Any, module: Any) -> None:
                # a Linear layer's output: bf16 under autocast (the backbone's own output comes out
                # of a LayerNorm, which autocast runs in fp32)
                def record(layer: Any, inputs: Any, output: Any) -> None:
                    if self.autocast_dtype is None and layer.training:
                        self.autocast_dtype = output.dtype

                linear = next(
                    m for m in module.backbone.modules() if isinstance(m, torch.nn.Linear)
                )
                self.hook = linear.register_forward_hook(record)

            def on_train_end(self, trainer: Any, module: Any) -> None:
                self.hook.remove()

        self.callback = Recorder()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--model", default="minilm", choices=["minilm", "bert-base"])
    parser.add_argument("--allow-cpu", action="store_true", help="rehearse on the CPU (fp32)")
    args = parser.parse_args(argv)
    quiet_libraries()
    target = device()
    on_gpu = target.type == "cuda"
    if not on_gpu and not args.allow_cpu:
        raise SystemExit("gpu_smoke needs a CUDA device (or --allow-cpu for a rehearsal)")

    from lossbench.data import LightningIRDataModule, TupleDataset, synthetic_collection
    from lossbench.evaluation import evaluate_run
    from lossbench.loss import RankNet
    from lossbench.models import BiEncoderModule, DprConfig
    from lossbench.retrieval import ExactDenseIndex, index_corpus, search_split
    from lossbench.training.callbacks import FiniteLossGuard
    from lossbench.training.hardware import (
        encoding_workers,
        inference_batch_size,
        inference_device,
        training_workers,
    )
    from lossbench.training.schedulers import LinearWarmupDecay
    from lossbench.training.trainer import LightningIRTrainer
    from lossbench.training.validation import RetrievalValidation

    checks: dict[str, Any] = {}
    times: dict[str, float] = {}
    start = time.perf_counter()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="smoke-", dir=WORK_DIR))
    collection = synthetic_collection(cache_dir=str(scratch / "data"), seed=0)
    config = DprConfig(query_length=24, doc_length=64, random_init=random_init(args.model))
    torch.manual_seed(0)
    module = BiEncoderModule(model_folder(args.model), config=config, loss_functions=[RankNet()])
    module.set_optimizer(torch.optim.AdamW, lr=1e-4, weight_decay=0.01)
    module.set_lr_schedule(LinearWarmupDecay(10, args.steps, 0.0))
    where = inference_device("auto")
    batch_size = inference_batch_size(None, where)
    workers = encoding_workers(None, where)
    checks["inference_device"] = str(where)
    checks["encode_workers"], checks["inference_batch_size"] = workers, batch_size
    times["setup_s"] = time.perf_counter() - start

    tick = time.perf_counter()
    module.to(where)
    index = index_corpus(module, collection, ExactDenseIndex(), batch_size, workers)
    base = evaluate_run(
        collection.qrels["test"], search_split(module, collection, index, "test", 100, batch_size)
    ).means
    times["base_eval_s"] = time.perf_counter() - tick

    recorder = _LossRecorder().callback
    validation = RetrievalValidation(
        collection, ExactDenseIndex, split="dev", batch_size=batch_size, num_workers=workers
    )
    trainer = LightningIRTrainer(
        max_steps=args.steps,
        accelerator="auto",
        devices=1,
        gradient_clip_val=1.0,
        enable_progress_bar=False,
        callbacks=[FiniteLossGuard(), validation, recorder],
        default_root_dir=str(scratch),
    )
    checks["precision"] = str(trainer.precision)
    checks["log_every_n_steps"] = trainer.log_every_n_steps
    data = LightningIRDataModule(
        train_dataset=TupleDataset(collection),
        train_batch_size=16,
        num_workers=training_workers(None, where),
    )
    reset_peak_memory(target)
    tick = time.perf_counter()
    trainer.fit(module, data)
    synchronize(target)
    times["train_s"] = time.perf_counter() - tick
    checks["train_peak_mem_mib"] = peak_memory_mib(target)
    losses = torch.stack(recorder.losses).float().cpu()
    checks["steps"] = len(losses)
    checks["all_losses_finite"] = bool(torch.isfinite(losses).all())
    checks["loss_first_10_mean"] = float(losses[:10].mean())
    checks["loss_last_10_mean"] = float(losses[-10:].mean())
    checks["autocast_dtype"] = str(recorder.autocast_dtype)  # the backbone's output in training
    checks["device_after_fit"] = str(module.device)

    tick = time.perf_counter()
    module.to(where)  # as pipeline.run does: Lightning moved the model back to the CPU
    reused = validation.last_step == trainer.global_step and validation.last_index is not None
    index = (
        validation.last_index
        if reused
        else index_corpus(module, collection, ExactDenseIndex(), batch_size, workers)
    )
    test_run = search_split(module, collection, index, "test", 100, batch_size)
    trained = evaluate_run(collection.qrels["test"], test_run).means
    times["index_search_eval_s"] = time.perf_counter() - tick
    checks["final_index_reused"] = reused
    checks["token_cache_texts"] = len(module.token_cache)  # the corpus and queries, tokenized once
    checks["val_history"] = validation.history
    times["total_s"] = time.perf_counter() - start

    ok = (
        checks["all_losses_finite"]
        and checks["steps"] == args.steps
        and (not on_gpu or checks["autocast_dtype"] == "torch.bfloat16")
        and (not on_gpu or checks["precision"] == "bf16-mixed")
    )
    print(f"{'check':<24} value")
    for name, value in checks.items():
        if name != "val_history":
            print(f"{name:<24} {value}")
    print(f"{'metric':<12} {'trained':>8} {'untrained':>10}")
    for name, value in trained.items():
        print(f"{name:<12} {value:>8.4f} {base[name]:>10.4f}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    print(f"smoke test: {'PASS' if ok else 'FAIL'}")
    write_result(
        "gpu_smoke",
        {
            "model": args.model,
            "random_init": config.random_init,
            "checks": checks,
            "test_metrics": trained,
            "test_metrics_untrained": base,
            "seconds": times,
            "passed": ok,
        },
        quick=not on_gpu,  # a CPU rehearsal checks the path; it is no GPU figure
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
