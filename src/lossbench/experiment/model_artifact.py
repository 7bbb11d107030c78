"""The trained model as a run's output: saved, logged to MLflow, found again.

A run that ends its test stage saves its model in the ``save_pretrained`` layout (weights, config,
tokenizer) in ``<output folder>/model``, with ``lossbench_run.json`` beside it (the run's id and
resolved config, so an evaluation of the model knows what was trained), and logs the folder as an
MLflow 3 *logged model* named ``model`` whose source is the run. MLflow 3 keeps a model's files with
the model, not in the run's artifacts, and resolves ``runs:/<run id>/model`` to them; the model
also has its own URI ``models:/<model id>`` (tag ``model_uri``), is listed under the run's *Logged
models* and on the experiment's *Models* tab, and carries the run's test metrics there. Both URIs
load it back (:meth:`lossbench.models.RankingModule.saved_folder`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from lossbench.models.saved import RUN_FILE

MODEL_NAME = "model"
"""The logged model's name: ``runs:/<run id>/model`` finds it."""
MODEL_URI_TAG = "model_uri"
SOURCE_RUN_TAG = "source_run_id"
"""An evaluation run's tag: the training run whose model it evaluated."""
RUN_FORMAT = 1


def save_trained_model(module: Any, folder: Path, cfg: DictConfig, run_id: str) -> Path:
    """``module.save_pretrained(folder)`` plus :data:`~lossbench.models.saved.RUN_FILE`: the run's
    id and resolved config."""
    from lossbench.experiment.config import plain_dict

    module.save_pretrained(folder)
    record = {"format": RUN_FORMAT, "run_id": run_id, "config": plain_dict(cfg)}
    (folder / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder


def read_training_record(folder: str | Path) -> dict[str, Any] | None:
    """What :func:`save_trained_model` wrote beside a model (``run_id``, ``config``), or None for a
    model saved outside a run."""
    from lossbench.models.saved import read_saved_json

    return read_saved_json(Path(folder) / RUN_FILE, RUN_FORMAT)


TRAINED_KEYS = ("model", "loss", "regularizer", "regularizer_schedule", "schedule", "seed")
"""What an evaluation run takes from the config of the run that trained its model."""


def with_training_config(
    cfg: DictConfig, training: dict[str, Any], keys: tuple[str, ...] = TRAINED_KEYS
) -> None:
    """Replace ``cfg``'s ``keys`` (:data:`TRAINED_KEYS`) by the training run's (in place), keeping the model
    source the command line named (``model.model_name_or_path``)."""
    import dataclasses

    source = cfg.model.model_name_or_path
    with open_dict(cfg):
        for key in keys:
            if key not in training:
                continue
            schema = OmegaConf.get_type(cfg, key)  # a typed group takes a node of its own type
            value = training[key]
            if schema is not None and dataclasses.is_dataclass(schema):
                value = OmegaConf.merge(OmegaConf.structured(schema), value)
            cfg[key] = value
        cfg.model.model_name_or_path = source


def log_trained_model(tracked: Any, folder: Path, tags: Mapping[str, Any]) -> str:
    """Log ``folder`` as the run's logged model :data:`MODEL_NAME`; returns its model id.

    The model is READY once every file is stored; if storing fails it is marked FAILED (and the
    error ends the run FAILED, like any other)."""
    from mlflow.entities import LoggedModelOutput

    client = tracked.client
    model = client.create_logged_model(
        tracked.experiment_id,
        name=MODEL_NAME,
        source_run_id=tracked.run_id,
        tags={k: str(v) for k, v in tags.items()},
    )
    try:
        client.log_model_artifacts(model.model_id, str(folder))
    except BaseException:
        client.finalize_logged_model(model.model_id, "FAILED")
        raise
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(tracked.run_id, [LoggedModelOutput(model.model_id, step=0)])
    tracked.set_tags({MODEL_URI_TAG: f"models:/{model.model_id}"})
    return str(model.model_id)


def log_test_metrics(tracked: Any, metrics: Mapping[str, float], model_id: str | None) -> None:
    """The run's test metrics, attached to its logged model when there is one (the *Models* tab
    shows them)."""
    if model_id is None:
        tracked.log_metrics(metrics)
        return
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    tracked.log_items([Metric(k, float(v), now, 0, model_id=model_id) for k, v in metrics.items()])
