"""An evaluation-only run: a saved model indexed, searched and evaluated, without training.

    python -m pipeline.evaluate model.model_name_or_path=runs:/<run id>/model dataset=cranfield
    python -m pipeline.evaluate model.model_name_or_path=outputs/<day>/<time>/model
    python -m pipeline.evaluate -m model.model_name_or_path=runs:/<a>/model,runs:/<b>/model

The stages live in :mod:`lossbench.experiment.evaluation`. Returns ``eval.objective`` on the test
split.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lossbench.experiment.command_errors import errors_in_one_line
from lossbench.experiment.config import register_resolvers
from lossbench.experiment.jobs import CONF_DIR, in_multirun

register_resolvers()


def evaluate(cfg: DictConfig) -> float:
    """Evaluate the saved model of a composed config (:class:`~lossbench.experiment.evaluation.Evaluation`)."""
    from lossbench.experiment.evaluation import Evaluation

    return Evaluation(cfg).run()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    if not in_multirun():
        with errors_in_one_line():  # their messages name the fix: no traceback to read
            return evaluate(cfg)
    from lossbench.experiment.evaluation import Evaluation
    from lossbench.experiment.sweep_jobs import run_sweep_job

    return run_sweep_job(cfg, Evaluation)  # a failing job is recorded FAILED and the sweep goes on


if __name__ == "__main__":
    from lossbench.experiment.quick_exit import quick_exit
    from lossbench.experiment.sweeps import exit_status

    main()
    quick_exit(exit_status())
