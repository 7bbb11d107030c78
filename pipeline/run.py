"""One run: check -> track -> data -> train -> index -> search -> evaluate -> log.

    python -m pipeline.run                              # the embedded default
    python -m pipeline.run loss=ranknet model=tiny trainer.max_steps=5
    python -m pipeline.run -m loss=ranknet seed=0,1     # a sweep, one MLflow run per job

Returns the objective metric (``eval.objective``) so that Hydra sweepers can optimise it.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from lossbench.config import instantiate_unwrapped, register_resolvers

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

register_resolvers()
log = logging.getLogger("lossbench")


class Stopwatch:
    """Wall-clock seconds per stage, logged as ``time/<stage>_s``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def plain_dict(node: DictConfig) -> dict[str, Any]:
    """A resolved config node as plain Python containers."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(key): value for key, value in container.items()}


def datasets_with_teacher_scores() -> list[str]:
    """The dataset choices whose config says they carry teacher scores."""
    names = []
    for path in sorted((CONF_DIR / "dataset").glob("*.yaml")):
        option = OmegaConf.load(path)
        if isinstance(option, DictConfig) and option.get("teacher_scores", False):
            names.append(path.stem)
    return names


def job_name(cfg: DictConfig) -> str:
    """The run's name: ``tracking.run_name``, else the job's command-line overrides, else ``default``."""
    if cfg.tracking.get("run_name"):
        return str(cfg.tracking.run_name)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hidden = ("tracking.", "paths.", "hydra.")
        overrides = [
            o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith(hidden)
        ]
        if overrides:
            return " ".join(overrides)[:250]
    return "default"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_parent_run_id() -> str | None:
    """Under ``-m``: the sweep's MLflow parent run (created by MlflowSweepCallback)."""
    if not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    from lossbench.sweeps import parent_run_id

    return parent_run_id(HydraConfig.get().sweep.dir)


def previous_objective(cfg: DictConfig, uri: str, digest: str) -> float | None:
    """The objective of an earlier FINISHED run with the same config hash (unless tracking.rerun)."""
    if cfg.tracking.get("rerun", False):
        return None
    from lossbench.evaluation import mlflow_metric_name
    from lossbench.sweeps import find_finished_run
    from lossbench.tracking import connect

    client = connect(uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    previous = find_finished_run(client, experiment.experiment_id, digest)
    if previous is None:
        return None
    prefix = "test" if cfg.eval.get("objective_split", "test") == "test" else "val"
    value = previous.data.metrics.get(mlflow_metric_name(cfg.eval.objective, prefix), float("nan"))
    print(
        f"skipping: run {previous.info.run_id} already FINISHED with this exact config "
        f"(config_hash {digest}); pass tracking.rerun=true to run it again",
        flush=True,
    )
    return float(value)


def objective_value(
    cfg: DictConfig, test_means: dict[str, float], history: list[tuple[int, dict[str, float]]]
) -> float:
    """``eval.objective`` on ``eval.objective_split``: the test split, or the last dev validation."""
    metric, split = cfg.eval.objective, cfg.eval.get("objective_split", "test")
    if split == "test":
        return float(test_means[metric])
    if split != cfg.eval.val_split:
        raise ValueError(f"eval.objective_split={split!r}; valid: test, {cfg.eval.val_split}")
    if not history or metric not in history[-1][1]:
        raise ValueError(
            f"eval.objective={metric!r} must be in eval.val_metrics to be read on {split!r}"
        )
    return float(history[-1][1][metric])


def output_folder(cfg: DictConfig, create: bool = True) -> Path:
    if cfg.paths.get("output"):
        folder = Path(cfg.paths.output)
    else:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            folder = Path(HydraConfig.get().runtime.output_dir)
        else:
            folder = Path(tempfile.mkdtemp(prefix="lossbench-"))
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def print_summary(
    metrics: dict[str, float], base: dict[str, float], tracked: Any, folder: Path
) -> None:
    """A short table of the test metrics and where to find the run."""
    lines = ["", f"{'metric':<12} {'trained':>8} {'untrained':>10}"]
    for name, value in metrics.items():
        before = f"{base[name]:.4f}" if name in base else "-"
        lines.append(f"{name:<12} {value:>8.4f} {before:>10}")
    lines += [
        "",
        f"MLflow run {tracked.run_id} (experiment id {tracked.experiment_id}) in {tracked.uri}",
        f"files in {folder}; browse with `make ui`",
    ]
    print("\n".join(lines), flush=True)


def run(cfg: DictConfig) -> float:
    """Run one experiment described by a composed config; returns ``eval.objective`` on the test split."""
    import lightning as L
    from hydra.utils import instantiate

    from lossbench.callbacks import FiniteLossGuard, RetrievalValidation
    from lossbench.checkpoints import (
        check_checkpoint_settings,
        checkpoint_callbacks,
        discard_when_finished,
    )
    from lossbench.checks import (
        check_collection,
        check_config,
        check_training_source,
        check_weight_schedule,
        compatibility_warnings,
        index_warnings,
    )
    from lossbench.data import LightningIRDataModule, RunDataset, TupleDataset
    from lossbench.data.formats import write_qrels, write_trec_run
    from lossbench.data.token_cache import TokenCache
    from lossbench.evaluation import evaluate_run, mlflow_metric_name
    from lossbench.hardware import (
        encoding_workers,
        inference_batch_size,
        inference_device,
        training_workers,
    )
    from lossbench.launch import is_launch_primary
    from lossbench.models import BiEncoderModule
    from lossbench.resume import resume_point
    from lossbench.retrieval import index_corpus, search_split
    from lossbench.retrieval.recall import recall_vs_exact
    from lossbench.sweeps import config_hash, system_hash
    from lossbench.tracking import (
        MlflowRunLogger,
        UntrackedRun,
        flatten,
        git_commit,
        reachable_uri,
        tracked_run,
    )
    from lossbench.trainer import LightningIRTrainer

    watch = Stopwatch()
    # 1. check what can be checked from the config alone, before anything is logged
    check_config(cfg)
    losses = [instantiate(cfg.loss.function)]
    weights = [1.0]
    if cfg.regularizer.get("function"):
        losses.append(instantiate(cfg.regularizer.function))
        weights.append(float(cfg.regularizer.weight))
    for warning in compatibility_warnings(losses, cfg.model.config):
        log.warning(warning)
    optimizer = instantiate(cfg.schedule.optimizer)
    lr_schedule = instantiate(cfg.schedule.lr_schedule) if cfg.schedule.get("lr_schedule") else None
    model_config = instantiate(cfg.model.config)
    instantiate(cfg.index)  # a bad index setting fails now, not after training
    for warning in index_warnings(cfg.model.config, cfg.index):
        log.warning(warning)
    weight_schedules: list[Any] = []  # callbacks changing loss weights per step
    if cfg.get("regularizer_schedule") and cfg.regularizer_schedule.get("callback"):
        weight_schedules.append(instantiate(cfg.regularizer_schedule.callback))
        check_weight_schedule(
            weight_schedules[-1].keys, losses, cfg.regularizer_schedule.name, cfg.regularizer.name
        )
    check_checkpoint_settings(cfg.get("checkpoint"))
    check_training_source(
        losses,
        cfg.loss.train_source,
        cfg.dataset.name,
        bool(cfg.dataset.get("teacher_scores", False)),
        datasets_with_teacher_scores(),
    )
    # DDP: the ranks Lightning (or SLURM) starts besides rank 0 only train; rank 0 logs
    primary = is_launch_primary()
    digest = config_hash(cfg)
    uri = ""
    resume = None
    if primary:
        uri = reachable_uri(
            cfg.tracking.uri, cfg.tracking.get("fallback_uri")
        )  # fails now, not after training
        rerun = bool(cfg.tracking.get("rerun", False))
        if cfg.get("resume"):
            resume = resume_point(uri, cfg.tracking.experiment, digest, rerun)
        done = previous_objective(cfg, uri, digest) if resume is None else None
        if done is not None:
            return done
    splits = [cfg.eval.val_split, "test"]
    with watch.stage("data"):
        collection = instantiate_unwrapped(cfg.dataset.collection)  # names a bad file and line
        check_collection(collection, cfg.loss.train_source, splits)

    tags = {
        "loss": cfg.loss.name,
        "regularizer": cfg.regularizer.name,
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "schedule": cfg.schedule.name,
        "regularizer_schedule": cfg.get("regularizer_schedule", {}).get("name", "none"),
        "seed": cfg.seed,
        "git_commit": git_commit(CONF_DIR.parent),
        "command": " ".join(sys.argv[1:]),
        "config_hash": digest,
        "system_hash": system_hash(cfg),
    }
    folder = output_folder(cfg, create=primary)
    with (
        tracked_run(
            uri,
            cfg.tracking.experiment,
            job_name(cfg),
            cfg.tracking.get("artifact_root"),
            resume.tags(tags["command"], tags["git_commit"]) if resume else tags,
            parent_run_id=sweep_parent_run_id(),
            resume_run_id=resume.run_id if resume else None,
        )
        if primary
        else nullcontext(UntrackedRun())
    ) as tracked:
        resolved = plain_dict(cfg)
        config_path = folder / "config.yaml"
        if primary:
            config_path.write_text(OmegaConf.to_yaml(resolved), encoding="utf-8")
        if resume is None:  # a resumed run keeps the params and config it started with
            tracked.log_params(flatten(resolved))
            tracked.log_artifact(config_path)
        tracked.log_metrics({f"data/{k}": v for k, v in collection.summary().items()})

        # 2. the model, its losses, optimizer and LR schedule
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        with watch.stage("model"):
            module = BiEncoderModule(
                model_name_or_path=cfg.model.model_name_or_path,
                config=model_config,
                loss_functions=list(zip(losses, weights, strict=True)),
            )
            module.set_optimizer(optimizer.func, **optimizer.keywords)
            module.set_lr_schedule(lr_schedule)
            module.token_cache = TokenCache(cfg.data.token_cache_mib)
            if cfg.get("compile", False):
                module.compile_encoders()

        def make_index() -> Any:
            return instantiate(cfg.index)

        device = inference_device(cfg.trainer.get("accelerator"))
        batch_size = inference_batch_size(cfg.data.inference_batch_size, device)
        encode_workers = encoding_workers(cfg.data.get("encode_workers"), device)
        base: dict[str, float] = {}
        # the untrained starting point, on the same test queries (a resumed run has it already)
        if cfg.eval.base and primary and resume is None:
            with watch.stage("base_eval"):
                module.to(device)
                index = index_corpus(module, collection, make_index(), batch_size, encode_workers)
                base_run = search_split(module, collection, index, "test", cfg.eval.k, batch_size)
                base = evaluate_run(collection.qrels["test"], base_run, cfg.eval.metrics).means
            tracked.log_metrics({f"test/base_{mlflow_metric_name(m)}": v for m, v in base.items()})

        # 3. train, validating on the dev split (step 0 reuses the untrained model's index)
        if cfg.loss.train_source == "run":
            train_dataset: Any = RunDataset(collection, **cfg.dataset.run_sampling)
        else:
            train_dataset = TupleDataset(collection)
        data_module = LightningIRDataModule(
            train_dataset=train_dataset,
            train_batch_size=cfg.data.train_batch_size,
            num_workers=training_workers(cfg.data.num_workers, device),
        )
        validation = RetrievalValidation(
            collection,
            make_index,
            split=cfg.eval.val_split,
            metrics=cfg.eval.val_metrics,
            every_n_steps=cfg.eval.get("val_every_n_steps"),
            k=cfg.eval.k,
            batch_size=batch_size,
            num_workers=encode_workers,
        )
        if base:
            with watch.stage("base_eval"):
                start = validation.evaluate_index(module, index, step=0)
            tracked.log_metrics({mlflow_metric_name(m, "val"): v for m, v in start.items()}, step=0)
        trainer_args = plain_dict(cfg.trainer)
        checkpoints = checkpoint_callbacks(
            cfg.get("checkpoint"), folder, tracked, resume.checkpoint_dir if resume else None
        )
        trainer_args["enable_checkpointing"] = bool(
            checkpoints or trainer_args.get("enable_checkpointing")
        )
        trainer = LightningIRTrainer(
            **trainer_args,
            logger=MlflowRunLogger(tracked),
            callbacks=[FiniteLossGuard(), validation, *weight_schedules, *checkpoints],
            default_root_dir=str(folder),
        )
        with watch.stage("train"):
            trainer.fit(module, data_module, ckpt_path=resume.checkpoint if resume else None)
        if checkpoints:  # part of time/train_s
            watch.seconds["checkpoint"] = sum(c.seconds_saving for c in checkpoints)
        if not primary:  # rank 0 indexes (the last validation's index), searches and logs
            return float("nan")

        # 4. index (reusing the last validation's index of the final weights), search, evaluate
        module.to(device)  # Lightning moves the model back to the CPU when fit ends
        with watch.stage("index"):
            if validation.last_step == trainer.global_step and validation.last_index is not None:
                index = validation.last_index
            else:
                index = index_corpus(module, collection, make_index(), batch_size, encode_workers)
        if hasattr(index, "stats"):  # size of the index: docs, postings, average posting length
            tracked.log_metrics({f"index/{name}": v for name, v in index.stats().items()})
        with watch.stage("search"):
            test_run = search_split(module, collection, index, "test", cfg.eval.k, batch_size)
        if getattr(index, "report_recall_vs_exact", False):  # an approximate index: what it misses
            with watch.stage("recall_vs_exact"):
                recall = recall_vs_exact(module, collection, index, "test", 100, batch_size)
            tracked.log_metrics({"index/recall_at_100_vs_exact": recall})
        with watch.stage("evaluate"):
            evaluation = evaluate_run(collection.qrels["test"], test_run, cfg.eval.metrics)
        run_path = write_trec_run(test_run, folder / "test.run", tag=f"lossbench-{cfg.loss.name}")
        per_query_path = evaluation.write_per_query_csv(folder / "per_query.csv")
        qrels_path = write_qrels(collection.qrels["test"], folder / "test.qrels")
        for path in (run_path, per_query_path, qrels_path):
            tracked.log_artifact(path)
        tracked.log_metrics({mlflow_metric_name(m, "test"): v for m, v in evaluation.means.items()})
        tracked.log_metrics({f"time/{name}_s": s for name, s in watch.seconds.items()})
        if resume is not None:
            base = resume.base_means(cfg.eval.metrics)
        print_summary(evaluation.means, base, tracked, folder)
        objective = objective_value(cfg, evaluation.means, validation.history)
        discard_when_finished(checkpoints, cfg.get("checkpoint"))
        return objective


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from lossbench.launch import check_multi_device, processes_launched_externally

    # before the sweep's per-job error handling: a sweep of re-launching DDP jobs stops here
    check_multi_device(
        cfg.trainer, in_multirun(), processes_launched_externally(), bool(cfg.get("resume"))
    )
    if not in_multirun():
        return run(cfg)
    try:
        return run(cfg)
    except Exception as error:  # one failing job must not stop the sweep; its run is already FAILED
        log.error("job failed, the sweep goes on: %s: %s", type(error).__name__, error)
        return float("nan")


if __name__ == "__main__":
    from lossbench.quick_exit import quick_exit

    main()  # an error or a sweep's end exits through Hydra, as usual
    quick_exit(0)  # everything is logged, closed and flushed: skip the interpreter's teardown
