"""Checks of a run's settings and of its combination of loss, data and model, done before anything is
trained or logged: :func:`check_plan` runs them all. The model, index, loss-weight and GradCache
checks are here; the config's own in :mod:`~lossbench.experiment.config_checks`, the data's in
:mod:`~lossbench.experiment.data_checks`, a cross-encoder's in
:mod:`~lossbench.experiment.model_checks`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import get_class

from lossbench.experiment.config_checks import (  # noqa: F401 (re-exported)
    ConfigurationError,
    check_config,
    check_eval,
    check_metrics,
    check_schema,
    check_trainer_args,
)
from lossbench.experiment.data_checks import (  # noqa: F401 (re-exported)
    check_collection,
    check_run_sampling,
    check_training_source,
    missing_teacher_scores,
    warn_missing_judged_docs,
)
from lossbench.loss.base import LossFunction, Needs

if TYPE_CHECKING:
    from lossbench.retrieval.base import Index


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
