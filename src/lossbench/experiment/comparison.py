"""Compare finished runs: collect them from MLflow, compare the seed-aggregated systems, write the
report and plots, log the comparison as a run.

A *system* is a set of runs that differ only by seed and cross-validation fold (same ``system_hash``
tag: the same config and code), labelled by its loss (:mod:`lossbench.experiment.pooling`; runs of
different code are refused unless ``allow_mixed_code``). The means, standard deviations and paired
significance tests over (seed, query) pairs are :mod:`lossbench.experiment.significance`'s.

Folds: in-domain, each fold's model is tested on its own fifth of the queries, so a seed's run is the
union of its folds' runs, evaluated on the union of their qrels (:func:`download_runs`): one table
over every query, each tested by the model trained without it. On another collection every fold's
model is tested on the same queries, so there the runs are (seed, fold) instances
(:func:`download_instances`), and the mean and std are over those models.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lossbench.data.collection import Qrels, ScoredRun
from lossbench.data.sources.formats import read_qrels, read_trec_run
from lossbench.evaluation import mlflow_metric_name
from lossbench.experiment.config_checks import ConfigurationError
from lossbench.experiment.pooling import (
    Fold,
    SystemRuns,
    describe_code_versions,
    group_systems,
    pooled_runs,
    union_folds,
)
from lossbench.experiment.reference import ReferenceSource, split_references, starting_runs
from lossbench.experiment.significance import (  # noqa: F401 (Comparison, confidence_halfwidth: re-exported)
    Comparison,
    Instance,
    PooledFolds,
    compare_systems,
    confidence_halfwidth,
)
from lossbench.experiment.ui import FIRST_STAGE_RUN_FILE, LEGACY_FILES, QRELS_FILE, RUN_FILE

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def resolve_runs(client: Any, sweep: str) -> tuple[list[Any], str, str | None]:
    """The runs to compare: the children of a parent run id, or every run of an experiment by name.

    Returns the runs, their experiment id and the parent run id (None for an experiment).
    """
    if RUN_ID.match(sweep):
        parent = client.get_run(sweep)
        experiment_id = parent.info.experiment_id
        runs = client.search_runs(
            [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep}'"
        )
        return jobs_only(runs), experiment_id, sweep
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        names = ", ".join(sorted(e.name for e in client.search_experiments()))
        raise ConfigurationError(
            f"sweep={sweep!r} is neither a run id nor an experiment; experiments: {names}"
        )
    runs = client.search_runs([experiment.experiment_id])
    return jobs_only(runs), experiment.experiment_id, None


def jobs_only(runs: Sequence[Any]) -> list[Any]:
    """The runs of jobs: no sweep parents, no comparison runs."""
    return [r for r in runs if r.data.tags.get("lossbench_role") not in ("sweep", "comparison")]


# ---- collecting from MLflow --------------------------------------------------------------------
def download_run_file(client: Any, run_id: str, name: str, folder: Path) -> Path:
    """A run's file ``name``, or its earlier name (:data:`~lossbench.experiment.ui.LEGACY_FILES`)
    for runs logged before."""
    logged = {artifact.path for artifact in client.list_artifacts(run_id)}
    if name not in logged and LEGACY_FILES.get(name) in logged:
        name = LEGACY_FILES[name]
    return Path(client.download_artifacts(run_id, name, str(folder)))


def download_run_and_qrels(
    client: Any, mlflow_run: Any, folder: Path, prefix: str = ""
) -> tuple[ScoredRun, Qrels]:
    """A run's test run file and the qrels it was evaluated on (in the artifact folder ``prefix``)."""
    run_id = mlflow_run.info.run_id
    target = folder / run_id
    target.mkdir(parents=True, exist_ok=True)
    run = read_trec_run(download_run_file(client, run_id, prefix + RUN_FILE, target))
    return run, read_qrels(download_run_file(client, run_id, prefix + QRELS_FILE, target))


def same_qrels(first: Qrels | None, these: Qrels, mismatch: str) -> Qrels:
    """The qrels every compared run must share: ``these`` when they are the first, else checked
    equal to the ``first`` (``ValueError(mismatch)`` otherwise)."""
    if first is not None and these != first:
        raise ValueError(mismatch)
    return these


def checked(qrels: Qrels | None) -> Qrels:
    """The shared qrels; None means that no run was read."""
    if qrels is None:
        raise ValueError("no finished run to compare")
    return qrels


def download_runs(
    client: Any, systems: dict[str, SystemRuns], folder: Path, prefix: str = ""
) -> tuple[dict[str, dict[int, ScoredRun]], Qrels]:
    """Each system's run per seed and the test qrels: with folds, the union of the seed's fold runs
    and of their qrels (:func:`~lossbench.experiment.pooling.union_folds`). The (pooled) qrels are
    checked to be the same for every (system, seed); ``prefix``: the artifact folder of the files."""
    runs: dict[str, dict[int, ScoredRun]] = {}
    qrels: Qrels | None = None
    for label, system in systems.items():
        runs[label] = {}
        for seed, by_fold in system.runs.items():
            parts = {
                fold: download_run_and_qrels(client, mlflow_run, folder, prefix)
                for fold, mlflow_run in by_fold.items()
            }
            runs[label][seed], these = union_folds(parts, f"{label} seed {seed}")
            ids = ", ".join(r.info.run_id for r in by_fold.values())
            qrels = same_qrels(
                qrels,
                these,
                f"{label} seed {seed} (run {ids}) was evaluated on other qrels: compare runs "
                "of one dataset and one test split (the same split settings and folds)",
            )
    return runs, checked(qrels)


def instance_key(seed: int, fold: Fold) -> Instance:
    """How a run is paired on a collection every fold was tested on: its seed, or (seed, fold)."""
    return seed if fold is None else (seed, fold)


def download_instances(
    client: Any, systems: dict[str, SystemRuns], folder: Path, prefix: str
) -> tuple[dict[str, dict[Instance, ScoredRun]], Qrels]:
    """Each system's run per (seed, fold) on a collection that every run was tested on whole
    (``prefix``: its artifact folder), and its qrels, checked to be the same for every run."""
    runs: dict[str, dict[Instance, ScoredRun]] = {}
    qrels: Qrels | None = None
    for label, system in systems.items():
        runs[label] = {}
        for seed, by_fold in system.runs.items():
            for fold, mlflow_run in by_fold.items():
                run, these = download_run_and_qrels(client, mlflow_run, folder, prefix)
                runs[label][instance_key(seed, fold)] = run
                qrels = same_qrels(
                    qrels,
                    these,
                    f"run {mlflow_run.info.run_id} was evaluated on other qrels of "
                    f"{prefix.rstrip('/')}: compare runs of one collection config",
                )
    return runs, checked(qrels)


def first_stage_references(
    client: Any, systems: dict[str, SystemRuns], folder: Path
) -> dict[str, dict[int, ScoredRun]]:
    """The first stages that re-rankers re-ranked (tag ``first_stage``), as reference systems
    labelled ``first stage: <tag>``: the run of each (:data:`~lossbench.experiment.ui.FIRST_STAGE_RUN_FILE`),
    the same for every seed; with folds, the union of one run's file per fold."""
    seeds = sorted({seed for system in systems.values() for seed in system.runs})
    references: dict[str, dict[int, ScoredRun]] = {}
    for system in systems.values():
        tag = system.all_runs()[0].data.tags.get("first_stage")
        label = f"first stage: {tag}"
        if not tag or label in references:
            continue
        parts: dict[Fold, tuple[ScoredRun, Qrels]] = {}
        for fold, mlflow_run in system.first_seed().items():
            target = folder / f"first_stage-{mlflow_run.info.run_id}"
            target.mkdir(parents=True, exist_ok=True)
            path = client.download_artifacts(
                mlflow_run.info.run_id, FIRST_STAGE_RUN_FILE, str(target)
            )
            parts[fold] = (read_trec_run(Path(path)), {})
        run, _ = union_folds(parts, label)
        references[label] = dict.fromkeys(seeds, run)
    return references


def shared_collections(client: Any, systems: dict[str, SystemRuns]) -> list[str]:
    """The labels of the other test collections (``eval.collections``) every compared run has."""
    from lossbench.experiment.zero_shot import COLLECTIONS_FOLDER

    shared: set[str] | None = None
    for mlflow_run in pooled_runs(systems):
        listed = client.list_artifacts(mlflow_run.info.run_id, COLLECTIONS_FOLDER)
        labels = {Path(a.path).name for a in listed if a.is_dir}
        shared = labels if shared is None else shared & labels
    return sorted(shared or ())


def compare_collections(
    client: Any, systems: dict[str, SystemRuns], folder: Path, *args: Any
) -> dict[str, Comparison]:
    """:func:`compare_systems` (``args``: metrics, baseline, test, correction, max_p) on each
    collection every run was also tested on, by label."""
    from lossbench.experiment.zero_shot import COLLECTIONS_FOLDER

    compared = {}
    for label in shared_collections(client, systems):
        prefix = f"{COLLECTIONS_FOLDER}/{label}/"
        run_files, qrels = download_instances(client, systems, folder / label, prefix)
        compared[label] = compare_systems(run_files, qrels, *args)
    return compared


def metric_curves(
    client: Any, systems: dict[str, SystemRuns], key: str
) -> dict[str, dict[int, float]]:
    """Per system: step -> mean over its runs of the metric ``key`` (e.g. ``val/ndcg_at_10``):
    over seeds, and with folds over every (seed, fold) run (each fold validates on its own dev
    split, so the mean is of curves on different queries)."""
    curves: dict[str, dict[int, float]] = {}
    for label, system in systems.items():
        by_step: dict[int, list[float]] = defaultdict(list)
        for mlflow_run in system.all_runs():
            for point in client.get_metric_history(mlflow_run.info.run_id, key):
                by_step[point.step].append(point.value)
        curves[label] = {step: sum(v) / len(v) for step, v in sorted(by_step.items())}
    return curves


def choose_baseline(systems: Sequence[str], baseline: str | None) -> str:
    """``baseline`` (the compare config's, ``ranknet`` unless told otherwise) when it is one of the
    systems, else the first system alphabetically, with a note saying so."""
    if baseline in systems:
        return str(baseline)
    chosen = sorted(systems)[0]
    if baseline:
        print(
            f"baseline={baseline} is not among the systems; comparing against {chosen}", flush=True
        )
    return chosen


def run_comparison(
    client: Any,
    sweep: str,
    metrics: Sequence[str],
    output: Path,
    baseline: str | None = None,
    stat_test: str = "student",
    correction: str = "holm",
    max_p: float = 0.05,
    allow_mixed_code: bool = False,
    reference: Any = None,
    cache: Path | None = None,
) -> tuple[Comparison, list[Path], str | None, str]:
    """Collect, compare, write the report and plots under ``output``. Returns the comparison, the files
    written, the sweep's parent run id (``sweep`` itself, or the parent every compared run shares;
    None when they share none) and the experiment id.

    Runs of one system made by different code are refused unless ``allow_mixed_code``
    (:func:`~lossbench.experiment.pooling.group_systems`). ``reference`` (the compare config's
    ``reference`` node, None: none) and ``cache``: the reference rows
    (:mod:`lossbench.experiment.reference`), which reference runs among the runs give first."""
    from lossbench.experiment.sweep_jobs import job_outcomes, read_expected

    runs, experiment_id, parent = resolve_runs(client, sweep)
    reference_runs, compared = split_references(runs)
    systems, excluded = group_systems(compared, allow_mixed_code)
    parent = parent or common_parent(pooled_runs(systems))
    outcomes = job_outcomes(
        sorted(runs, key=lambda r: r.info.start_time or 0),
        read_expected(client, parent) if parent else None,
    )
    if not systems:
        raise ValueError(
            f"sweep={sweep!r} has no FINISHED run to compare"
            + (f"; {excluded}" if excluded else "")
        )
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        run_files, qrels = download_runs(client, systems, Path(scratch))
        run_files.update(first_stage_references(client, systems, Path(scratch)))
        chosen = choose_baseline(list(systems), baseline)
        comparison = compare_systems(
            run_files, qrels, metrics, chosen, stat_test, correction, max_p, excluded
        )
        comparison.pooled_folds = pooled_folds(systems, len(qrels))
        comparison_args = (metrics, chosen, stat_test, correction, max_p)
        comparison.collections = compare_collections(
            client, systems, Path(scratch), *comparison_args
        )
        sample = next(iter(systems.values())).first_seed()
        source = ReferenceSource(client, reference_runs, sample, reference, cache, Path(scratch))
        source.starting_runs = starting_runs(systems)
        source.add_to(comparison)
    comparison.code_versions = describe_code_versions(pooled_runs(systems))
    comparison.failed_jobs, comparison.missing_jobs = outcomes.failed, outcomes.missing
    files = write_report(client, systems, comparison, output, sweep)
    return comparison, files, parent, experiment_id


def pooled_folds(systems: dict[str, SystemRuns], queries: int) -> PooledFolds | None:
    """What the in-domain table pooled, when the runs have more than one fold (None otherwise);
    ``queries``: the pooled test queries."""
    folds = next(iter(systems.values())).folds()
    if len(folds) < 2:
        return None
    dataset = str(pooled_runs(systems)[0].data.tags.get("dataset", "the dataset"))
    return PooledFolds([f for f in folds if f is not None], dataset, queries)


def write_report(
    client: Any, systems: dict[str, SystemRuns], comparison: Comparison, output: Path, sweep: str
) -> list[Path]:
    """The report (Markdown and HTML) and its plots under ``output``: the metrics, and the
    validation nDCG@10 and training loss over steps, each a mean over seeds (and folds)."""
    from lossbench.experiment.report import write_html, write_markdown
    from lossbench.experiment.report_plots import plot_curves, plot_metric_bars

    over = "seeds and folds" if comparison.pooled_folds else "seeds"
    plots = [plot_metric_bars(comparison, output / "metrics.png")]
    validation = metric_curves(client, systems, mlflow_metric_name("ndcg@10", "val"))
    plots.append(
        plot_curves(
            validation,
            f"validation nDCG@10 (dev), mean over {over}",
            "nDCG@10",
            output / "val_ndcg.png",
        )
    )
    training = metric_curves(client, systems, "train/loss")
    plots.append(
        plot_curves(
            training,
            f"training loss, mean over {over}",
            "loss",
            output / "train_loss.png",
            split_scales=True,
        )
    )
    return [
        write_markdown(comparison, plots, output / "report.md", sweep),
        write_html(comparison, plots, output / "report.html", sweep),
        *plots,
    ]


def common_parent(runs: Sequence[Any]) -> str | None:
    """The parent run (a sweep) that every one of ``runs`` is nested under, if they share one."""
    parents = {run.data.tags.get("mlflow.parentRunId") for run in runs}
    return parents.pop() if len(parents) == 1 else None


def log_comparison(
    client: Any,
    experiment_id: str,
    sweep: str,
    parent: str | None,
    files: Sequence[Path],
    comparison: Comparison,
) -> str:
    """Log a comparison run: its results as params and metrics
    (:func:`~lossbench.experiment.report.comparison_metrics`), the table as its description, the
    report and plots as files; nested under the sweep's parent run. Returns its run id."""
    from mlflow.entities import Metric, Param, RunTag

    from lossbench.experiment.report import (
        comparison_metrics,
        comparison_name,
        comparison_params,
        markdown_table,
    )
    from lossbench.experiment.ui import DESCRIPTION_TAG

    tags = {"lossbench_role": "comparison", "compared": sweep}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(experiment_id, run_name=comparison_name(comparison), tags=tags)
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        params=[Param(k, v) for k, v in comparison_params(comparison, sweep).items()],
        tags=[RunTag(DESCRIPTION_TAG, markdown_table(comparison, sweep))],
    )
    metrics = [
        Metric(k, v, int(time.time() * 1000), 0) for k, v in comparison_metrics(comparison).items()
    ]
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return str(run_id)
