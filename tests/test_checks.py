"""Combinations that cannot work fail before anything is trained or logged, with the fix in the message."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from lossbench.experiment.checks import ConfigurationError, check_training_source
from lossbench.loss import KLDivergence, RankNet, ScoreBasedInBatchCrossEntropy
from tests.helpers import FAST_RUN

FAST_RUN_HERE = [*FAST_RUN, "trainer.max_steps=2"]


def test_a_teacher_loss_on_a_dataset_without_teacher_scores_names_one_that_has_them() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"KLDivergence needs teacher scores.*dataset=cranfield.*dataset=synthetic",
    ):
        check_training_source([KLDivergence()], "run", False, "cranfield")


def test_a_teacher_loss_cannot_train_on_triples() -> None:
    with pytest.raises(ConfigurationError, match="loss.train_source=run"):
        check_training_source([ScoreBasedInBatchCrossEntropy()], "triples", True, "synthetic")


def test_training_from_a_run_needs_a_run() -> None:
    with pytest.raises(ConfigurationError, match="train_source=run needs a teacher run"):
        check_training_source([RankNet()], "run", False, "local")
    with pytest.raises(ConfigurationError, match="valid: triples, run"):
        check_training_source([RankNet()], "pairs", True, "synthetic")
    check_training_source([RankNet()], "triples", False, "local")  # fine


def test_the_pipeline_refuses_before_logging_anything(compose, mlflow_uri: str) -> None:
    from pipeline.run import run

    with pytest.raises(ConfigurationError, match="dataset=synthetic"):
        run(
            compose(
                *FAST_RUN_HERE,
                "loss=kl_divergence",
                "dataset=local",
                "dataset.path=/nonexistent",
                small=False,
            )
        )
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


@pytest.mark.parametrize(
    "loss", ["kl_divergence", "score_based_in_batch_ce", "supervised_margin_mse"]
)
def test_teacher_losses_are_paired_with_the_teacher_run(compose, loss: str) -> None:
    cfg = compose(f"loss={loss}")
    assert cfg.loss.train_source == "run"
