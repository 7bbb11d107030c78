"""The typed schema of conf/: every option and preset composes into it; what is open stays open."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lossbench.experiment import schema
from lossbench.experiment.checks import check_schema
from tests.helpers import CONF_DIR

TYPED_NODES = {
    "paths": schema.PathsConf,
    "data": schema.DataConf,
    "loss": schema.LossConf,
    "regularizer": schema.RegularizerConf,
    "regularizer_schedule": schema.RegularizerScheduleConf,
    "dataset": schema.DatasetConf,
    "model": schema.ModelConf,
    "schedule": schema.ScheduleConf,
    "eval": schema.EvalConf,
    "tracking": schema.TrackingConf,
    "checkpoint": schema.CheckpointConf,
}


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def test_the_composed_config_is_typed_node_by_node(compose) -> None:
    cfg = compose(small=False)
    assert OmegaConf.get_type(cfg) is schema.LossbenchConfig
    for name, node_type in TYPED_NODES.items():
        assert OmegaConf.get_type(cfg[name]) is node_type, name
    assert isinstance(cfg.loss.train_source, schema.TrainSource)
    assert cfg.loss.train_source == "triples"  # a StrEnum still compares equal to its string
    assert OmegaConf.get_type(cfg.trainer) is dict and OmegaConf.get_type(cfg.index) is dict


def covering_pairs() -> list[tuple[str, str]]:
    """Every loss once, with the experiments in turn: each loss and each experiment appear (the
    fast suite); the full product is a slow test."""
    losses, experiments = options("loss"), options("experiment")
    count = max(len(losses), len(experiments))
    return [(losses[i % len(losses)], experiments[i % len(experiments)]) for i in range(count)]


ALL_PAIRS = [(loss, experiment) for experiment in options("experiment") for loss in options("loss")]


@pytest.mark.parametrize(
    ("loss", "experiment"),
    [
        pair if pair in covering_pairs() else pytest.param(*pair, marks=pytest.mark.slow)
        for pair in ALL_PAIRS
    ],
)
def test_every_loss_with_every_experiment_passes_the_schema(
    compose, loss: str, experiment: str
) -> None:
    """What `-m 'loss=glob(*)'` and the presets' sweeps compose (test_config covers each option)."""
    cfg = compose(f"experiment={experiment}", f"loss={loss}", small=False)
    check_schema(cfg)  # no ??? left, no undeclared key, every interpolation resolves to its type
    assert cfg.loss.name == loss


def test_the_code_accepts_exactly_the_schema_enums_values() -> None:
    """The enums' one home is the schema: the data and the checks take their valid values from it."""
    from lossbench.data.run_dataset import check_sampling
    from lossbench.experiment.checks import ConfigurationError, check_training_source

    strategies = ", ".join(strategy.value for strategy in schema.SamplingStrategy)
    with pytest.raises(ValueError, match=f"valid: {strategies}$"):
        check_sampling("bogus", None, 8)
    kinds = ", ".join(kind.value for kind in schema.RunTargets)
    with pytest.raises(ValueError, match=f"valid: {kinds}$"):
        check_sampling("top", "bogus", 8)
    for strategy in schema.SamplingStrategy:
        for kind in schema.RunTargets:
            check_sampling(strategy, kind, 8)
    sources = ", ".join(source.value for source in schema.TrainSource)
    with pytest.raises(ConfigurationError, match=f"valid: {sources}$"):
        check_training_source([], "bogus", True)


def test_resume_and_checkpoint_have_defaults_and_do_not_change_the_config_hash(compose) -> None:
    from lossbench.experiment.identity import config_hash

    cfg = compose(small=False)
    assert cfg.resume is False
    assert cfg.checkpoint.every_n_steps == 40 and cfg.checkpoint.dir is None
    resumed = compose("resume=true", "checkpoint.every_n_steps=50", "checkpoint.dir=/tmp/ckpt")
    assert resumed.resume is True and resumed.checkpoint.every_n_steps == 50
    assert config_hash(resumed) == config_hash(compose())


def test_the_index_and_trainer_nodes_take_new_keys(compose) -> None:
    """New index types bring their own options; trainer takes any lightning.Trainer argument."""
    from lossbench.experiment.checks import check_trainer_args

    cfg = compose("+index.report_recall_vs_exact=true", "+trainer.limit_val_batches=2")
    check_schema(cfg)
    check_trainer_args(cfg.trainer)
    assert cfg.index.report_recall_vs_exact is True


def test_a_missing_required_value_is_named(compose) -> None:
    from lossbench.experiment.checks import ConfigurationError

    cfg = compose(small=False)
    cfg.eval.objective = "???"
    with pytest.raises(ConfigurationError, match=r"eval\.objective: required but not set"):
        check_schema(cfg)


def test_an_interpolation_of_the_wrong_type_is_named(compose) -> None:
    from lossbench.experiment.checks import ConfigurationError

    cfg = compose("data.train_batch_size=${tracking.experiment}", small=False)
    with pytest.raises(
        ConfigurationError,
        match=r"(?s)does not resolve.*to Integer.*full_key: data\.train_batch_size",
    ):
        check_schema(cfg)


def test_the_token_cache_setting_is_checked_and_leaves_the_config_hash_alone(compose) -> None:
    from lossbench.experiment.checks import ConfigurationError, check_config
    from lossbench.experiment.identity import config_hash

    cfg = compose()
    assert cfg.data.token_cache_mib == 512
    assert config_hash(compose("data.token_cache_mib=0")) == config_hash(cfg)
    assert config_hash(compose("data.train_batch_size=3")) != config_hash(cfg)
    with pytest.raises(ConfigurationError, match=r"data.token_cache_mib=-1.*0 turns the cache off"):
        check_config(compose("data.token_cache_mib=-1"))
