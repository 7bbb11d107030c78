"""GradCache under DDP (2 gloo processes) composes with ``gather_across_devices``.

* Module level, for every in-batch loss with gathering: each rank's cached loss and gradients equal
  its uncached (gathered) ones, and their average over the ranks equals one process's uncached step
  on the whole batch (uneven shares: 3 and 2 queries, 3 and 2 docs per query).
* Lightning ``Trainer(strategy="ddp")`` (slow): a cached fit turns DDP's own gradient sync off and
  averages the gradients itself; its weights equal an uncached fit's and stay equal across ranks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import (
    gloo_rank_results,
    in_batch_losses,
    lightning_ddp_trainer,
    ragged_samples,
    rank_mean,
    tiny_bi_encoder,
)

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def tiny_module(loss: Any) -> Any:
    return tiny_bi_encoder(loss, doc_length=16, backbone_overrides=NO_DROPOUT)


def samples() -> list[Any]:
    return ragged_samples([3, 3, 2, 2, 2])


def step(loss: Any, batch_samples: list[Any], chunk_size: int | None) -> tuple[float, list]:
    from lossbench.data.batches import TrainCollator

    module = tiny_module(loss).double().eval()
    module.set_grad_cache(chunk_size)
    value = module.compute_losses(TrainCollator(module.tokenizer, 16, 16)(batch_samples))["loss"]
    module.backward(value)
    grads = [
        p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()
    ]
    return value.item(), grads


def _module_worker(rank: int, world_size: int, folder: Path) -> None:
    everything = samples()
    share = everything[:3] if rank == 0 else everything[3:]
    differences: dict[str, dict[str, float]] = {}
    for name, make in in_batch_losses().items():
        loss = make()
        loss.gather_across_devices = True
        uncached_value, uncached = step(loss, share, None)
        cached_value, cached = step(loss, share, 2)
        averaged = [rank_mean(g) for g in cached]
        mean_value = rank_mean(torch.tensor(cached_value, dtype=torch.float64)).item()
        single_value, single = step(make(), everything, None)  # one process, not gathered
        if loss.max_num_neg_samples is not None:  # negatives drawn at random: the draws differ
            single_value, single = mean_value, averaged
        differences[name] = {
            "rank_value": abs(cached_value - uncached_value),
            "rank_gradient": max(
                (a - b).abs().max().item() for a, b in zip(cached, uncached, strict=True)
            ),
            "global_value": abs(mean_value - single_value),
            "global_gradient": max(
                (a - b).abs().max().item() for a, b in zip(averaged, single, strict=True)
            ),
            "gradient_scale": max(g.abs().max().item() for g in single),
        }
    torch.save(differences, folder / f"rank{rank}.pt")


def test_cached_gathered_steps_equal_uncached_ones_on_two_processes(tmp_path: Path) -> None:
    for differences in gloo_rank_results(_module_worker, tmp_path):
        assert set(differences) == set(in_batch_losses())
        for name, found in differences.items():
            assert found["gradient_scale"] > 0, name
            for key in ("rank_value", "rank_gradient", "global_value", "global_gradient"):
                assert found[key] < 1e-5, (name, key, found)


def _fit_worker(rank: int, world_size: int, folder: Path) -> None:
    import lightning as L

    from lossbench.data import LightningIRDataModule, TupleDataset
    from lossbench.loss import InBatchCrossEntropy
    from tests.helpers import ddp_collection

    weights: dict[Any, list[torch.Tensor]] = {}
    for chunk_size in (None, 1):
        module = tiny_module(InBatchCrossEntropy(gather_across_devices=True))
        module.set_optimizer(torch.optim.SGD, lr=0.5)
        module.set_grad_cache(chunk_size)
        trainer = lightning_ddp_trainer(rank, world_size, max_steps=2, gradient_clip_val=1.0)
        data = LightningIRDataModule(
            TupleDataset(ddp_collection()), train_batch_size=3, num_workers=0
        )
        L.seed_everything(0, verbose=False)
        trainer.fit(module, data)
        weights[chunk_size] = [p.detach().clone() for p in module.parameters()]
        weights["initial"] = [
            p.detach().clone() for p in tiny_module(module.loss_functions[0]).parameters()
        ]
    torch.save(weights, folder / f"rank{rank}.pt")


@pytest.mark.slow  # two processes, two Lightning fits each
def test_a_cached_ddp_fit_trains_the_weights_of_an_uncached_one(tmp_path: Path) -> None:
    ranks = gloo_rank_results(_fit_worker, tmp_path)
    for weights in ranks:
        trained = zip(weights[None], weights["initial"], strict=True)
        assert any(not torch.equal(a, b) for a, b in trained)  # the fits moved the weights
        for cached, uncached in zip(weights[1], weights[None], strict=True):
            torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=1e-5)
    for a, b in zip(ranks[0][1], ranks[1][1], strict=True):
        assert torch.equal(a, b)  # the ranks agree
