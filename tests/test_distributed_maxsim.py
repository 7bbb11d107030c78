"""In-batch MaxSim across 2 gloo processes equals one process on the global batch.

Each rank embeds its share of a deterministic batch of token sequences with a shared linear layer
(zero inputs, the tokens that do not count, stay zero vectors), scores its queries against every
rank's docs with ColBERT's MaxSim (``gather_across_devices``), and backpropagates; the ranks' docs
have different numbers of queries, docs per query and tokens per doc, so the gathered docs are
padded on every axis. The ranks' mean loss and DDP-averaged gradient must equal a single process's
on the whole batch, its docs padded to the longest.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lossbench.loss import InBatchCrossEntropy, InBatchLossFunction, ScoreBasedInBatchCrossEntropy
from lossbench.models.scoring import MaxSim
from lossbench.training.distributed import in_batch_inputs
from tests.helpers import rank_mean

WORLD_SIZE = 2
INPUT_DIM, DIM, QUERY_LENGTH = 5, 4, 3
# (queries, docs per query, tokens per doc) of each rank: a smaller last batch with shorter docs
SIZES = [(3, 3, 6), (2, 2, 4)]
LOSSES = {
    "in_batch_ce": lambda: InBatchCrossEntropy(gather_across_devices=True),
    "score_based": lambda: ScoreBasedInBatchCrossEntropy(0.5, gather_across_devices=True),
}

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def global_batch() -> tuple[Batch, torch.Tensor]:
    """``(queries (Q, Lq, I), docs (Q, D, Ld, I), targets (Q, D), mask (Q, D))`` and the weights;
    tokens past a rank's length, and a few inside, are zero (they do not count)."""
    generator = torch.Generator().manual_seed(0)
    num_queries = sum(q for q, _, _ in SIZES)
    num_docs, length = max(d for _, d, _ in SIZES), max(t for _, _, t in SIZES)
    queries = torch.randn(num_queries, QUERY_LENGTH, INPUT_DIM, generator=generator)
    docs = torch.randn(num_queries, num_docs, length, INPUT_DIM, generator=generator)
    targets = torch.randn(num_queries, num_docs, generator=generator)
    mask = torch.zeros(num_queries, num_docs, dtype=torch.bool)
    counts = torch.zeros(num_queries, num_docs, length, dtype=torch.bool)
    start = 0
    for count, width, tokens in SIZES:
        mask[start : start + count, :width] = True
        counts[start : start + count, :width, :tokens] = True
        start += count
    counts[0, 1, 2:] = False  # a short doc inside rank 0's batch
    counts[3, 0, 1] = False  # a masked (punctuation) token in rank 1's
    queries[4, 2] = 0.0  # a query token that does not count
    mask[1, 2] = False  # a padded candidate
    docs = docs * counts.unsqueeze(-1)
    weight = torch.randn(INPUT_DIM, DIM, generator=generator)
    return (queries, docs, targets, mask), weight


def rank_batch(rank: int) -> Batch:
    """Rank ``rank``'s share, cut to its own docs per query and tokens per doc."""
    (queries, docs, targets, mask), _ = global_batch()
    start = sum(q for q, _, _ in SIZES[:rank])
    count, width, tokens = SIZES[rank]
    rows = slice(start, start + count)
    return queries[rows], docs[rows, :width, :tokens], targets[rows, :width], mask[rows, :width]


def loss_and_gradient(
    loss: InBatchLossFunction, batch: Batch, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss as the training module computes it for a ColBERT model, and its weight gradient."""
    queries, docs, targets, mask = batch
    weight = weight.clone().requires_grad_()
    inputs = in_batch_inputs(queries @ weight, docs @ weight, mask, targets, True, MaxSim())
    value = inputs.apply(loss)
    value.backward()
    assert weight.grad is not None
    return value.detach(), weight.grad


def _worker(rank: int, world_size: int, folder: Path) -> None:
    """One gloo rank's results, saved to ``folder`` (run by conftest's ``gloo_results``)."""
    _, weight = global_batch()
    results = {}
    for name, make in LOSSES.items():
        value, gradient = loss_and_gradient(make(), rank_batch(rank), weight)
        # the ranks' mean loss (what the global batch's loss is) and DDP's gradient
        results[name] = (rank_mean(value), rank_mean(gradient))
    torch.save(results, folder / f"rank{rank}.pt")


@pytest.mark.parametrize("name", list(LOSSES))
def test_gathered_maxsim_equals_one_process_on_the_global_batch(
    gloo_results: list[dict], name: str
) -> None:
    batch, weight = global_batch()
    expected_value, expected_gradient = loss_and_gradient(LOSSES[name](), batch, weight)
    for mean, gradient in (results[name] for results in gloo_results):
        torch.testing.assert_close(mean, expected_value, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(gradient, expected_gradient, atol=1e-6, rtol=1e-6)
    local, _ = loss_and_gradient(LOSSES[name](), rank_batch(0), weight)
    assert not torch.allclose(local, expected_value)  # the other rank's docs do count
