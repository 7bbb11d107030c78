"""Checks of a run's settings and of its combination of loss, data and model, done before anything is
trained or logged."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import get_class

from lossbench.data.collection import Collection
from lossbench.data.streams import is_random_access
from lossbench.loss.base import LossFunction, Needs

if TYPE_CHECKING:
    from lossbench.retrieval.base import Index

PEEKED_TUPLES = 1000
"""Tuples of a streamed triples file parsed before the run starts: a file in the wrong format fails
at once; a bad line further down fails when training reaches it (the message names file and line)."""


class ConfigurationError(ValueError):
    """The chosen combination cannot work; the message names the fix."""


def check_training_source(
    losses: Sequence[LossFunction],
    train_source: str,
    dataset_has_teacher_scores: bool,
    dataset_name: str = "",
) -> None:
    """Fail unless the losses can train on ``train_source`` of the dataset (whose config says
    whether it has teacher scores: ``dataset.teacher_scores``).

    A loss that needs teacher scores must train from a run, and the dataset must have one.
    """
    from lossbench.experiment.schema import TrainSource

    valid = [source.value for source in TrainSource]
    if train_source not in valid:
        raise ConfigurationError(f"loss.train_source={train_source!r}; valid: {', '.join(valid)}")
    needing = [type(loss).__name__ for loss in losses if Needs.TEACHER_SCORES in loss.needs]
    if not (needing or train_source == "run"):
        return
    if not dataset_has_teacher_scores:
        raise ConfigurationError(missing_teacher_scores(needing, dataset_name))
    if needing and train_source != "run":
        raise ConfigurationError(
            f"{', '.join(needing)} needs teacher scores, which triples do not carry; set loss.train_source=run"
        )


def missing_teacher_scores(
    needing: Sequence[str], dataset_name: str, collection: Collection | None = None
) -> str:
    """Why a run cannot train: it needs a teacher run the dataset lacks; names datasets that have one."""
    from lossbench.experiment.jobs import group_options

    why = (
        f"{', '.join(needing)} needs teacher scores"
        if needing
        else "loss.train_source=run needs a teacher run"
    )
    where = f"dataset={dataset_name}"
    if collection is not None:
        where += f" (collection {collection.name!r}, {collection.source})"
    having = [
        f"dataset={name}"
        for name, option in group_options("dataset").items()
        if option.get("teacher_scores", False)
    ]
    options = ", ".join(having) or "a dataset with a teacher run"
    return f"{why}, but {where} has none; choose {options}, or a loss that trains on triples"


def check_collection(
    collection: Collection,
    train_source: str | None,
    splits: Sequence[str],
    losses: Sequence[LossFunction] = (),
    dataset_name: str = "",
) -> None:
    """Fail unless the loaded collection has what the run will read (it knows its own teacher run;
    ``train_source=None``: nothing is trained)."""
    if train_source == "run" and not collection.has_teacher_scores:
        needing = [type(loss).__name__ for loss in losses if Needs.TEACHER_SCORES in loss.needs]
        name = dataset_name or collection.name
        raise ConfigurationError(missing_teacher_scores(needing, name, collection))
    if train_source == "triples":
        if not collection.triples:
            raise ConfigurationError(
                f"collection {collection.name!r} ({collection.source}) has no training triples"
            )
        if not is_random_access(collection.triples):
            for _ in itertools.islice(iter(collection.triples), PEEKED_TUPLES):
                pass  # a streamed file: parse its head now rather than in a DataLoader worker
    for split in splits:
        if not collection.split_queries(split):
            raise ConfigurationError(
                f"collection {collection.name!r} has no judged {split!r} queries"
            )
    warn_missing_judged_docs(collection, splits)


def missing_judged_docs(collection: Collection, split: str) -> int:
    """How many (query, doc) judgements of ``split`` name a doc the corpus lacks."""
    docs = collection.docs
    return sum(
        doc_id not in docs
        for judged in collection.qrels.get(split, {}).values()
        for doc_id in judged
    )


def warn_missing_judged_docs(collection: Collection, splits: Sequence[str]) -> None:
    """A warning per split whose qrels name docs the corpus lacks (real collections have some):
    those judgements still count (a relevant one lowers recall and nDCG), but no run can find them."""
    import logging

    for split in splits:
        missing = missing_judged_docs(collection, split)
        if missing:
            logging.getLogger("lossbench").warning(
                "collection %r: %d judgement(s) of its %r qrels name docs missing from the corpus; "
                "they count in the metrics but can never be retrieved",
                collection.name,
                missing,
                split,
            )


def compatibility_warnings(losses: Sequence[LossFunction], model_config: Any) -> list[str]:
    """Combinations that run but are probably not what the user meant."""
    warnings = []
    for loss in losses:
        if Needs.SPARSE in loss.needs and not model_config.sparse:
            warnings.append(
                f"{type(loss).__name__} is meant for sparse (SPLADE) vectors; on a dense model it only "
                "shrinks the embeddings' magnitudes"
            )
    return warnings


def check_weight_schedule(
    keys: Sequence[str], losses: Sequence[LossFunction], schedule_name: str, regularizer_name: str
) -> None:
    """Fail unless every ``loss_functions.<i>.<attribute>`` key of a weight schedule names a number.

    The pipeline's losses are ``[loss, regularizer]``: a regularizer schedule needs a regularizer.
    """
    from types import SimpleNamespace

    from lossbench.training.weight_schedulers import get_key

    names = ", ".join(type(loss).__name__ for loss in losses)
    for key in keys:
        if not key.startswith("loss_functions."):
            continue
        try:
            value = get_key(SimpleNamespace(loss_functions=list(losses)), key)
        except KeyError as error:
            raise ConfigurationError(
                f"regularizer_schedule={schedule_name} schedules {error.args[0]}, but the losses "
                f"are [{names}] (regularizer={regularizer_name}); add a regularizer "
                "(regularizer=flops, l1 or l2) or set regularizer_schedule=none"
            ) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                f"regularizer_schedule={schedule_name}: {key} is {value!r}, not a number"
            )


def check_index(model_config: Any, index: Index, model_name: str = "") -> None:
    """Fail unless the index takes the vectors the model makes, naming the index options that do."""
    from lossbench.experiment.jobs import group_choice, group_options
    from lossbench.retrieval.base import VECTOR_KINDS

    made = model_config.vectors
    if index.vectors == made:
        return
    fitting = []
    for name, option in group_options("index").items():
        target = option.get("_target_")
        if target and getattr(get_class(str(target)), "vectors", None) == made:
            fitting.append(f"index={name}")
    model = f"model={model_name}" if model_name else type(model_config).__name__
    chosen = group_choice("index", "")
    index_name = f"index={chosen} ({type(index).__name__})" if chosen else type(index).__name__
    raise ConfigurationError(
        f"{model} makes {VECTOR_KINDS[made]}, but {index_name} is built for "
        f"{VECTOR_KINDS[index.vectors]}; "
        f"choose {' or '.join(fitting) or 'an index for ' + VECTOR_KINDS[made]}"
    )


def check_model(model_config: Any, model_name_or_path: str, losses: Sequence[LossFunction]) -> None:
    """Fail unless the model can train with the losses (a multi-vector model has no single vector
    to regularize) and its backbone can carry its config (hidden size, tokenizer), read from the
    backbone's config and tokenizer files only (no weights)."""
    from lossbench.models.module import check_losses_fit

    if model_config.reranks:  # a cross-encoder: check_model_losses asks its config's ``provides``
        return
    try:
        check_losses_fit(model_config, losses)
        if model_config.vectors == "multi_vector":  # the single-vector configs fit any backbone
            from lossbench.models.backbone import backbone_config, load_tokenizer

            hidden_size = int(backbone_config(model_name_or_path, model_config).hidden_size)
            model_config.check_backbone(hidden_size, load_tokenizer(model_name_or_path))
    except ValueError as error:
        raise ConfigurationError(str(error)) from None


def check_model_source(cfg: Any, require_saved: bool = False) -> tuple[str, Any]:
    """The local folder of ``model.model_name_or_path`` and, for a model saved by lossbench, its
    saved config (None: a pretrained backbone). An MLflow URI (``runs:/<run id>/model``) is
    downloaded from ``tracking.uri``'s store into ``<paths.cache>/models`` once; it, and with
    ``require_saved`` any source, must hold a lossbench model."""
    from lossbench.experiment.tracking import normalize_uri
    from lossbench.models.cross_encoder import read_saved_model_config
    from lossbench.models.module import SAVED_CONFIG
    from lossbench.models.saved import is_mlflow_uri, resolve_model_path

    source = str(cfg.model.model_name_or_path)
    key = f"model.model_name_or_path={source!r}"
    from_mlflow = is_mlflow_uri(source)
    if require_saved and not from_mlflow and not Path(source).is_dir():
        raise ConfigurationError(
            f"{key}: no such folder; give the folder of a saved model or runs:/<run id>/model"
        )
    try:
        uri = normalize_uri(cfg.tracking.uri) if from_mlflow else None
        folder = resolve_model_path(source, uri, Path(cfg.paths.cache) / "models")
    except (FileNotFoundError, ValueError) as error:
        raise ConfigurationError(f"{key}: {error}") from None
    saved = read_saved_model_config(folder) if Path(folder).is_dir() else None
    if saved is None and (require_saved or from_mlflow):
        raise ConfigurationError(
            f"{key} is not a lossbench model: {folder} has no {SAVED_CONFIG}; give "
            "runs:/<run id>/model of a run that saved its model (save_model=true) or a folder "
            "written by BiEncoderModule.save_pretrained or CrossEncoderModule.save_pretrained"
        )
    return folder, saved


def regularizer_warnings(cfg: Any) -> list[str]:
    """A loss config that names the regularizer it trains with (``loss.with_regularizer``) without it
    runs (``-m 'loss=glob(*)'`` sweeps every loss), but says which option it is meant for."""
    wanted = cfg.loss.get("with_regularizer")
    if not wanted or cfg.regularizer.name == wanted:
        return []
    return [
        f"loss={cfg.loss.name} is meant to train with regularizer={wanted}, but regularizer="
        f"{cfg.regularizer.name}; add regularizer={wanted} (experiment=splade sets both)"
    ]


def check_plan(cfg: Any, plan: Any, index: Index, trains: bool = True) -> None:
    """Every check of a run's config and the parts built from it, before anything is read or
    logged (``trains=False``: an evaluation-only run, whose training settings are not checked)."""
    import logging

    from lossbench.experiment.model_checks import check_model_losses, check_reranker_settings
    from lossbench.training.checkpoints import check_checkpoint_settings

    check_config(cfg)
    check_model(  # ColBERT's own words come before the cross-encoder's
        plan.model_config, plan.model_path or cfg.model.model_name_or_path, plan.losses
    )
    check_reranker_settings(cfg, plan.model_config)
    if not plan.model_config.reranks:
        check_index(plan.model_config, index, cfg.model.name)
    if not trains:
        return
    check_model_losses(cfg, plan.losses, plan.model_config)
    log = logging.getLogger("lossbench")
    for warning in [
        *compatibility_warnings(plan.losses, plan.model_config),
        *regularizer_warnings(cfg),
    ]:
        log.warning(warning)
    for schedule in plan.weight_schedules:
        check_weight_schedule(
            schedule.keys, plan.losses, cfg.regularizer_schedule.name, cfg.regularizer.name
        )
    check_checkpoint_settings(cfg.get("checkpoint"))
    check_grad_cache(cfg, plan.losses)
    check_training_source(
        plan.losses, cfg.loss.train_source, bool(cfg.dataset.teacher_scores), cfg.dataset.name
    )
    if cfg.loss.train_source == "run":
        check_run_sampling(cfg.dataset.run_sampling)


def check_grad_cache(cfg: Any, losses: Sequence[LossFunction]) -> None:
    """Fail unless ``grad_cache.chunk_size`` (null: off) is a chunk of the batch, the losses are
    ones GradCache serves (in-batch losses, regularizers), and the step is not compiled."""
    from lossbench.models.grad_cache import check_chunk_size
    from lossbench.models.module import check_grad_cache_losses

    try:
        chunk_size = check_chunk_size(cfg.grad_cache.chunk_size)
        if chunk_size is None:
            return
        check_grad_cache_losses(losses)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    batch_size = cfg.data.train_batch_size
    if chunk_size > batch_size:
        raise ConfigurationError(
            f"grad_cache.chunk_size={chunk_size} is larger than the batch "
            f"(data.train_batch_size={batch_size}): a chunk is a part of the batch; set "
            f"grad_cache.chunk_size to at most {batch_size}, or raise data.train_batch_size"
        )
    if cfg.get("compile", False):
        raise ConfigurationError(
            "compile=true with grad_cache.chunk_size: GradCache encodes in chunks outside the "
            "compiled step; set compile=false or grad_cache.chunk_size=null"
        )


def check_run_sampling(sampling: Any) -> None:
    """Fail on a ``dataset.run_sampling`` that RunDataset would refuse once the run has opened."""
    from lossbench.data.run_dataset import check_sampling

    try:
        check_sampling(sampling.sampling_strategy, sampling.targets, sampling.sample_size)
    except ValueError as error:
        raise ConfigurationError(f"dataset.run_sampling: {error}") from None
    if sampling.depth == 0 or sampling.depth < -1:
        raise ConfigurationError(
            f"dataset.run_sampling.depth={sampling.depth}: use -1 (the whole run) or a positive rank"
        )


def check_config(cfg: Any) -> None:
    """Every check the composed config alone allows: schema, evaluation settings, trainer arguments.

    Hydra has already type-checked the config against :mod:`lossbench.experiment.schema` while composing it;
    this catches what composition lets through (see :func:`check_schema`).
    """
    check_schema(cfg)
    check_eval(cfg.eval)
    check_trainer_args(cfg.trainer)
    if cfg.data.get("token_cache_mib", 0) < 0:
        raise ConfigurationError(
            f"data.token_cache_mib={cfg.data.token_cache_mib}: expected >= 0 "
            "(MiB of token ids kept per run; 0 turns the cache off)"
        )


def check_schema(cfg: Any) -> None:
    """Fail on a required value left unset (``???``), a key the schema does not declare (added
    with ``+key=value``, which Hydra allows even on typed nodes), or an interpolation that does not
    resolve to its field's type."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigurationError(f"the config does not resolve: {error}") from error
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)}: required but not set (???); set it on the command line: "
            f"{missing[0]}=..."
        )
    _check_declared_keys(cfg, "")


def _check_declared_keys(node: Any, prefix: str) -> None:
    """Recursively: each key of a node typed by a schema dataclass is one of its fields."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    schema = OmegaConf.get_type(node)
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        return  # an open node (trainer, index, a _target_ node): its consumer checks its keys
    fields = [field.name for field in dataclasses.fields(schema)]
    for key in node:
        name = f"{prefix}{key}"
        if not prefix and key == "hydra":  # present when composed with return_hydra_config=True
            continue
        if key not in fields:
            where = prefix.rstrip(".") or "the top level"
            raise ConfigurationError(
                f"{name} is not a setting: {where} takes {', '.join(fields)} "
                f"({schema.__name__} in lossbench/schema.py)"
            )
        if not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            _check_declared_keys(node[key], f"{name}.")


def check_metrics(metrics: Sequence[str], key: str) -> None:
    """Fail unless every name is a metric ranx computes (``ndcg@10``, ``recall@100``, ``map``, ...)."""
    from lossbench.evaluation import check_metric_names

    try:
        check_metric_names(metrics)
    except ValueError as error:
        raise ConfigurationError(
            f"{key}: {error}; e.g. ndcg@10, mrr@10, recall@100, map@100"
        ) from error


def check_eval(eval_cfg: Any) -> None:
    """Fail unless the metrics exist and the objective is one of the metrics of its split."""
    check_metrics(eval_cfg.metrics, "eval.metrics")
    check_metrics(eval_cfg.val_metrics, "eval.val_metrics")
    split, val_split = eval_cfg.objective_split, eval_cfg.val_split
    if split not in ("test", val_split):
        raise ConfigurationError(
            f"eval.objective_split={split!r}; valid: test, {val_split} (eval.val_split)"
        )
    key = "eval.metrics" if split == "test" else "eval.val_metrics"
    pool = list(eval_cfg.metrics if split == "test" else eval_cfg.val_metrics)
    if eval_cfg.objective not in pool:
        raise ConfigurationError(
            f"eval.objective={eval_cfg.objective!r} is not computed on the {split} split: "
            f"{key} is [{', '.join(pool)}]; pick one of them or add it to {key}"
        )


PIPELINE_TRAINER_ARGS = ("logger", "callbacks", "default_root_dir")
"""Trainer arguments that pipeline.run sets itself."""


def check_trainer_args(trainer_cfg: Any) -> None:
    """Fail unless every ``trainer.*`` key is a ``lightning.Trainer`` argument the pipeline leaves open."""
    import difflib
    import inspect

    import lightning

    accepted = [
        name for name in inspect.signature(lightning.Trainer.__init__).parameters if name != "self"
    ]
    for key in trainer_cfg:
        if key in PIPELINE_TRAINER_ARGS:
            raise ConfigurationError(f"trainer.{key} is set by pipeline.run; remove it")
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"; did you mean trainer.{close[0]}?" if close else ""
            raise ConfigurationError(f"trainer.{key} is not a lightning.Trainer argument{hint}")
