"""Typed schemas of ``conf/``: a wrong type or an unknown key fails when Hydra composes the config.

``conf/config.yaml`` lists ``lossbench_schema`` first in its defaults, so every group option, the
primary config's own values, experiment presets and command-line overrides are merged *into* these
dataclasses (Hydra's structured-config schema pattern). OmegaConf then checks each value against
its field's type (``data.train_batch_size=abc`` -> "Value 'abc' of type 'str' could not be
converted to Integer, full_key: data.train_batch_size") and refuses keys a dataclass does not
declare (``data.batchsize=8``, or a typo in a YAML file -> "Key 'batchsize' not in 'DataConf'").
Hydra still lets ``+data.batchsize=8`` add a key; :func:`lossbench.experiment.checks.check_schema` refuses
it before a run starts.

What stays open, on purpose:

* ``trainer`` is ``dict[str, Any]``: it is passed as is to ``lightning.Trainer``, whose ~40
  arguments are Lightning's to define and change between releases (``trainer.max_steps=200``,
  ``trainer.limit_val_batches=...``); :func:`lossbench.experiment.checks.check_trainer_args` checks the keys
  against the installed Trainer's signature instead, naming the closest argument.
* ``index`` is ``dict[str, Any]``: each index type (``_target_``) has its own arguments, and new
  index types add theirs; the pipeline instantiates it before a run starts.
* the ``_target_`` nodes (``loss.function``, ``model.config``, ``schedule.optimizer``, ...) are
  ``Any``: their keys are the constructor arguments of their class, checked when the pipeline
  instantiates them -- also before anything is logged.

Values come from ``conf/``: a field the YAML files must set is ``MISSING`` here (never a second
copy of its default); optional fields default to None. ``resume`` and ``checkpoint`` have their
defaults here until ``conf/config.yaml`` sets them, and ``dataset.run_sampling`` and
``dataset.recommended`` have their only home here (a dataset YAML sets what differs).

The enums list their valid values in the error (``loss.train_source=rum`` -> "Invalid value 'rum',
expected one of [triples, run]"). This module imports nothing heavy: the CLI registers it before
Hydra composes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

SCHEMA_NAME = "lossbench_schema"
"""The name ``conf/config.yaml`` lists first in its defaults."""


class TrainSource(StrEnum):
    """What a loss trains on: the dataset's triples, or its (teacher) run."""

    triples = "triples"
    run = "run"


class SamplingStrategy(StrEnum):
    """How a RunDataset samples each query's candidates (see ``lossbench.data.RunDataset``)."""

    top = "top"
    random = "random"
    log_random = "log_random"
    top_and_random = "top_and_random"
    single_relevant = "single_relevant"


class RunTargets(StrEnum):
    """What a RunDataset's targets are: qrels grades, ranks, or the run's (teacher) scores."""

    relevance = "relevance"
    rank = "rank"
    score = "score"


@dataclass
class PathsConf:
    root: str = MISSING
    cache: str = MISSING
    output: str | None = None


@dataclass
class DataConf:
    """Batch sizes and workers; null picks for the machine (:mod:`lossbench.training.hardware`)."""

    train_batch_size: int = MISSING
    inference_batch_size: int | None = None
    num_workers: int | None = None
    encode_workers: int | None = None
    token_cache_mib: float = 512
    token_store: bool = True  # the corpus's token ids on disk under paths.cache, shared by runs


@dataclass
class EvalConf:
    metrics: list[str] = MISSING
    k: int = MISSING
    objective: str = MISSING
    objective_split: str = MISSING
    base: bool = MISSING
    reuse_base: bool = (
        True  # the untrained evaluation from paths.cache when an earlier job stored it
    )
    val_split: str = MISSING
    val_metrics: list[str] = MISSING
    val_every_n_steps: int | None = None
    # a bi-encoder on a larger corpus validates on a fixed pool of the first stage's dev candidates
    val_candidates_above: int | None = 100_000
    val_candidates_depth: int = 100
    # other test collections, zero-shot: dataset options by name, or mappings {dataset: option, ...}
    collections: list[Any] = field(default_factory=list)


@dataclass
class TrackingConf:
    uri: str = MISSING
    artifact_root: str | None = None
    experiment: str = MISSING
    run_name: str | None = None
    rerun: bool = MISSING
    sweep_name: str | None = None
    fallback_uri: str | None = None


@dataclass
class CheckpointConf:
    """Periodic training checkpoints (null: none)."""

    every_n_steps: int | None = None
    keep: int = 1
    dir: str | None = None
    keep_finished: bool = False


@dataclass
class LossConf:
    name: str = MISSING
    train_source: TrainSource = MISSING
    function: Any = MISSING  # a node with _target_: the loss class and its arguments
    with_regularizer: str | None = None  # the regularizer option this loss is meant for (warned)


@dataclass
class RegularizerConf:
    name: str = MISSING
    weight: float = MISSING
    function: Any = None  # null: no regularizer


@dataclass
class RegularizerScheduleConf:
    name: str = MISSING
    callback: Any = None  # null: the regularizer's weights stay constant


@dataclass
class RunSamplingConf:
    """How a RunDataset samples a teacher run (``loss.train_source=run``); these defaults are the
    guide's (depth 50, 8 candidates at random, the teacher's scores as targets), for every dataset
    that does not set its own."""

    depth: int = 50
    sample_size: int = 8
    sampling_strategy: SamplingStrategy = SamplingStrategy.random
    targets: RunTargets | None = RunTargets.score  # null: the run's scores
    normalize_targets: bool = False


@dataclass
class RecommendedConf:
    """The fine-tuning settings a dataset declares (``dataset.recommended``), chosen on its dev
    split; ``conf/schedule/*`` and ``conf/trainer/default.yaml`` read them
    (``lr: ${dataset.recommended.lr}``), so a run uses them unless the command line sets the
    schedule's or trainer's own key. Both values are logged with the resolved config.

    These defaults are the general recipe, for every dataset that declares nothing: a safe
    fine-tuning of a *pretrained* model (the usual 2e-5 of BERT fine-tuning; 1e-4 pulled MiniLM
    below its untrained nDCG@10 on Cranfield). A dataset sets what differs (the synthetic data
    its faster 1e-4, see ``conf/dataset/synthetic.yaml``)."""

    lr: float = 2e-5  # schedule.optimizer.lr
    max_steps: int = 80  # trainer.max_steps


@dataclass
class DatasetConf:
    name: str = MISSING
    teacher_scores: bool = MISSING
    collection: Any = MISSING  # a node with _target_: the collection's loader and its arguments
    run_sampling: RunSamplingConf = field(default_factory=RunSamplingConf)
    recommended: RecommendedConf = field(default_factory=RecommendedConf)
    path: str | None = None  # dataset=local: the folder


@dataclass
class ModelConf:
    name: str = MISSING
    model_name_or_path: str = MISSING
    config: Any = MISSING  # a node with _target_: DprConfig, SpladeConfig, CrossEncoderConfig, ...


@dataclass
class FirstStageConf:
    """Where a cross-encoder's candidates come from (ignored by bi-encoders)."""

    name: str = MISSING
    retriever: Any = MISSING  # a node with _target_: a lossbench.retrieval.first_stage.FirstStage
    path: str | None = (
        None  # first_stage=run_file: the run; first_stage=model: the saved bi-encoder
    )


@dataclass
class ScheduleConf:
    name: str = MISSING
    optimizer: Any = MISSING  # a node with _target_ and _partial_: true
    lr_schedule: Any = None


@dataclass
class GradCacheConf:
    """GradCache for in-batch losses (:mod:`lossbench.models.grad_cache`); null: off."""

    chunk_size: int | None = None


@dataclass
class LossbenchConfig:
    """The composed config of ``python -m pipeline.run``."""

    seed: int = MISSING
    compile: bool = False
    save_model: bool = True  # save the trained model and log it to MLflow (false: big sweeps)
    grad_cache: GradCacheConf = field(default_factory=GradCacheConf)
    paths: PathsConf = field(default_factory=PathsConf)
    data: DataConf = field(default_factory=DataConf)
    loss: LossConf = field(default_factory=LossConf)
    regularizer: RegularizerConf = field(default_factory=RegularizerConf)
    regularizer_schedule: RegularizerScheduleConf = field(default_factory=RegularizerScheduleConf)
    dataset: DatasetConf = field(default_factory=DatasetConf)
    model: ModelConf = field(default_factory=ModelConf)
    schedule: ScheduleConf = field(default_factory=ScheduleConf)
    index: dict[str, Any] = field(default_factory=dict)  # open: see the module docstring
    first_stage: FirstStageConf = field(default_factory=FirstStageConf)
    trainer: dict[str, Any] = field(default_factory=dict)  # open: lightning.Trainer's arguments
    eval: EvalConf = field(default_factory=EvalConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    resume: bool = False
    checkpoint: CheckpointConf = field(default_factory=CheckpointConf)


def register_schema() -> None:
    """Store :class:`LossbenchConfig` in Hydra's ConfigStore as ``lossbench_schema`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=LossbenchConfig)
