"""What the stages of one run share: the attributes of
:class:`~lossbench.experiment.stages.Experiment`, each set by the stage its comment names and read
by the later ones. The stage mixins (:mod:`~lossbench.experiment.setup_stages`,
:mod:`~lossbench.experiment.result_stages`, :mod:`~lossbench.experiment.rerank_stages`) build on it
so that each declares nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

if TYPE_CHECKING:
    from lossbench.experiment.setup_stages import Plan


class RunState:
    """The attributes the stages of a run share (see the module docstring)."""

    cfg: DictConfig  # the composed config
    entry_point: str  # the command that runs it (a class attribute)
    trains: bool  # False: an evaluation-only run (a class attribute)
    watch: Any  # the Stopwatch of the stage times
    primary: bool  # rank 0 (the other DDP ranks only train)
    plan: Plan  # prepare: losses, optimizer, schedules, model config, first stage
    uri: str  # skip: the tracking store that answered
    resume: Any  # skip: the ResumePoint of a run to continue, or None
    collection: Any  # data: the Collection
    tracked: Any  # track: the MLflow run
    folder: Path  # track: the run's output folder
    description: str  # track: the run's description before any result
    module: Any  # model: the BiEncoderModule or CrossEncoderModule
    retrieval: Any  # model (a cross-encoder: data): BiEncoderRetrieval or RerankRetrieval
    base: dict[str, float]  # start: the untrained model's test means
    first_stage_means: dict[str, float]  # start: a cross-encoder's first stage on test
    validation: Any  # start: the dev-split validation callback
    trainer: Any  # train: the Lightning trainer
    checkpoints: list[Any]  # train: the checkpoint callbacks
    zero_shot: dict[str, dict[str, float]]  # test: eval.collections, label -> test means
    model_id: str | None  # save: the run's logged model
    tags: Any  # SetupStages.tags: what the run is, as MLflow tags
    retrieve_candidates: Any  # RerankStages.retrieve_candidates: a cross-encoder's first stage
    write_run: Any  # ResultStages.write_run: a ranking of record as a TREC file in the run's folder

    @property
    def reranks(self) -> bool:
        """Whether the model re-ranks a first stage (a cross-encoder) instead of indexing the corpus."""
        return bool(self.plan.model_config.reranks)
