"""One evaluation-only run of ``python -m pipeline.evaluate``: a saved model indexed, searched and
evaluated on a collection, without training.

    prepare -> skip -> data -> track -> model -> test (and eval.collections) -> report

These are :class:`~lossbench.experiment.stages.Experiment`'s own stages (the test and report stages
of a training run, so the run logs the same ``test/*`` metrics, run files and per-query table);
what differs is where the model and its description come from. A model saved by a run
(``runs:/<run id>/model``, or its folder) carries that run's resolved config
(:func:`~lossbench.experiment.model_artifact.read_training_record`): its ``model``, ``loss``,
``regularizer``, schedules and ``seed`` replace the composed ones, so the evaluation run is named,
tagged and grouped like the run that trained the model, and is tagged ``source_run_id`` with it.
Everything that says how to evaluate (``dataset``, ``index``, ``eval``, ``data``, ``tracking``,
``paths``) stays the command line's.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from lossbench.experiment.identity import IDENTITY_TAGS, evaluation_hash
from lossbench.experiment.model_artifact import (
    SOURCE_RUN_TAG,
    read_training_record,
    with_training_config,
)
from lossbench.experiment.stages import Experiment


class Evaluation(Experiment):
    """The stages of an evaluation-only run (see the module docstring)."""

    entry_point = "python -m pipeline.evaluate"
    trains = False

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__(cfg)
        self.source_run_id = ""
        self.checkpoints: list[Any] = []

    def fit(self) -> bool:
        """Nothing to train: the run goes from the model to test (prepare -> skip? -> data ->
        track -> model -> test -> report)."""
        return True

    def save_model(self) -> None:
        """Nothing to save: the model evaluated is saved already (``model.model_name_or_path``)."""

    def prepare(self) -> None:
        """Find the model (a clear error for a missing or foreign one), take the training run's
        description from it, then every check of a run."""
        from lossbench.experiment.checks import check_model_source

        model_path, _ = check_model_source(self.cfg, require_saved=True)  # cached: cheap again
        training = read_training_record(model_path)
        if training is not None:
            with_training_config(self.cfg, training["config"])
            self.source_run_id = str(training["run_id"])
        super().prepare()
        self.plan.config_hash = evaluation_hash(self.plan.config_hash)

    def tags(self) -> dict[str, Any]:
        tags = super().tags()
        for key in IDENTITY_TAGS:  # never those of a training run of the same config
            tags[key] = evaluation_hash(tags[key])
        tags["model_source"] = str(self.cfg.model.model_name_or_path)
        if self.source_run_id:
            tags[SOURCE_RUN_TAG] = self.source_run_id
        return tags

    def describe(self, counts: dict[str, Any]) -> str:
        """What is evaluated on what, and where the model comes from (Markdown)."""
        cfg = self.cfg
        trained = f", trained by run `{self.source_run_id}`" if self.source_run_id else ""
        return (
            f"Evaluation only: model `{cfg.model.model_name_or_path}` ({cfg.model.name}, "
            f"**{cfg.loss.name}**, seed {cfg.seed}{trained}) on **{cfg.dataset.name}** "
            f"({counts.get('docs', 0)} docs; {counts.get('test_queries', 0)} test queries)."
        )

    def final_index(self) -> Any | None:
        return None  # nothing was trained: the model indexes the corpus in the test stage
