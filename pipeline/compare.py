"""Compare the runs of a sweep (or of an experiment) with significance tests, a report and plots.

    python -m pipeline.compare sweep=<parent run id>                  # printed at the end of a -m sweep
    python -m pipeline.compare sweep=lossbench baseline=ranknet       # every run of an experiment
    python -m pipeline.compare sweep=<id> tracking.uri=http://127.0.0.1:5000

Writes report.md, report.html and PNG plots, logs them to a comparison run in MLflow, prints the table.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from lossbench.config import register_resolvers

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

register_resolvers()


def compare(cfg: DictConfig) -> Path:
    """Run the comparison described by ``cfg``; returns the report's folder."""
    from lossbench.comparison import format_text_table, legend, run_comparison, table_rows
    from lossbench.tracking import connect, get_or_create_experiment

    client = connect(cfg.tracking.uri)
    output = Path(cfg.output)
    comparison, files, parent, experiment_id = run_comparison(
        client,
        str(cfg.sweep),
        list(cfg.metrics),
        output,
        baseline=cfg.baseline,
        stat_test=cfg.stat_test,
        correction=cfg.correction,
        max_p=float(cfg.max_p),
    )
    tags = {"lossbench_role": "comparison", "compared": str(cfg.sweep)}
    if parent:
        tags["mlflow.parentRunId"] = parent
    get_or_create_experiment(client, cfg.tracking.experiment, cfg.tracking.get("artifact_root"))
    run = client.create_run(experiment_id, run_name=f"compare {cfg.sweep}", tags=tags)
    for path in files:
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")
    header, rows = table_rows(comparison)
    print(format_text_table(header, rows))
    print(legend(comparison))
    for item in comparison.excluded:
        print(f"left out: {item}")
    print(f"\nreport: {output / 'report.md'} and {output / 'report.html'}; plots: {output}")
    print(f"logged to MLflow comparison run {run.info.run_id} in {cfg.tracking.uri}")
    return output


@hydra.main(config_path=str(CONF_DIR), config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    compare(cfg)


if __name__ == "__main__":
    main()
