"""In-batch losses across 2 gloo processes equal one process on the concatenated (global) batch.

Each rank embeds its share of a small deterministic batch with a shared linear layer, scores it with
``gather_across_devices`` on or off, and backpropagates; the gradients are then averaged over the
ranks, as DDP does. With gathering, the averaged gradient and the ranks' mean loss must equal a single
process's on the whole batch; without it, each rank's loss is its own batch's, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lossbench.loss import InBatchCrossEntropy, InBatchLossFunction, ScoreBasedInBatchCrossEntropy
from lossbench.training.distributed import in_batch_inputs
from tests.helpers import rank_mean

WORLD_SIZE = 2
INPUT_DIM, DIM = 5, 4
# (queries, docs per query) of each rank: equal shares, and uneven ones (a last, smaller batch)
CASES: dict[str, list[tuple[int, int]]] = {"equal": [(3, 2), (3, 2)], "uneven": [(3, 3), (2, 2)]}
LOSSES: dict[str, Callable[[bool], InBatchLossFunction]] = {
    "in_batch_ce": lambda gather: InBatchCrossEntropy(gather_across_devices=gather),
    "first_first": lambda gather: InBatchCrossEntropy(
        "first", "first", gather_across_devices=gather
    ),
    "non_first_t05": lambda gather: InBatchCrossEntropy(
        "first", "all_and_non_first", temperature=0.5, gather_across_devices=gather
    ),
    "score_based": lambda gather: ScoreBasedInBatchCrossEntropy(0.5, gather_across_devices=gather),
}

EVERY_CASE_AND_LOSS = pytest.mark.parametrize(
    ("case", "name"), [(case, name) for name in LOSSES for case in CASES]
)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def global_batch(case: str) -> tuple[Batch, torch.Tensor]:
    """``(query inputs (Q, I), doc inputs (Q, D, I), targets (Q, D), mask (Q, D))`` and weights."""
    sizes = CASES[case]
    generator = torch.Generator().manual_seed(0)
    num_queries, num_docs = sum(q for q, _ in sizes), max(d for _, d in sizes)
    queries = torch.randn(num_queries, INPUT_DIM, generator=generator)
    docs = torch.randn(num_queries, num_docs, INPUT_DIM, generator=generator)
    targets = torch.randn(num_queries, num_docs, generator=generator)
    mask = torch.zeros(num_queries, num_docs, dtype=torch.bool)
    start = 0
    for count, width in sizes:
        mask[start : start + count, :width] = True
        start += count
    if case == "uneven":
        mask[1, 2] = False  # a padded doc in rank 0's batch
        mask[4, 0] = False  # rank 1's last query has no positive in first place
    weight = torch.randn(INPUT_DIM, DIM, generator=generator)
    return (queries, docs, targets, mask), weight


def rank_batch(case: str, rank: int) -> Batch:
    """Rank ``rank``'s share: its rows, cut to its own number of docs per query."""
    (queries, docs, targets, mask), _ = global_batch(case)
    sizes = CASES[case]
    start = sum(q for q, _ in sizes[:rank])
    count, width = sizes[rank]
    rows = slice(start, start + count)
    return queries[rows], docs[rows, :width], targets[rows, :width], mask[rows, :width]


def loss_and_gradient(
    loss: InBatchLossFunction, batch: Batch, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss as the training module computes it, and its gradient on the shared weights."""
    queries, docs, targets, mask = batch
    weight = weight.clone().requires_grad_()
    inputs = in_batch_inputs(
        queries @ weight, docs @ weight, mask, targets, loss.gather_across_devices
    )
    value = inputs.apply(loss)
    value.backward()
    assert weight.grad is not None
    return value.detach(), weight.grad


def _worker(rank: int, world_size: int, folder: Path) -> None:
    """One gloo rank's results, saved to ``folder`` (run by conftest's ``gloo_results``)."""
    results = {}
    for case in CASES:
        _, weight = global_batch(case)
        for name, make in LOSSES.items():
            for gather in (True, False):
                value, gradient = loss_and_gradient(make(gather), rank_batch(case, rank), weight)
                # the ranks' mean loss (what the global batch's loss is) and DDP's gradient
                results[case, name, gather] = (value, rank_mean(value), rank_mean(gradient))
    torch.save(results, folder / f"rank{rank}.pt")


@EVERY_CASE_AND_LOSS
def test_gathered_loss_and_ddp_gradient_equal_one_process_on_the_global_batch(
    gloo_results: list[dict], case: str, name: str
) -> None:
    batch, weight = global_batch(case)
    expected_value, expected_gradient = loss_and_gradient(LOSSES[name](True), batch, weight)
    for results in gloo_results:
        _, mean, gradient = results[case, name, True]
        torch.testing.assert_close(mean, expected_value, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(gradient, expected_gradient, atol=1e-6, rtol=1e-6)


@EVERY_CASE_AND_LOSS
def test_without_gathering_each_rank_sees_only_its_own_batch(
    gloo_results: list[dict], case: str, name: str
) -> None:
    _, weight = global_batch(case)
    local = [
        loss_and_gradient(LOSSES[name](False), rank_batch(case, r), weight)
        for r in range(WORLD_SIZE)
    ]
    for rank, results in enumerate(gloo_results):
        value, _, gradient = results[case, name, False]
        torch.testing.assert_close(value, local[rank][0], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(gradient, sum(g for _, g in local) / WORLD_SIZE)
    # gathering does change the loss: the other rank's docs are extra negatives
    assert not torch.allclose(gloo_results[0][case, name, True][0], local[0][0])


def test_one_process_ignores_the_flag() -> None:
    batch, weight = global_batch("uneven")
    for make in LOSSES.values():
        gathered = loss_and_gradient(make(True), batch, weight)
        plain = loss_and_gradient(make(False), batch, weight)
        assert torch.equal(gathered[0], plain[0]) and torch.equal(gathered[1], plain[1])


def test_gathered_layout_needs_the_mask_of_every_block() -> None:
    scores = torch.zeros(2, 12)  # 2 local queries against 4 blocks of 3 docs
    loss = InBatchCrossEntropy()
    with pytest.raises(ValueError, match="mask of every block"):
        loss(scores, None, torch.ones(3, 3, dtype=torch.bool), query_offset=0)
    with pytest.raises(ValueError, match="query_offset"):
        loss(scores, None, torch.ones(4, 3, dtype=torch.bool), query_offset=3)
    with pytest.raises(ValueError, match="true or false"):
        InBatchCrossEntropy(gather_across_devices="false")  # type: ignore[arg-type]
