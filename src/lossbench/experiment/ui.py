"""What the MLflow UI shows besides params and metrics, all with MLflow's own features.

* Descriptions: the ``mlflow.note.content`` tag (Markdown) of a run or an experiment, shown on its
  page: what was trained on what, and the result against the untrained model.
* Source, version and user: the ``mlflow.source.*`` and ``mlflow.user`` tags fill the runs table's
  own columns.
* The evaluation data as an MLflow dataset input (``log_inputs``): the Dataset column and the run's
  Datasets box.
* Per-query results as an MLflow table (``log_table``): the Evaluation view compares runs query by
  query.
* The link that opens an experiment's runs table in the model-training view: MLflow 3 opens
  experiments in its GenAI view unless the URL says ``workflowType=machine_learning`` (and marks an
  experiment's kind with the ``mlflow.experimentKind`` tag); ``make ui`` prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

DESCRIPTION_TAG = "mlflow.note.content"
"""The tag MLflow shows as a run's or an experiment's description (Markdown)."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
"""The experiment kind MLflow opens on its runs table (instead of the GenAI traces overview)."""
RUNS_VIEW = "workflowType=machine_learning"
"""The URL parameter that puts MLflow 3's UI in its model-training view."""
RUN_FILE = "test.run.txt"
"""A run's ranking of the test queries (TREC format); ``.txt`` so that MLflow previews it."""
QRELS_FILE = "test.qrels.txt"
"""The test qrels a run was evaluated on (TREC format)."""
FIRST_STAGE_RUN_FILE = "first_stage.run.txt"
"""A re-ranker's first-stage run on the test queries (TREC format), a reference row of the report."""
BASE_RUN_FILE = "test_base.run.txt"
"""The untrained model's ranking of the test queries (TREC format): what ``test/base_*`` evaluated."""
LEGACY_FILES = {RUN_FILE: "test.run", QRELS_FILE: "test.qrels"}
"""The names runs logged before lossbench named them for MLflow's preview."""

EXPERIMENT_DESCRIPTION = """\
lossbench runs: one run per job, named `<loss> · seed <n>` (plus what else its sweep varies); a sweep
is a parent run with its jobs nested under it, and `pipeline.compare` adds a comparison run under the
sweep with significance tests (in its params, its metrics and its HTML report).

Compare losses here:

- **Runs table**: search `params.loss LIKE '%'` (the jobs only), then *Group by* → param `loss`
  pools each loss's seeds; `test/ndcg_at_10` is the result, `test/base_ndcg_at_10` the untrained
  model's.
- **Chart view**: with that grouping, one bar or curve per loss; type `test/` in the chart search
  for the test metrics, `ndcg` for nDCG@10 trained, untrained and on the dev split.
- **Box plot**: select the runs, *Compare*, *Box Plot*, X axis param `loss`, Y axis
  `test/ndcg_at_10`.
- **Evaluation view** (the third view button): the table `per_query.json`, grouped by `query_id`,
  compares the runs query by query (pick the metric under *Compare*).
"""


def runs_table_url(base_url: str, experiment_id: str | None) -> str:
    """The link that opens an experiment's runs table (or the experiment list) in the model-training view."""
    base = base_url.rstrip("/")
    if experiment_id is None:
        return f"{base}/#/experiments?{RUNS_VIEW}"
    return f"{base}/#/experiments/{experiment_id}/runs?{RUNS_VIEW}"


def describe_experiment(client: Any, experiment_id: str) -> None:
    """Give an experiment lossbench's description and the model-training kind, unless it has its own."""
    tags = client.get_experiment(experiment_id).tags
    if DESCRIPTION_TAG not in tags:
        client.set_experiment_tag(experiment_id, DESCRIPTION_TAG, EXPERIMENT_DESCRIPTION)
    if EXPERIMENT_KIND_TAG not in tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)


def source_tags(entry_point: str, commit: str) -> dict[str, str]:
    """The tags behind the runs table's Source, Version and User columns.

    ``commit`` is :func:`~lossbench.experiment.tracking.git_commit`'s answer; MLflow's version column
    takes a bare commit (the ``git_commit`` tag keeps ``-dirty``).
    """
    tags = {"mlflow.source.name": entry_point, "mlflow.source.type": "LOCAL"}
    if commit and commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    with contextlib.suppress(KeyError, OSError):  # no user name in some containers
        tags["mlflow.user"] = getpass.getuser()
    return tags


def _training_length(trainer: Mapping[str, Any]) -> str:
    steps = trainer.get("max_steps")
    if steps is not None and int(steps) > 0:
        return f"{steps} steps"
    return f"{trainer.get('max_epochs') or 1} epoch(s)"


def run_description(cfg: DictConfig, counts: Mapping[str, int]) -> str:
    """What a run trains on what (Markdown), before any result exists."""
    target = str(cfg.loss.function.get("_target_", "")).rsplit(".", 1)[-1]
    regularizer = (
        "" if cfg.regularizer.name == "none" else f" + regularizer `{cfg.regularizer.name}`"
    )
    splits = " / ".join(f"{counts.get(f'{s}_queries', 0)} {s}" for s in ("train", "dev", "test"))
    return (
        f"**{cfg.loss.name}** (`{target}`){regularizer} on **{cfg.dataset.name}** "
        f"({counts.get('docs', 0)} docs; {splits} queries), model `{cfg.model.name}`, "
        f"{_training_length(cfg.trainer)}, seed {cfg.seed}."
    )


def result_description(means: Mapping[str, float], base: Mapping[str, float]) -> str:
    """The test metrics against the untrained model, as a Markdown table (one value column when
    there is no untrained evaluation: a reference system, an evaluation-only run)."""
    if not base:
        rows = [f"| {metric} | {value:.4f} |" for metric, value in means.items()]
        return "\n".join(["| test metric | value |", "| --- | ---: |", *rows])
    lines = ["| test metric | trained | untrained | change |", "| --- | ---: | ---: | ---: |"]
    for metric, value in means.items():
        if metric in base:
            lines.append(
                f"| {metric} | {value:.4f} | {base[metric]:.4f} | {value - base[metric]:+.4f} |"
            )
        else:
            lines.append(f"| {metric} | {value:.4f} | - | - |")
    return "\n".join(lines)


def evaluation_dataset(collection: Any, split: str) -> Any:
    """The split's judged queries as an MLflow dataset (name, digest of the content, source, profile).

    One row per query: id, text, judged and relevant docs; MLflow hashes the rows for the digest, so
    runs evaluated on the same queries show the same dataset.
    """
    import pandas as pd
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.pandas_dataset import from_pandas

    qrels = collection.qrels.get(split, {})
    queries = collection.split_queries(split)
    frame = pd.DataFrame(
        {
            "query_id": list(queries),
            "query": list(queries.values()),
            "judged_docs": [len(qrels[q]) for q in queries],
            "relevant_docs": [sum(g > 0 for g in qrels[q].values()) for q in queries],
        }
    )
    # where it was read from (a folder, an ir_datasets id) as the source's tag: MLflow resolves a
    # bare path to two local source types at once, and warns
    source = CodeDatasetSource({"collection": collection.source or collection.name})
    with warnings.catch_warnings():  # MLflow's hint about integer columns in model signatures
        warnings.filterwarnings("ignore", message=".*integer column")
        dataset = from_pandas(frame, source=source, name=f"{collection.name} {split}")
        dataset.schema  # noqa: B018 -- inferred (and cached) here, where the hint is silenced
    return dataset


def per_query_table(
    per_query: Mapping[str, Mapping[str, float]], queries: Mapping[str, str]
) -> Any:
    """One row per evaluated query: its id, each metric's value, its text (a pandas DataFrame).

    MLflow's Evaluation view groups by the first column and compares the second: the query id and
    the first metric."""
    import pandas as pd

    query_ids = sorted({qid for values in per_query.values() for qid in values})
    columns: dict[str, list[Any]] = {"query_id": query_ids}
    for metric, values in per_query.items():
        columns[metric] = [float(values.get(q, 0.0)) for q in query_ids]
    columns["query"] = [queries.get(q, "") for q in query_ids]
    return pd.DataFrame(columns)


def main(argv: list[str] | None = None) -> None:
    """Print the link to an experiment's runs table: ``python -m lossbench.experiment.ui --uri ...``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--uri", required=True, help="the tracking store (sqlite:////abs/path.db)")
    parser.add_argument("--experiment", default="lossbench")
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="where the UI listens")
    args = parser.parse_args(argv)
    experiment_id = None
    store = args.uri.removeprefix("sqlite:///")
    try:
        if store != args.uri and not Path(store).exists():
            raise FileNotFoundError(store)  # opening it would create an empty store
        from mlflow.tracking import MlflowClient

        experiment = MlflowClient(tracking_uri=args.uri).get_experiment_by_name(args.experiment)
        experiment_id = None if experiment is None else str(experiment.experiment_id)
    except Exception:  # noqa: BLE001 -- no store yet: link to the experiment list instead
        experiment_id = None
    print(
        f"MLflow UI, runs table of {args.experiment!r}: {runs_table_url(args.url, experiment_id)}"
    )


if __name__ == "__main__":
    main()
