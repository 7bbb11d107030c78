"""GradCache (grad_cache.chunk_size): the cached step's loss and gradients equal the plain step's.

For every in-batch loss (found by its base class in the registry), on the three model families
(dense, SPLADE with a regularizer, ColBERT), with chunks that do and do not divide the batch, on a
ragged batch (padded docs), in float64: without dropout the cached loss and every parameter's gradient equal
the uncached computation's. With dropout, they equal the chunk-by-chunk computation with a graph
under the same seed: the re-encoding draws the first pass's dropout masks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lossbench.data.batches import TrainBatch, TrainCollator
from lossbench.loss import (
    LOSSES,
    FLOPSRegularization,
    InBatchCrossEntropy,
    InBatchLossFunction,
    LossFunction,
    RankNet,
)
from lossbench.models import BiEncoderModule, ColConfig, DprConfig, SpladeConfig
from lossbench.models.backbone import TINY_BERT, minilm_path
from lossbench.models.ranking_module import loss_log_names
from tests.helpers import in_batch_losses, ragged_samples

IN_BATCH_LOSSES: dict[str, Callable[[], InBatchLossFunction]] = in_batch_losses()

MODELS: dict[str, Callable[[], Any]] = {
    "dense": lambda: DprConfig(
        query_length=16,
        doc_length=16,
        pooling="mean",
        random_init=True,
        backbone_overrides=TINY_BERT,
    ),  # fmt: skip
    "splade": lambda: SpladeConfig(
        query_length=16, doc_length=16, random_init=True, backbone_overrides=TINY_BERT
    ),
    "colbert": lambda: ColConfig(
        query_length=16,
        doc_length=16,
        random_init=True,
        backbone_overrides=TINY_BERT,
        embedding_dim=8,
    ),  # fmt: skip
}


def test_every_in_batch_loss_of_the_registry_is_tested_here() -> None:
    tested = {type(make()) for make in IN_BATCH_LOSSES.values()}
    in_batch = {cls for cls in LOSSES.values() if issubclass(cls, InBatchLossFunction)}
    assert in_batch <= tested


@pytest.fixture(
    scope="module",
    # SPLADE's vocabulary-sized vectors and ColBERT's float64 MaxSim make their steps seconds each:
    # the fast suite checks the mechanism on the dense model, `make test-all` on all three
    params=[n if n == "dense" else pytest.param(n, marks=pytest.mark.slow) for n in MODELS],
)
def module(request: pytest.FixtureRequest) -> BiEncoderModule:
    """In float64: the two computations sum in different orders (a batch's matrix product against
    a chunk's), which float32 rounding turns into differences that SPLADE's large scores amplify
    beyond 1e-5; float64 leaves only the algorithm's own differences."""
    torch.manual_seed(0)
    return BiEncoderModule(minilm_path(), MODELS[request.param]()).double()


def with_losses(module: BiEncoderModule, losses: list[LossFunction]) -> BiEncoderModule:
    module.loss_functions, module.loss_weights = losses, [1.0] * len(losses)
    module.loss_names = loss_log_names(losses)
    module.grad_cache_chunk_size = None
    return module


def ragged_batch(module: BiEncoderModule) -> TrainBatch:
    """5 queries with 3, 2, 3, 1 and 3 docs: padded blocks, and a chunk of 2 that does not divide
    either the queries (5) or the docs (12)."""
    return TrainCollator(module.tokenizer, 16, 16)(ragged_samples([3, 2, 3, 1, 3]))


def step(
    module: BiEncoderModule, batch: TrainBatch, chunk_size: int | None, seed: int = 0
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """One training step's values and every parameter's gradient (zeros where none)."""
    module.zero_grad(set_to_none=True)
    module.set_grad_cache(chunk_size)
    torch.manual_seed(seed)
    values = module.compute_losses(batch)
    module.backward(values["loss"])
    grads = [
        p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()
    ]
    return {name: value.detach() for name, value in values.items()}, grads


def losses_for(module: BiEncoderModule, name: str) -> list[LossFunction]:
    losses: list[LossFunction] = [IN_BATCH_LOSSES[name]()]
    if module.config.sparse:
        losses.append(FLOPSRegularization(1e-2, 1e-2))  # a regularizer sees the cached embeddings
    return losses


def assert_same_step(
    expected: tuple[dict[str, torch.Tensor], list[torch.Tensor]],
    actual: tuple[dict[str, torch.Tensor], list[torch.Tensor]],
) -> None:
    (expected_values, expected_grads), (values, grads) = expected, actual
    assert expected_values.keys() == values.keys()
    for name, value in values.items():
        torch.testing.assert_close(value, expected_values[name], atol=1e-5, rtol=1e-5)
    assert any(g.abs().sum() > 0 for g in expected_grads)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


CASES = [(name, 2) for name in IN_BATCH_LOSSES] + [("in_batch_ce", 1), ("in_batch_ce", 5)]
"""Every loss with chunks of 2 (dividing neither the 5 queries nor the 12 docs); chunks of one
text and of the whole query batch once."""


@pytest.mark.parametrize(("loss_name", "chunk_size"), CASES)
def test_cached_loss_and_gradients_equal_the_uncached_step(
    module: BiEncoderModule, loss_name: str, chunk_size: int
) -> None:
    with_losses(module, losses_for(module, loss_name)).eval()  # no dropout
    batch = ragged_batch(module)
    uncached = step(module, batch, None)
    assert_same_step(uncached, step(module, batch, chunk_size))


def chunked_with_graph(module: BiEncoderModule, chunk_size: int) -> Callable[..., Any]:
    """``_embed_batch`` that encodes chunk by chunk, with a graph: what GradCache must equal."""

    def encode(encoding: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        size = encoding["input_ids"].shape[0]
        parts = [
            module.encode({k: v[i : i + chunk_size] for k, v in encoding.items()}, kind)
            for i in range(0, size, chunk_size)
        ]
        return torch.cat(parts)

    return lambda batch: (
        encode(batch.query_encoding, "query"),
        encode(batch.doc_encoding, "doc"),
    )


@pytest.mark.parametrize("loss_name", ["in_batch_ce", "score_based"])
def test_with_dropout_the_re_encoding_draws_the_first_passs_masks(
    module: BiEncoderModule, loss_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_losses(module, losses_for(module, loss_name)).train()
    batch = ragged_batch(module)
    cached = step(module, batch, 2, seed=3)
    after_cached = torch.get_rng_state()
    other_seed = step(module, batch, 2, seed=4)
    assert not torch.allclose(other_seed[0]["loss"], cached[0]["loss"])  # dropout is on
    with monkeypatch.context() as patch:
        patch.setattr(module, "_embed_batch", chunked_with_graph(module, 2))
        reference = step(module, batch, None, seed=3)
        assert torch.equal(torch.get_rng_state(), after_cached)  # the RNG moved on alike
    assert_same_step(reference, cached)


def test_false_negatives_dropped_are_logged_with_and_without_the_cache() -> None:
    torch.manual_seed(0)
    module = BiEncoderModule(minilm_path(), MODELS["dense"]())
    with_losses(module, [InBatchCrossEntropy(false_negative_margin=1e6)]).eval()
    batch = ragged_batch(module)
    for chunk_size in (None, 2):
        values, _ = step(module, batch, chunk_size)
        # a huge margin drops every competitor of the 5 queries: 12 docs - its own positive
        assert values["false_negatives_dropped"].item() == 5 * 11


def test_a_scoring_loss_is_refused_by_the_cache() -> None:
    torch.manual_seed(0)
    module = BiEncoderModule(minilm_path(), MODELS["dense"](), loss_functions=[RankNet()])
    with pytest.raises(ValueError, match=r"RankNet: a loss over each query's own candidates"):
        module.set_grad_cache(2)
    with pytest.raises(ValueError, match=r"chunk_size must be null \(off\) or an integer >= 1"):
        module.set_grad_cache(0)
