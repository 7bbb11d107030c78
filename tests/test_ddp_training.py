"""Lightning DDP on 2 CPU processes (gloo): data sharding, gathered losses, sharded indexing.

One spawn of two ranks, each running the tiny model through:

* the module's ``compute_losses`` with ``gather_across_devices`` on its share of a batch, against a
  single process on the whole batch (loss and DDP-averaged gradients);
* a real ``Trainer(strategy="ddp")`` epoch over a streamed TupleDataset (2 DataLoader workers per
  rank), recording the training queries each rank sees;
* retrieval validation during that training, whose corpus encoding is sharded across the ranks;
  rank 0's index must equal a single-process index of the final weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import (
    DDP_DOCS,
    DDP_NUM_DOCS,
    DDP_NUM_TRIPLES,
    DDP_QUERIES,
    ddp_collection,
    gloo_rank_results,
    lightning_ddp_trainer,
    rank_mean,
    tiny_bi_encoder,
)

pytestmark = pytest.mark.slow  # two processes each load the tiny model: about a minute on 2 cores

NUM_TRIPLES = DDP_NUM_TRIPLES  # 12 per rank, 6 per DataLoader worker, batches of 3: 4 steps
NUM_DOCS = DDP_NUM_DOCS  # not a multiple of 2: the index shards differ in size
QUERIES = DDP_QUERIES
DOCS = DDP_DOCS


def tiny_module(loss: Any) -> Any:
    return tiny_bi_encoder(loss, doc_length=16)


def gathered_module_losses(rank: int, world_size: int) -> dict[str, float]:
    """Max differences between the gathered per-rank losses and one process on the whole batch."""
    from lossbench.data.batches import TrainCollator
    from lossbench.data.datasets import TrainSample
    from lossbench.loss import InBatchCrossEntropy

    samples = [
        TrainSample(f"q{i}", QUERIES[f"q{i}"], ["a", "b", "c"][: 2 + i % 2], [], [2.0, 1.0, 0.0])
        for i in range(5)
    ]
    for sample in samples:
        sample.doc_texts = [DOCS[f"d{(i + len(sample.query_id)) % NUM_DOCS}"] for i in range(3)]
        sample.doc_texts = sample.doc_texts[: len(sample.doc_ids)]
        sample.targets = sample.targets[: len(sample.doc_ids)]
    shares = [samples[:3], samples[3:]]  # uneven: 3 and 2 queries, 3 and 2 docs per query

    def loss_and_gradients(gather: bool, batch_samples: list) -> tuple[torch.Tensor, list]:
        module = tiny_module(InBatchCrossEntropy(gather_across_devices=gather))
        module.eval()  # no dropout: the two computations must see the same network
        collate = TrainCollator(module.tokenizer, 16, 16)
        value = module.compute_losses(collate(batch_samples))["loss"]
        value.backward()
        return value.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]

    value, gradients = loss_and_gradients(True, shares[rank])
    mean_value, mean_gradients = rank_mean(value), [rank_mean(g) for g in gradients]
    expected_value, expected_gradients = loss_and_gradients(False, samples)  # not gathered
    return {
        "value": abs(mean_value.item() - expected_value.item()),
        "gradient": max(
            (g - e).abs().max().item()
            for g, e in zip(mean_gradients, expected_gradients, strict=True)
        ),
        "gradient_scale": max(e.abs().max().item() for e in expected_gradients),
    }


def _worker(rank: int, world_size: int, folder: Path) -> None:
    import lightning as L

    from lossbench.data import LightningIRDataModule, TupleDataset
    from lossbench.loss import InBatchCrossEntropy
    from lossbench.retrieval import ExactDenseIndex, index_corpus
    from lossbench.training.validation import RetrievalValidation

    results: dict[str, Any] = {"module_losses": gathered_module_losses(rank, world_size)}

    data = ddp_collection()
    seen: list[str] = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, *args: Any) -> None:
            seen.extend(batch.query_ids)

    validation = RetrievalValidation(data, ExactDenseIndex, every_n_steps=2, k=5, batch_size=4)
    module = tiny_module(InBatchCrossEntropy(gather_across_devices=True))
    trainer = lightning_ddp_trainer(
        rank, world_size, max_epochs=1, callbacks=[Record(), validation]
    )
    data_module = LightningIRDataModule(TupleDataset(data), train_batch_size=3, num_workers=2)
    trainer.fit(module, data_module)
    results.update(seen=seen, steps=trainer.global_step, history=validation.history)
    if rank == 0:
        assert validation.last_index is not None
        single = index_corpus(module, data, ExactDenseIndex(), batch_size=4)
        results["sharded"] = dict(
            zip(validation.last_index.doc_ids, validation.last_index._matrix(), strict=True)
        )
        results["single"] = dict(zip(single.doc_ids, single._matrix(), strict=True))
        results["last_step"] = validation.last_step
    results["weights"] = next(module.parameters()).detach().clone()
    torch.save(results, folder / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("ddp")
    return gloo_rank_results(_worker, folder)


def test_module_losses_gathered_across_ranks_equal_one_process(ranks: list[dict]) -> None:
    for results in ranks:
        differences = results["module_losses"]
        assert differences["value"] < 1e-5
        assert differences["gradient"] < 1e-5 * max(1.0, differences["gradient_scale"])


def test_each_training_tuple_is_seen_once_per_epoch_by_exactly_one_rank(ranks: list[dict]) -> None:
    seen = [results["seen"] for results in ranks]
    assert sorted(seen[0] + seen[1]) == sorted(QUERIES)  # every tuple, once
    assert len(seen[0]) == len(seen[1]) == NUM_TRIPLES // 2
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4


def test_ddp_keeps_the_ranks_weights_equal(ranks: list[dict]) -> None:
    assert torch.equal(ranks[0]["weights"], ranks[1]["weights"])


def test_sharded_validation_index_equals_the_single_process_index(ranks: list[dict]) -> None:
    sharded, single = ranks[0]["sharded"], ranks[0]["single"]
    assert sorted(sharded) == sorted(single) == sorted(DOCS)
    for doc_id, vector in single.items():
        torch.testing.assert_close(sharded[doc_id], vector, atol=1e-5, rtol=1e-5)
    assert ranks[0]["last_step"] == 4
    assert [step for step, _ in ranks[0]["history"]] == [2, 4]  # every 2 steps; the end is step 4
    assert ranks[1]["history"] == []  # rank 0 alone evaluates and logs
