"""Compare finished runs: seed-aggregated systems, ranx significance tests, a report and plots.

A *system* is a set of runs that differ only by seed (same ``system_hash`` tag: the same config and
code), labelled by its loss (:mod:`lossbench.experiment.pooling`; runs of different code are refused
unless ``allow_mixed_code``).
Its runs over seeds ``s`` and test queries ``q`` are pooled into one ranx Run with query ids
``s:q`` (the qrels repeated per seed), so ranx ``compare`` pairs the same query of the same seed
across systems: a paired test over (seed, query) pairs. Means and standard deviations over seeds
come from each seed's own evaluation of its run file.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossbench.data.collection import Qrels, ScoredRun
from lossbench.data.sources.formats import read_qrels, read_trec_run
from lossbench.evaluation import evaluate_run, mlflow_metric_name
from lossbench.experiment.pooling import (
    SystemRuns,
    describe_code_versions,
    group_systems,
    pooled_runs,
)
from lossbench.experiment.reference import References, ReferenceSource, split_references
from lossbench.experiment.ui import FIRST_STAGE_RUN_FILE, LEGACY_FILES, QRELS_FILE, RUN_FILE

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
STAT_TESTS = ("student", "fisher", "tukey")
CORRECTIONS = ("holm", "bonferroni", "none")


@dataclass
class Comparison:
    """Everything the report shows."""

    metrics: list[str]
    baseline: str
    seeds: list[int]
    means: dict[str, dict[str, float]]  # system -> metric -> mean over seeds
    stds: dict[str, dict[str, float]]  # system -> metric -> std over seeds
    per_seed: dict[str, dict[str, list[float]]]  # system -> metric -> value per seed
    p_values: dict[str, dict[str, float]]  # system -> metric -> corrected p vs baseline
    win_tie_loss: dict[
        str, dict[str, tuple[int, int, int]]
    ]  # system -> metric -> (W, T, L) vs baseline
    excluded: list[str]  # runs left out, and why
    stat_test: str = "student"
    correction: str = "holm"
    max_p: float = 0.05
    code_versions: dict[str, str] = field(default_factory=dict)  # version -> runs, git commits
    failed_jobs: dict[str, str] = field(default_factory=dict)  # job -> error of its latest run
    missing_jobs: list[str] = field(default_factory=list)  # jobs of the sweep that never ran
    collections: dict[str, Comparison] = field(default_factory=dict)  # eval.collections, by label
    references: References = field(default_factory=References)  # BM25's row: reference.py

    @property
    def collection_means(self) -> dict[str, dict[str, float]]:
        """system -> metric -> the mean over :attr:`collections` of its mean over seeds (BEIR's
        average); empty without collections."""
        if not self.collections:
            return {}
        tables = list(self.collections.values())
        return {
            system: {m: sum(t.means[system][m] for t in tables) / len(tables) for m in self.metrics}
            for system in self.means
        }

    def significant(self, system: str, metric: str) -> bool:
        return self.p_values.get(system, {}).get(metric, 1.0) < self.max_p


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
        raise ValueError(
            f"sweep={sweep!r} is neither a run id nor an experiment; experiments: {names}"
        )
    runs = client.search_runs([experiment.experiment_id])
    return jobs_only(runs), experiment.experiment_id, None


def jobs_only(runs: Sequence[Any]) -> list[Any]:
    """The runs of jobs: no sweep parents, no comparison runs."""
    return [r for r in runs if r.data.tags.get("lossbench_role") not in ("sweep", "comparison")]


def pool_seeds(
    runs: dict[int, ScoredRun], qrels: Qrels, seeds: Sequence[int]
) -> tuple[ScoredRun, Qrels]:
    """One run and qrels over (seed, query) pairs: query ids become ``seed:qid``."""
    pooled_run = {f"{s}:{q}": docs for s in seeds for q, docs in runs[s].items() if q in qrels}
    pooled_qrels = {f"{s}:{q}": docs for s in seeds for q, docs in qrels.items()}
    return pooled_run, pooled_qrels


def adjust(p_values: dict[str, float], correction: str) -> dict[str, float]:
    """Correct a family of p-values for multiple testing (Bonferroni, or Holm's step-down)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction={correction!r}; valid: {', '.join(CORRECTIONS)}")
    count = len(p_values)
    if correction == "none" or count == 0:
        return dict(p_values)
    if correction == "bonferroni":
        return {k: min(1.0, p * count) for k, p in p_values.items()}
    adjusted, running = {}, 0.0
    for rank, (key, p) in enumerate(sorted(p_values.items(), key=lambda item: item[1])):
        running = max(running, min(1.0, (count - rank) * p))
        adjusted[key] = running
    return adjusted


def compare_systems(
    runs: dict[str, dict[int, ScoredRun]],
    qrels: Qrels,
    metrics: Sequence[str],
    baseline: str,
    stat_test: str = "student",
    correction: str = "holm",
    max_p: float = 0.05,
    excluded: Sequence[str] = (),
) -> Comparison:
    """Means/stds over seeds, and paired significance against ``baseline`` on the seeds all systems share."""
    if baseline not in runs:
        raise ValueError(
            f"baseline={baseline!r} is not among the systems: {', '.join(sorted(runs))}"
        )
    if stat_test not in STAT_TESTS:
        raise ValueError(f"stat_test={stat_test!r}; valid: {', '.join(STAT_TESTS)}")
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in runs.values())))
    if not seeds:
        raise ValueError("the systems share no seed, so no paired comparison is possible")
    means, stds, per_seed = {}, {}, {}
    for system, by_seed in runs.items():
        values = {
            m: [evaluate_run(qrels, by_seed[s], [m]).means[m] for s in seeds] for m in metrics
        }
        per_seed[system] = values
        means[system] = {m: sum(v) / len(v) for m, v in values.items()}
        stds[system] = {m: _std(v) for m, v in values.items()}
    p_values, win_tie_loss = paired_tests(
        runs, qrels, metrics, baseline, seeds, stat_test, correction, max_p
    )
    return Comparison(
        metrics=list(metrics),
        baseline=baseline,
        seeds=seeds,
        means=means,
        stds=stds,
        per_seed=per_seed,
        p_values=p_values,
        win_tie_loss=win_tie_loss,
        excluded=list(excluded),
        stat_test=stat_test,
        correction=correction,
        max_p=max_p,
    )


def paired_tests(
    runs: dict[str, dict[int, ScoredRun]],
    qrels: Qrels,
    metrics: Sequence[str],
    baseline: str,
    seeds: Sequence[int],
    stat_test: str,
    correction: str,
    max_p: float,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, tuple[int, int, int]]]]:
    """ranx's paired test of every system against ``baseline`` over (seed, query) pairs.

    Returns the corrected p-values (system -> metric -> p) and win/tie/loss counts.
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import compare

    names = [baseline, *sorted(s for s in runs if s != baseline)]
    pooled = {name: pool_seeds(runs[name], qrels, seeds) for name in names}
    ranx_runs = []
    for name in names:
        ranx_run = RanxRun(pooled[name][0])
        ranx_run.name = name
        ranx_runs.append(ranx_run)
    report = compare(
        RanxQrels(pooled[baseline][1]),
        ranx_runs,
        list(metrics),
        stat_test=stat_test,
        max_p=max_p,
        make_comparable=True,
    )
    raw: dict[str, dict[str, float]] = defaultdict(dict)
    win_tie_loss: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    for name in names[1:]:
        for metric in metrics:
            raw[metric][name] = float(report.comparisons[name, baseline][metric]["p_value"])
            counts = report.win_tie_loss[(name, baseline)][metric]
            win_tie_loss[name][metric] = (counts["W"], counts["T"], counts["L"])
    p_values: dict[str, dict[str, float]] = defaultdict(dict)
    for metric in metrics:
        for name, p in adjust(raw[metric], correction).items():
            p_values[name][metric] = p
    return dict(p_values), dict(win_tie_loss)


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def confidence_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the 95% t-interval of the mean over seeds (0 with a single seed)."""
    if len(values) < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.975, len(values) - 1) * _std(values) / math.sqrt(len(values)))


# ---- collecting from MLflow --------------------------------------------------------------------
def download_run_file(client: Any, run_id: str, name: str, folder: Path) -> Path:
    """A run's file ``name``, or its earlier name (:data:`~lossbench.experiment.ui.LEGACY_FILES`)
    for runs logged before."""
    logged = {artifact.path for artifact in client.list_artifacts(run_id)}
    if name not in logged and LEGACY_FILES.get(name) in logged:
        name = LEGACY_FILES[name]
    return Path(client.download_artifacts(run_id, name, str(folder)))


def download_runs(
    client: Any, systems: dict[str, SystemRuns], folder: Path, prefix: str = ""
) -> tuple[dict[str, dict[int, ScoredRun]], Qrels]:
    """Each system's run file per seed, and the test qrels (checked to be the same for every run);
    ``prefix``: the artifact folder they are in (another test collection's)."""
    runs: dict[str, dict[int, ScoredRun]] = {}
    qrels: Qrels | None = None
    for label, system in systems.items():
        runs[label] = {}
        for seed, mlflow_run in system.runs.items():
            target = folder / mlflow_run.info.run_id
            target.mkdir(parents=True, exist_ok=True)
            run_id = mlflow_run.info.run_id
            run_file = download_run_file(client, run_id, prefix + RUN_FILE, target)
            runs[label][seed] = read_trec_run(run_file)
            these = read_qrels(download_run_file(client, run_id, prefix + QRELS_FILE, target))
            if qrels is None:
                qrels = these
            elif these != qrels:
                raise ValueError(
                    f"run {run_id} was evaluated on other qrels: compare runs of one dataset"
                )
    if qrels is None:
        raise ValueError("no finished run to compare")
    return runs, qrels


def first_stage_references(
    client: Any, systems: dict[str, SystemRuns], folder: Path
) -> dict[str, dict[int, ScoredRun]]:
    """The first stages that re-rankers re-ranked (tag ``first_stage``), as reference systems
    labelled ``first stage: <tag>``: the run of each (:data:`~lossbench.experiment.ui.FIRST_STAGE_RUN_FILE`), the same for every seed."""
    seeds = sorted({seed for system in systems.values() for seed in system.runs})
    references: dict[str, dict[int, ScoredRun]] = {}
    for system in systems.values():
        for mlflow_run in system.runs.values():
            tag = mlflow_run.data.tags.get("first_stage")
            label = f"first stage: {tag}"
            if not tag or label in references:
                continue
            target = folder / f"first_stage-{mlflow_run.info.run_id}"
            target.mkdir(parents=True, exist_ok=True)
            path = client.download_artifacts(
                mlflow_run.info.run_id, FIRST_STAGE_RUN_FILE, str(target)
            )
            references[label] = dict.fromkeys(seeds, read_trec_run(Path(path)))
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
        run_files, qrels = download_runs(client, systems, folder / label, prefix)
        compared[label] = compare_systems(run_files, qrels, *args)
    return compared


def metric_curves(
    client: Any, systems: dict[str, SystemRuns], key: str
) -> dict[str, dict[int, float]]:
    """Per system: step -> mean over seeds of the metric ``key`` (e.g. ``val/ndcg_at_10``)."""
    curves: dict[str, dict[int, float]] = {}
    for label, system in systems.items():
        by_step: dict[int, list[float]] = defaultdict(list)
        for mlflow_run in system.runs.values():
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
    parent = parent or common_parent([r for s in systems.values() for r in s.runs.values()])
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
        comparison_args = (metrics, chosen, stat_test, correction, max_p)
        comparison.collections = compare_collections(
            client, systems, Path(scratch), *comparison_args
        )
        sample = pooled_runs(systems)[0]
        source = ReferenceSource(client, reference_runs, sample, reference, cache, Path(scratch))
        source.add_to(comparison)
    comparison.code_versions = describe_code_versions(pooled_runs(systems))
    comparison.failed_jobs, comparison.missing_jobs = outcomes.failed, outcomes.missing
    from lossbench.experiment.report import (
        plot_curves,
        plot_metric_bars,
        write_html,
        write_markdown,
    )

    plots = [plot_metric_bars(comparison, output / "metrics.png")]
    validation = metric_curves(client, systems, mlflow_metric_name("ndcg@10", "val"))
    plots.append(
        plot_curves(
            validation,
            "validation nDCG@10 (dev), mean over seeds",
            "nDCG@10",
            output / "val_ndcg.png",
        )
    )
    training = metric_curves(client, systems, "train/loss")
    plots.append(
        plot_curves(
            training,
            "training loss, mean over seeds",
            "loss",
            output / "train_loss.png",
            split_scales=True,
        )
    )
    files = [
        write_markdown(comparison, plots, output / "report.md", sweep),
        write_html(comparison, plots, output / "report.html", sweep),
        *plots,
    ]
    return comparison, files, parent, experiment_id


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
