"""The bi-encoder: pooling ignores padding, padded candidates never reach a loss, losses dispatch by contract."""

from __future__ import annotations

import pytest
import torch

from lossbench.data.batches import TrainCollator
from lossbench.data.datasets import TrainSample
from lossbench.loss import InBatchCrossEntropy, L2Regularization, RankNet, ScoringLossFunction
from lossbench.models.backbone import pool
from lossbench.models.ranking_module import loss_log_names, normalize_losses


def test_pooling_ignores_padding() -> None:
    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]]
    )  # (1, 3, 2), last token padding
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "first").tolist() == [[1.0, 2.0]]
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    assert pool(hidden, mask, "max").tolist() == [[3.0, 4.0]]


def test_losses_given_as_instance_class_path_or_weighted_pair() -> None:
    losses, weights = normalize_losses(
        [RankNet(), "lossbench.InfoNCE", (L2Regularization(), 0.5), RankNet]
    )
    assert [type(loss).__name__ for loss in losses] == [
        "RankNet",
        "InfoNCE",
        "L2Regularization",
        "RankNet",
    ]
    assert weights == [1.0, 1.0, 0.5, 1.0]
    assert loss_log_names(losses) == ["ranknet_0", "infonce", "l2", "ranknet_3"]
    with pytest.raises(TypeError, match="not a lossbench loss"):
        normalize_losses([torch.nn.MSELoss()])


class Recorder(ScoringLossFunction):
    """A scoring loss that remembers what it was given."""

    def compute(self, scores, targets, mask):  # noqa: ANN001, ANN201
        self.seen = (scores.detach().clone(), targets.clone(), mask.clone())
        return scores.sum() * 0


def make_batch(module, samples):  # noqa: ANN001, ANN201
    collate = TrainCollator(module.tokenizer, module.config.query_length, module.config.doc_length)
    return collate(samples)


def test_ragged_lists_are_padded_masked_and_scored_per_query(tiny_module) -> None:
    recorder = Recorder()
    tiny_module.loss_functions, tiny_module.loss_weights = [recorder], [1.0]
    tiny_module.loss_names = ["recorder"]
    tiny_module.eval()
    samples = [
        TrainSample(
            "q1",
            "alpha beta",
            ["a", "b", "c"],
            ["doc one", "doc two", "doc three"],
            [2.0, 1.0, 0.0],
        ),
        TrainSample("q2", "gamma", ["d"], ["doc four"], [1.0]),
    ]
    batch = make_batch(tiny_module, samples)
    assert batch.doc_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.doc_encoding["input_ids"].shape[0] == 4  # only real docs are encoded
    tiny_module.compute_losses(batch)
    scores, targets, mask = recorder.seen
    assert mask.tolist() == batch.doc_mask.tolist()
    assert targets.tolist() == [[2.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    with torch.no_grad():
        q = tiny_module.encode_queries(batch.query_encoding)
        d = tiny_module.encode_docs(batch.doc_encoding)
    assert scores[0].tolist() == pytest.approx((q[0] @ d[:3].T).tolist(), abs=1e-5)
    assert scores[1, 0].item() == pytest.approx((q[1] @ d[3]).item(), abs=1e-5)


def test_total_is_the_weighted_sum_and_every_family_dispatches(tiny_module) -> None:
    tiny_module.loss_functions = [RankNet(), InBatchCrossEntropy(), L2Regularization(1.0, 1.0)]
    tiny_module.loss_weights = [1.0, 0.5, 2.0]
    tiny_module.loss_names = loss_log_names(tiny_module.loss_functions)
    samples = [
        TrainSample("q1", "alpha", ["a", "b"], ["doc one", "doc two"], [1.0, 0.0]),
        TrainSample("q2", "gamma", ["c", "d"], ["doc three", "doc four"], [1.0, 0.0]),
    ]
    values = tiny_module.compute_losses(make_batch(tiny_module, samples))
    expected = values["ranknet"] + 0.5 * values["in_batch_ce"] + 2.0 * values["l2"]
    assert values["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    values["loss"].backward()
    grads = [p.grad for p in tiny_module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.slow  # ~20 s of compilation on 2 cores
def test_compiled_losses_and_gradients_equal_the_eager_ones(tiny_module) -> None:
    from torch._dynamo.utils import counters

    from lossbench.loss import InfoNCE, RankNet

    tiny_module.loss_functions, tiny_module.loss_weights = [RankNet(), InfoNCE()], [1.0, 0.5]
    tiny_module.loss_names = ["ranknet", "infonce"]
    tiny_module.eval()  # no dropout: the two runs see the same network
    samples = [
        TrainSample(f"q{i}", f"query {i}", ["a", "b"], [f"doc {i}", "other doc"], [1.0, 0.0])
        for i in range(3)
    ]
    batch = TrainCollator(tiny_module.tokenizer, 16, 32, fixed_length=True)(samples)

    def losses_and_grads() -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        tiny_module.zero_grad(set_to_none=True)
        values = tiny_module.compute_losses(batch)
        values["loss"].backward()
        return values, [p.grad.clone() for p in tiny_module.parameters() if p.grad is not None]

    eager_values, eager_grads = losses_and_grads()
    tiny_module.compile_encoders()
    graphs = counters["stats"]["unique_graphs"]
    for _ in range(2):  # the second call reuses the first one's graph
        compiled_values, compiled_grads = losses_and_grads()
    assert counters["stats"]["unique_graphs"] - graphs == 1  # one graph, no graph break
    for name in ("ranknet", "infonce", "loss"):
        torch.testing.assert_close(compiled_values[name], eager_values[name], rtol=1e-4, atol=1e-5)
    assert len(compiled_grads) == len(eager_grads)
    for compiled, eager in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-5)


class InBatchRecorder(InBatchCrossEntropy):
    """In-batch cross-entropy that remembers the scores it was given."""

    def __call__(self, scores, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN204
        self.seen = scores.detach().clone()
        return super().__call__(scores, *args, **kwargs)


def test_score_scale_multiplies_what_every_loss_sees_and_nothing_else(tiny_module) -> None:
    samples = [
        TrainSample("q1", "alpha beta", ["a", "b"], ["doc one", "doc two"], [1.0, 0.0]),
        TrainSample("q2", "gamma", ["c", "d"], ["doc three", "doc four"], [1.0, 0.0]),
    ]
    batch = make_batch(tiny_module, samples)
    tiny_module.eval()
    seen = {}
    for scale in (1.0, 20.0):
        tiny_module.config.score_scale = scale
        recorder, in_batch = Recorder(), InBatchRecorder()
        tiny_module.loss_functions, tiny_module.loss_weights = [recorder, in_batch], [1.0, 1.0]
        tiny_module.loss_names = ["recorder", "in_batch"]
        tiny_module.compute_losses(batch)
        with torch.no_grad():  # what indexes and run files get: the vectors, never scaled
            vectors = tiny_module.encode_docs(batch.doc_encoding)
        seen[scale] = (recorder.seen[0], in_batch.seen, vectors)
    assert torch.allclose(seen[20.0][0], 20 * seen[1.0][0], rtol=1e-5, atol=1e-5)
    assert torch.allclose(seen[20.0][1], 20 * seen[1.0][1], rtol=1e-5, atol=1e-5)
    assert torch.equal(seen[20.0][2], seen[1.0][2])


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_score_scale_must_be_positive(scale: float) -> None:
    from lossbench.models import DprConfig

    with pytest.raises(ValueError, match="score_scale=.*must be positive"):
        DprConfig(score_scale=scale)
