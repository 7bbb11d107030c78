"""The stages that set a run up, before its model exists: prepare (every check the config allows, the
run's parts as a :class:`Plan`), skip (a finished run of the same config) or resume, data (the
collection, checked), track (the MLflow run and what it is). Mixed into
:class:`~lossbench.experiment.stages.Experiment`, whose ``run`` calls them first."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from lossbench.experiment.config import instantiate_unwrapped, plain_dict
from lossbench.experiment.jobs import CONF_DIR, job_name, output_folder, sweep_parent_run_id
from lossbench.experiment.run_state import RunState


@dataclass
class Plan:
    """What :meth:`SetupStages.prepare` builds from the config, before anything is read or logged."""

    losses: list[Any]
    weights: list[float]
    optimizer: Any  # functools.partial of the optimizer class
    lr_schedule: Any
    model_config: Any
    weight_schedules: list[Any] = field(default_factory=list)  # callbacks changing loss weights
    config_hash: str = ""
    first_stage: Any = None  # a cross-encoder's candidates (a FirstStage); None for a bi-encoder
    model_path: str = ""  # model.model_name_or_path as a local folder (an MLflow URI downloaded)
    saved_model: bool = False  # model.model_name_or_path holds a model saved by lossbench
    collections: list[Any] = field(default_factory=list)  # eval.collections (zero_shot.py)


class SetupStages(RunState):
    """The prepare, skip, data and track stages of :class:`~lossbench.experiment.stages.Experiment`."""

    # ---- prepare -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check what the config alone allows and build the run's parts, before anything is logged."""
        from hydra.utils import instantiate

        from lossbench.experiment.checks import check_model_source, check_plan

        cfg = self.cfg
        with self.watch.stage("prepare"):
            model_path, saved_config = check_model_source(cfg, require_saved=not self.trains)
            if saved_config is not None and self.trains:  # training on: the record says what it is
                self.describe_saved_model(model_path)
            losses, weights = [instantiate(cfg.loss.function)], [1.0]
            if cfg.regularizer.get("function"):
                losses.append(instantiate(cfg.regularizer.function))
                weights.append(float(cfg.regularizer.weight))
            schedule = cfg.schedule
            self.plan = Plan(
                losses=losses,
                weights=weights,
                optimizer=instantiate(schedule.optimizer),
                lr_schedule=instantiate(schedule.lr_schedule)
                if schedule.get("lr_schedule")
                else None,
                model_config=saved_config or instantiate(cfg.model.config),
                model_path=model_path,
                saved_model=saved_config is not None,
            )
            callback = cfg.regularizer_schedule.get("callback")
            if callback:
                self.plan.weight_schedules.append(instantiate(callback))
            check_plan(cfg, self.plan, self.make_index(), trains=self.trains)
            if self.reranks:
                self.plan.first_stage = instantiate_unwrapped(cfg.first_stage.retriever)
            from lossbench.experiment.identity import config_hash
            from lossbench.experiment.zero_shot import eval_collections

            self.plan.config_hash = config_hash(cfg)
            self.plan.collections = eval_collections(cfg)

    def describe_saved_model(self, folder: str) -> None:
        """Training on from a model a run saved: its ``model`` node (name, config) replaces the
        composed one, which it overrides anyway, so the run's record says what was trained."""
        from lossbench.experiment.model_artifact import read_training_record, with_training_config

        training = read_training_record(folder)
        if training is not None and "model" in training["config"]:
            with_training_config(self.cfg, training["config"], ("model",))

    def make_index(self) -> Any:
        """A new, empty index as ``index`` configures it."""
        from hydra.utils import instantiate

        return instantiate(self.cfg.index)

    # ---- skip or resume ----------------------------------------------------------------------
    def skip(self) -> float | None:
        """The objective of a FINISHED run of this config (the job is skipped), else None; finds the
        run to continue when ``resume=true``. Fails now if the store does not answer."""
        from lossbench.experiment.outcome import previous_objective
        from lossbench.experiment.resume import resume_point
        from lossbench.experiment.tracking import reachable_uri

        if not self.primary:
            return None
        cfg, digest = self.cfg, self.plan.config_hash
        self.uri = reachable_uri(cfg.tracking.uri, cfg.tracking.get("fallback_uri"))
        rerun = bool(cfg.tracking.get("rerun", False))
        if cfg.get("resume"):
            self.resume = resume_point(self.uri, cfg.tracking.experiment, digest, rerun)
        if self.resume is not None or rerun:
            return None
        return previous_objective(cfg, self.uri, digest)

    # ---- data --------------------------------------------------------------------------------
    def load_data(self) -> None:
        """Load the collection (a bad file names its line) and check it has what the run reads."""
        from lossbench.experiment.checks import check_collection

        cfg = self.cfg
        with self.watch.stage("data"):
            self.collection = instantiate_unwrapped(cfg.dataset.collection)
            check_collection(  # an evaluation reads the test split alone
                self.collection,
                cfg.loss.train_source if self.trains else None,
                [cfg.eval.val_split, "test"] if self.trains else ["test"],
                self.plan.losses,
            )
            for other in self.plan.collections:  # eval.collections: each needs test queries
                other.load()
        if self.reranks:
            with self.watch.stage("first_stage"):
                self.retrieve_candidates()

    # ---- track -------------------------------------------------------------------------------
    def tags(self) -> dict[str, Any]:
        """What the run is, as MLflow tags (``config_hash`` finds it again, ``system_hash`` pools seeds,
        ``code_version`` names the code: :mod:`lossbench.experiment.identity`)."""
        from lossbench.experiment.identity import fold_of, identity_tags
        from lossbench.experiment.sweep_jobs import sweep_job_tags
        from lossbench.experiment.tracking import git_commit
        from lossbench.experiment.ui import source_tags

        cfg = self.cfg
        commit = git_commit(CONF_DIR.parent)
        return {
            **source_tags(self.entry_point, commit),
            "loss": cfg.loss.name,
            "regularizer": cfg.regularizer.name,
            "model": cfg.model.name,
            "dataset": cfg.dataset.name,
            "schedule": cfg.schedule.name,
            "regularizer_schedule": cfg.regularizer_schedule.name,
            "seed": cfg.seed,
            **({} if (fold := fold_of(cfg)) is None else {"fold": str(fold)}),
            "git_commit": commit,
            "command": " ".join(sys.argv[1:]),
            **sweep_job_tags(),
            **identity_tags(cfg),
            **({"first_stage": self.plan.first_stage.describe()} if self.reranks else {}),
        }

    @contextmanager
    def track(self) -> Iterator[Any]:
        """Open the MLflow run (rank 0) and log what the run is; it ends FINISHED, FAILED or KILLED.

        Params: the resolved config, ``loss`` (short, to group by) and the data's counts
        (``data/*``); metrics are left to what changes between runs."""
        from lossbench.experiment.tracking import UntrackedRun, flatten, tracked_run
        from lossbench.experiment.ui import evaluation_dataset

        cfg, resume = self.cfg, self.resume
        self.folder = output_folder(cfg, create=self.primary)
        tags = self.tags()
        opened = (
            tracked_run(
                self.uri,
                cfg.tracking.experiment,
                job_name(cfg),
                cfg.tracking.get("artifact_root"),
                resume.tags(tags["command"], tags["git_commit"]) if resume else tags,
                parent_run_id=sweep_parent_run_id(),
                resume_run_id=resume.run_id if resume else None,
            )
            if self.primary
            else nullcontext(UntrackedRun())
        )
        with opened as tracked:
            self.tracked = tracked
            resolved = plain_dict(cfg)
            config_path = self.folder / "config.yaml"
            if self.primary:
                config_path.write_text(OmegaConf.to_yaml(resolved), encoding="utf-8")
            summary = self.collection.summary()
            self.description = self.describe(summary)
            if self.reranks:
                first_stage = self.plan.first_stage.describe()
                self.description += f" Re-ranks the top {cfg.eval.k} of `{first_stage}`."
            if resume is None:  # a resumed run keeps the params and config it started with
                tracked.log_params(
                    {
                        **flatten(resolved),
                        "loss": cfg.loss.name,
                        **{f"data/{name}": value for name, value in summary.items()},
                    }
                )
                tracked.log_artifact(config_path)
                tracked.set_description(self.description)
                tracked.log_dataset(evaluation_dataset(self.collection, "test"), "evaluation")
            yield tracked

    def describe(self, counts: dict[str, Any]) -> str:
        """The run's description before any result: what it trains on what (Markdown)."""
        from lossbench.experiment.ui import run_description

        return run_description(self.cfg, counts)
