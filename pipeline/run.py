"""One run: check -> track -> data -> train -> index -> search -> evaluate -> log.

    python -m pipeline.run                              # the embedded default
    python -m pipeline.run loss=ranknet model=tiny trainer.max_steps=5
    python -m pipeline.run -m loss=ranknet seed=0,1     # a sweep, one MLflow run per job

The stages live in :mod:`lossbench.experiment.stages`. Returns the objective metric
(``eval.objective``) so that Hydra sweepers can optimise it.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from lossbench.experiment.config import register_resolvers
from lossbench.experiment.jobs import CONF_DIR, in_multirun

register_resolvers()
log = logging.getLogger("lossbench")


def run(cfg: DictConfig) -> float:
    """Run the experiment of a composed config (the stages of :class:`~lossbench.experiment.stages.Experiment`)."""
    from lossbench.experiment.stages import run_experiment

    return run_experiment(cfg)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from lossbench.experiment.launch import check_multi_device, processes_launched_externally

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
    from lossbench.experiment.quick_exit import quick_exit

    main()  # an error or a sweep's end exits through Hydra, as usual
    quick_exit(0)  # everything is logged, closed and flushed: skip the interpreter's teardown
