"""Where the seconds of ``make run`` go: start-up, imports, config, MLflow, data, model, training
steps, encoding, search, ranx, and the rest.

    python -m bench.run_breakdown            # the embedded default (MiniLM, 80 steps), twice
    python -m bench.run_breakdown --quick    # model=tiny trainer.max_steps=4: check that it works

Three measurements, each in a fresh Python process (``make run`` starts one):

1. ``imports``: interpreter start-up (``python -c pass``), then each heavy import in the order
   ``pipeline.run`` pays for it (the later ones exclude what the earlier ones loaded).
2. ``pipeline.run`` as ``make run`` runs it (``python -m pipeline.run`` + ``--overrides``), writing
   only under ``$LOSSBENCH_BENCH_DIR`` (default /tmp/lossbench-bench): wall time from outside and
   the ``time/<stage>_s`` metrics the run logs to MLflow. The first run may fill caches (the
   synthetic data, ranx's numba kernels, .pyc files); the figures are the last run's (``--runs``).
3. ``instrumented``: the same run in-process (config composed with Hydra's compose API), run as
   ``Experiment(cfg).run()``. Its parts come first from the Experiment itself: each stage's seconds
   as its stopwatch timed it (``experiment.watch.seconds``, what ``time/<stage>_s`` logs), beside
   start-up, imports, composing the config, and what no stage covers; they add up to the wall
   time. Inside the stages, sub-stage timers are wrapped around lossbench's functions (nothing in
   lossbench is changed): ``iter_encoded`` (encoding, tokenization included), index ``add`` and
   ``search``, ``evaluate_run``, ``RetrievalValidation.validate``, checkpoint saves, MLflow calls,
   and a Callback (first in the Trainer's list) that separates the training steps
   (``on_train_batch_start`` -> ``on_train_batch_end``: forward, backward, optimizer) from what
   Lightning does between them (data waits, logging, progress bar).

"Overhead" is the wall time minus the work the issue exempts: training steps, encoding batches,
the exact search itself and checkpoint saves. Goals: <= 10 s per run once caches are warm;
``make run`` <= 3 min on 2 cores.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # the instrumented child's clock starts before its heavy imports

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.child import child_env  # noqa: E402
from bench.record import REPO, WORK_DIR  # noqa: E402

IMPORTS = (
    "omegaconf",
    "hydra",
    "torch",
    "lightning",
    "transformers",
    "transformers.models.bert.modeling_bert",
    "mlflow",
    "mlflow.tracking",
    "ranx",
    "pipeline.run",
    "lossbench.models",
    "lossbench.data",
    "lossbench.retrieval",
    "lossbench.training.callbacks",
    "lossbench.experiment.tracking",
    "lossbench.training.trainer",
    "lossbench.experiment.checks",
    "lossbench.experiment.sweeps",
)
"""Imported in this order by the import-timing child (roughly the order a run pays them)."""

QUICK_OVERRIDES = ["model=tiny", "trainer.max_steps=4", "eval.val_every_n_steps=null"]


def store_overrides(tag: str) -> list[str]:
    """Overrides that keep every file a run writes under WORK_DIR (never in the repository)."""
    root = WORK_DIR / "runs"
    return [
        f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"tracking.artifact_root={root}/artifacts",
        f"paths.cache={WORK_DIR}/cache",
        f"paths.output={root}/out/{tag}",
        f"hydra.run.dir={root}/hydra/{tag}",
        # a fresh experiment: the previous-run lookup of make run runs, and finds nothing
        f"tracking.experiment=bench_run_breakdown_{uuid.uuid4().hex[:12]}",
    ]


# ---- 1. start-up and imports ---------------------------------------------------------------------
IMPORT_CHILD = """
import importlib, json, sys, time
out = {}
for name in sys.argv[1:]:
    start = time.perf_counter()
    importlib.import_module(name)
    out[name] = time.perf_counter() - start
print(json.dumps(out))
"""


def time_imports() -> dict[str, Any]:
    env = child_env()
    startup = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        startup.append(time.perf_counter() - start)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHILD, *IMPORTS],
        check=True,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    imports = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "interpreter_s": statistics.median(startup),
        "imports_s": imports,
        "imports_total_s": sum(imports.values()),
        "process_wall_s": wall,
    }


# ---- 2. pipeline.run as make run runs it ---------------------------------------------------------
def time_pipeline_run(overrides: list[str], tag: str) -> dict[str, Any]:
    """Wall time of ``python -m pipeline.run`` and the time/* metrics of the run it logged."""
    store = store_overrides(tag)
    experiment = next(o.split("=", 1)[1] for o in store if o.startswith("tracking.experiment="))
    command = [sys.executable, "-m", "pipeline.run", *overrides, *store]
    log_path = WORK_DIR / "runs" / f"{tag}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run(command, env=child_env(), cwd=REPO, stdout=log, stderr=log)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"pipeline.run failed ({done.returncode}); see {log_path}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stages = last_run_times(experiment)
    return {"wall_s": wall, "cpu_s": cpu, "stages_s": stages, "log": str(log_path)}


def last_run_times(experiment_name: str) -> dict[str, float]:
    """The time/* metrics of the newest run of the MLflow experiment ``experiment_name``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{WORK_DIR}/runs/mlflow.db")
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return {}
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    if not runs:
        return {}
    metrics = runs[0].data.metrics
    return {
        k.removeprefix("time/").removesuffix("_s"): v
        for k, v in metrics.items()
        if k.startswith("time/")
    }


# ---- 3. the instrumented run (in a child process) -------------------------------------------------
class Timers:
    """Seconds and call counts per category."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.active: list[str] = []

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self.active.append(name)
        try:
            yield
        finally:
            self.active.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, owner: Any, attribute: str, name: str, first: str | None = None) -> None:
        """Replace ``owner.attribute`` (a function or method) by a timed version.

        With ``first``, the first call of all those wrapped with that name is timed as ``first``
        (lazy imports, JIT caches and worker start-ups land there).
        """
        original = getattr(owner, attribute)
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            label = first if first and first not in timers.calls else name
            with timers.time(label):
                return original(*args, **kwargs)

        timed.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(owner, attribute, timed)


def instrument(timers: Timers) -> dict[str, Any]:
    """Wrap lossbench's functions with timers; returns handles the run fills in."""
    import lightning as L

    import lossbench.evaluation
    import lossbench.experiment.outcome
    import lossbench.experiment.tracking
    import lossbench.retrieval.encode
    import lossbench.retrieval.search
    import lossbench.training.checkpoints
    import lossbench.training.trainer
    import lossbench.training.validation
    from lossbench.retrieval.dense import ExactDenseIndex
    from lossbench.retrieval.sparse import SparseIndex

    handles: dict[str, Any] = {"encode_passes": []}

    # MLflow: opening the run (connect, experiment, create), logging, closing
    for method in ("log_params", "log_metrics", "log_artifact", "set_tags", "log_text"):
        timers.wrap(lossbench.experiment.tracking.TrackedRun, method, "mlflow_log")
    original_tracked_run = lossbench.experiment.tracking.tracked_run

    @contextlib.contextmanager
    def tracked_run(*args: Any, **kwargs: Any) -> Iterator[Any]:
        manager = original_tracked_run(*args, **kwargs)
        with timers.time("mlflow_open_run"):
            tracked = manager.__enter__()
        try:
            yield tracked
        except BaseException:
            if not manager.__exit__(*sys.exc_info()):
                raise
        else:
            with timers.time("mlflow_close_run"):
                manager.__exit__(None, None, None)

    lossbench.experiment.tracking.tracked_run = tracked_run  # type: ignore[assignment]
    timers.wrap(lossbench.experiment.outcome, "previous_objective", "mlflow_previous_run_lookup")
    timers.wrap(lossbench.experiment.tracking, "git_commit", "git_commit")

    # encoding (tokenization included), search, ranx, validation
    original_iter = lossbench.retrieval.encode.iter_encoded

    def iter_encoded(
        module: Any, samples: Any, kind: str, *args: Any, **kwargs: Any
    ) -> Iterator[Any]:
        generator = original_iter(module, samples, kind, *args, **kwargs)
        durations: list[
            float
        ] = []  # every next(): the first starts the workers, the last stops them
        handles["encode_passes"].append((kind, durations))
        while True:
            start = time.perf_counter()
            try:
                item = next(generator)
            except StopIteration:
                return
            finally:
                durations.append(time.perf_counter() - start)
            yield item

    lossbench.retrieval.search.iter_encoded = iter_encoded  # type: ignore[assignment]  # queries
    lossbench.retrieval.encode.iter_encoded = iter_encoded  # type: ignore[assignment]  # corpus
    for cls in (ExactDenseIndex, SparseIndex):
        timers.wrap(cls, "search", "index_search")
        timers.wrap(cls, "add", "index_add")
    for owner in (lossbench.evaluation, lossbench.training.validation):
        timers.wrap(owner, "evaluate_run", "ranx_evaluate", first="ranx_evaluate_first")
    timers.wrap(lossbench.training.validation.RetrievalValidation, "validate", "validation_total")
    timers.wrap(lossbench.training.checkpoints.StepCheckpoint, "save", "checkpoint_save")

    # training steps vs what Lightning does between them
    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.ends: list[float] = []
            self.fit_start = self.fit_end = 0.0

        def on_fit_start(self, *args: Any) -> None:
            self.fit_start = time.perf_counter()

        def on_train_batch_start(self, *args: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, *args: Any) -> None:
            self.ends.append(time.perf_counter())

        def on_fit_end(self, *args: Any) -> None:
            self.fit_end = time.perf_counter()

    clock = StepClock()
    handles["clock"] = clock
    base_trainer = lossbench.training.trainer.LightningIRTrainer

    class ClockedTrainer(base_trainer):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, callbacks: Any = None, **kwargs: Any) -> None:
            with timers.time("trainer_init"):
                super().__init__(*args, callbacks=[clock, *(callbacks or [])], **kwargs)

        def fit(self, *args: Any, **kwargs: Any) -> Any:
            with timers.time("trainer_fit_total"):
                return super().fit(*args, **kwargs)

    lossbench.training.trainer.LightningIRTrainer = ClockedTrainer  # type: ignore[misc]

    return handles


def run_child(overrides: list[str], out: Path) -> None:
    """Compose the config, instrument, run, write the breakdown JSON to ``out``."""
    timers = Timers()
    with timers.time("import_pipeline_run"):
        import pipeline.run  # noqa: F401
        from lossbench.experiment.jobs import CONF_DIR
        from lossbench.experiment.stages import Experiment
    with timers.time("import_run_dependencies"):  # what run() imports on its first line
        import lightning  # noqa: F401
        from hydra.utils import instantiate  # noqa: F401

        import lossbench.data  # noqa: F401
        import lossbench.experiment.checks  # noqa: F401
        import lossbench.experiment.sweeps  # noqa: F401
        import lossbench.experiment.tracking  # noqa: F401
        import lossbench.models  # noqa: F401
        import lossbench.retrieval  # noqa: F401
        import lossbench.training.trainer  # noqa: F401
        import lossbench.training.validation  # noqa: F401
    with timers.time("config_compose"):
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    handles = instrument(timers)
    experiment = Experiment(cfg)  # its stopwatch times the stages (its time/* metrics)
    with timers.time("pipeline_run_total"):
        experiment.run()
    clock = handles["clock"]
    for kind, durations in handles["encode_passes"]:
        # a pass: first batch (starts the DataLoader's workers), batches, final next() (stops them).
        # The typical batch (median) counts as work; the first batch's excess as start-up. A
        # one-batch pass (the queries) cannot be split: all of it counts as work.
        batches = durations[:-1]
        seconds = timers.seconds
        if len(batches) > 1:
            typical = statistics.median(batches[1:])
            work, startup = sum(batches[1:]) + typical, batches[0] - typical
        else:
            work, startup = sum(batches), 0.0
        for name, value in (
            (f"encode_{kind}s", work),
            (f"encode_{kind}s_startup", startup),
            (f"encode_{kind}s_teardown", durations[-1]),
        ):
            seconds[name] = seconds.get(name, 0.0) + value
    steps = [end - start for start, end in zip(clock.starts, clock.ends, strict=False)]
    payload = {
        "encode_passes": handles["encode_passes"],
        "process_s": time.perf_counter() - T0,
        "seconds": timers.seconds,
        "calls": timers.calls,
        "steps": len(steps),
        "first_step_s": steps[0] if steps else 0.0,
        "steps_total_s": sum(steps),
        "steps_median_s": statistics.median(steps) if steps else 0.0,
        "first_batch_wait_s": (clock.starts[0] - clock.fit_start) if clock.starts else 0.0,
        "stages_s": dict(experiment.watch.seconds),
    }
    out.write_text(json.dumps(payload, indent=2))


def time_instrumented(overrides: list[str], tag: str) -> dict[str, Any]:
    out = WORK_DIR / "runs" / f"{tag}.json"
    log_path = WORK_DIR / "runs" / f"{tag}.log"
    command = [
        sys.executable,
        "-m",
        "bench.run_breakdown",
        "--child",
        str(out),
        "--",
        *overrides,
        *store_overrides(tag),
    ]
    start = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run(command, env=child_env(), cwd=REPO, stdout=log, stderr=log)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"instrumented run failed ({done.returncode}); see {log_path}")
    result = json.loads(out.read_text())
    result["wall_s"] = wall
    return result


STAGES = ("prepare", "data", "model", "base_eval", "train", "index", "search", "evaluate")
"""The Experiment's timed stages (``time/<stage>_s``), in run order; ``recall_vs_exact`` too when
an approximate index runs it. ``checkpoint`` is part of ``train``."""


def breakdown_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Disjoint parts that add up to the instrumented process's wall time (seen from outside):
    start-up, imports, config, each of the Experiment's stages as its own stopwatch timed it, and
    what no stage covers (the previous-run lookup, opening and closing the MLflow run, logging the
    config, the report's files and summary)."""
    stages: dict[str, float] = result["stages_s"]
    seconds: dict[str, float] = result["seconds"]
    total = result["wall_s"]
    rows = [
        ("interpreter start-up and exit", total - result["process_s"]),
        ("imports (pipeline.run, what the stages import)", get(seconds, *IMPORT_TIMERS)),
        ("config: Hydra compose", get(seconds, "config_compose")),
    ]
    names = [*STAGES, *(s for s in stages if s not in STAGES and s != "checkpoint")]
    rows += [(f"stage {name} (time/{name}_s)", stages.get(name, 0.0)) for name in names]
    rows.append(("outside the stages (skip, track, report)", 0.0))
    rows[-1] = (rows[-1][0], total - sum(value for _, value in rows))
    return [{"part": name, "seconds": value, "share": value / total} for name, value in rows]


IMPORT_TIMERS = ("import_pipeline_run", "import_run_dependencies")


def get(seconds: dict[str, float], *names: str) -> float:
    return sum(seconds.get(name, 0.0) for name in names)


def work_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The work the issue exempts (steps, encoding batches, search, checkpoints), the overhead left
    (wall minus that work), and where parts of the overhead went (sub-stage timers)."""
    seconds: dict[str, float] = result["seconds"]
    total = result["wall_s"]
    steps = result["steps_total_s"]
    first_excess = max(result["first_step_s"] - result["steps_median_s"], 0.0)
    encoding = get(seconds, "encode_docs", "encode_querys")
    search = get(seconds, "index_search", "index_add")
    checkpoints = get(seconds, "checkpoint_save")
    work = steps - first_excess + encoding + search + checkpoints
    rows = [
        (f"work: training steps ({result['steps']}, median x count)", steps - first_excess),
        ("work: encoding batches (tokenize + forward)", encoding),
        ("work: search (index add + top-k)", search),
        ("work: checkpoints (saving)", checkpoints),
        ("overhead = wall - work", total - work),
        ("- imports", get(seconds, *IMPORT_TIMERS)),
        ("- training: first step's excess over the median", first_excess),
        (
            "- encoding: first batch's excess per pass",
            get(seconds, "encode_docs_startup", "encode_querys_startup"),
        ),
        (
            "- encoding: end of each pass",
            get(seconds, "encode_docs_teardown", "encode_querys_teardown"),
        ),
        (
            "- metrics: evaluate_run (all calls)",
            get(seconds, "ranx_evaluate_first", "ranx_evaluate"),
        ),
        (
            "- MLflow: lookup, open, log, close",
            get(
                seconds,
                "mlflow_previous_run_lookup",
                "mlflow_open_run",
                "mlflow_log",
                "mlflow_close_run",
            ),
        ),
        (
            "- Lightning: Trainer() and the rest of fit",
            get(seconds, "trainer_init")
            + get(seconds, "trainer_fit_total")
            - steps
            - get(seconds, "validation_total")
            - checkpoints,
        ),
    ]
    return [{"part": name, "seconds": value, "share": value / total} for name, value in rows]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"adds {' '.join(QUICK_OVERRIDES)}")
    parser.add_argument(
        "--runs", type=int, default=2, help="plain pipeline.run runs (the first warms caches)"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child is not None:
        from lossbench.experiment.quick_exit import quick_exit

        run_child(args.overrides, args.child)
        quick_exit(0)  # as ``python -m pipeline.run`` ends
    from bench.common import table
    from bench.record import write_result

    overrides = [*(QUICK_OVERRIDES if args.quick else []), *args.overrides]
    label = " ".join(overrides) or "(the embedded default)"
    print(f"pipeline.run {label}; writing under {WORK_DIR}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    print("imports ...", flush=True)
    imports = time_imports()
    plain = []
    for number in range(1, args.runs + 1):
        print(f"pipeline.run, run {number} of {args.runs} ...", flush=True)
        plain.append(time_pipeline_run(overrides, f"plain{number}"))
    print("pipeline.run, instrumented ...", flush=True)
    instrumented = time_instrumented(overrides, "instrumented")
    import_rows = [
        {"import": "python -c pass", "seconds": imports["interpreter_s"]},
        *({"import": name, "seconds": value} for name, value in imports["imports_s"].items()),
        {"import": "total", "seconds": imports["imports_total_s"]},
    ]
    print()
    print(table(import_rows, ["import", "seconds"]))
    print()
    print(table(stage_rows(plain, instrumented), ["run", "wall_s", "cpu_s", *STAGES]))
    print()
    print(table(breakdown_rows(instrumented), ["part", "seconds", "share"]))
    print()
    print(table(work_rows(instrumented), ["part", "seconds", "share"]))
    print("goals: make run <= 180 s on 2 cores; overhead <= 10 s once caches are warm")
    path = write_result(
        "run_breakdown_cpu",
        {
            "overrides": overrides,
            "imports": imports,
            "plain_runs": plain,
            "instrumented": instrumented,
            "goal": {"max_wall_s": 180, "max_overhead_s": 10},
        },
        quick=args.quick,
    )
    print(f"wrote {path}")


def stage_rows(plain: list[dict[str, Any]], instrumented: dict[str, Any]) -> list[dict[str, Any]]:
    """Wall, CPU and stage seconds of each run (plain: its time/* metrics from MLflow)."""
    rows = [
        {"run": f"plain {i + 1}", "wall_s": run["wall_s"], "cpu_s": run["cpu_s"], **run["stages_s"]}
        for i, run in enumerate(plain)
    ]
    rows.append(
        {"run": "instrumented", "wall_s": instrumented["wall_s"], **instrumented["stages_s"]}
    )
    return rows


if __name__ == "__main__":
    main()
