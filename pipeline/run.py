"""One run: check -> track -> data -> train -> index -> search -> evaluate -> log.

    python -m pipeline.run                              # the embedded default
    python -m pipeline.run loss=ranknet model=tiny trainer.max_steps=5
    python -m pipeline.run -m loss=ranknet seed=0,1     # a sweep, one MLflow run per job
    python -m pipeline.run model=bm25                   # BM25 alone: nothing trained, the reference

The stages live in :mod:`lossbench.experiment.stages`. Returns the objective metric
(``eval.objective``) so that Hydra sweepers can optimise it.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lossbench.experiment.command_errors import errors_in_one_line
from lossbench.experiment.config import register_resolvers
from lossbench.experiment.jobs import CONF_DIR, in_multirun

register_resolvers()


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
        with errors_in_one_line():  # their messages name the fix: no traceback to read
            return run(cfg)
    from lossbench.experiment.sweep_jobs import run_sweep_job

    return run_sweep_job(cfg)  # a failing job is recorded FAILED and the sweep goes on


if __name__ == "__main__":
    from lossbench.experiment.quick_exit import quick_exit
    from lossbench.experiment.sweeps import exit_status

    main()  # an error (a single run, a sweep that cannot start) exits through Hydra, as usual
    # everything is logged, closed and flushed: skip the interpreter's teardown; a sweep with a
    # failed or missing job exits 1
    quick_exit(exit_status())
