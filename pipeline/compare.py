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

from lossbench.experiment.command_errors import errors_in_one_line
from lossbench.experiment.config import register_resolvers
from lossbench.experiment.jobs import CONF_DIR

register_resolvers()


def compare(cfg: DictConfig) -> Path:
    """Run the comparison described by ``cfg``; returns the report's folder."""
    from lossbench.experiment.comparison import log_comparison, run_comparison
    from lossbench.experiment.report import print_report
    from lossbench.experiment.tracking import connect

    client = connect(cfg.tracking.uri, create=False)  # reads runs: a store must exist
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
        allow_mixed_code=bool(cfg.allow_mixed_code),
        reference=cfg.get("reference"),
        cache=Path(cfg.paths.cache),
    )
    run_id = log_comparison(client, experiment_id, str(cfg.sweep), parent, files, comparison)
    print_report(comparison, output)
    print(f"logged to MLflow comparison run {run_id} in {cfg.tracking.uri}")
    return output


@hydra.main(config_path=str(CONF_DIR), config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with errors_in_one_line():  # no store, no such sweep: the message names the fix
        compare(cfg)


if __name__ == "__main__":
    main()
