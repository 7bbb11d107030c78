"""The two Python examples of the loss-functions guide, run as written with ``lossbench`` in place of
``lightning_ir``. Only what needs the network or days is swapped, each swap marked ``# guide: ...``:
the model id (a tiny random BERT folder with MiniLM's tokenizer), the ir_datasets ids (the small
synthetic collection) and the step counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_STEPS = 3


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Stands in for ``bert-base-uncased``: a folder with a tiny random BERT and a real tokenizer."""
    from lossbench.models.backbone import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def collection(data_cache: Path):  # noqa: ANN201
    """Stands in for the msmarco-passage ids: the small synthetic collection (triples and a run)."""
    from lossbench.data import synthetic_collection

    return synthetic_collection(
        data_cache / "data",
        num_docs=150,
        num_train_queries=48,
        num_dev_queries=10,
        num_test_queries=16,
    )


def test_guide_splade_with_flops_and_a_scheduler(bert: str, collection) -> None:
    torch.manual_seed(0)
    # ---- the guide's example ----------------------------------------------------------------
    from torch.optim import AdamW

    from lossbench import (
        BiEncoderModule,
        FLOPSRegularization,
        GenericConstantSchedulerWithLinearWarmup,
        InBatchCrossEntropy,
        LightningIRDataModule,
        LightningIRTrainer,
        TupleDataset,
    )
    from lossbench.models import SpladeConfig

    module = BiEncoderModule(
        model_name_or_path=bert,  # guide: "bert-base-uncased"
        config=SpladeConfig(),
        loss_functions=[
            InBatchCrossEntropy(),
            FLOPSRegularization(query_weight=0.0008, doc_weight=0.0006),
        ],
    )
    module.set_optimizer(AdamW, lr=1e-5)

    data_module = LightningIRDataModule(
        train_dataset=TupleDataset(collection),  # guide: "msmarco-passage/train/triples-small"
        train_batch_size=32,
    )
    scheduler = GenericConstantSchedulerWithLinearWarmup(
        keys=["loss_functions.1.query_weight", "loss_functions.1.doc_weight"],
        num_warmup_steps=1,  # guide: 20_000
        num_delay_steps=1,  # guide: 50_000
    )
    trainer = LightningIRTrainer(max_steps=TINY_STEPS, callbacks=[scheduler])  # guide: 100_000
    trainer.fit(module, data_module)
    # ---- what it did ------------------------------------------------------------------------
    assert trainer.global_step == TINY_STEPS
    metrics = trainer.callback_metrics
    # the last step (n = 2) is past delay + warmup: the full weight, logged as a curve
    assert float(metrics["schedule/loss_functions.1.query_weight"]) == pytest.approx(0.0008)
    assert float(metrics["schedule/loss_functions.1.doc_weight"]) == pytest.approx(0.0006)
    assert module.loss_functions[1].query_weight == 0.0008  # restored after training
    assert torch.isfinite(metrics["train/loss"])
    assert 0 < float(metrics["train/doc_nnz"]) <= module.tokenizer.vocab_size
    assert 0 < float(metrics["train/query_nnz"]) <= module.tokenizer.vocab_size

    # and the trained SPLADE model searches a sparse index, evaluated like a dense run
    from lossbench.evaluation import evaluate_run
    from lossbench.retrieval import SparseIndex, index_corpus, search_split

    index = index_corpus(module, collection, SparseIndex(), batch_size=64)
    stats = index.stats()
    assert stats["docs"] == len(collection.docs) and stats["dim"] == module.tokenizer.vocab_size
    assert 0 < stats["avg_doc_nnz"] <= stats["dim"]
    run = search_split(module, collection, index, "test", k=10)
    assert all(len(docs) == 10 for docs in run.values())
    means = evaluate_run(collection.qrels["test"], run, ["ndcg@10"]).means
    assert 0.0 <= means["ndcg@10"] <= 1.0


def test_guide_knowledge_distillation(bert: str, collection) -> None:
    torch.manual_seed(0)
    # ---- the guide's example ----------------------------------------------------------------
    from torch.optim import AdamW

    from lossbench import (
        BiEncoderModule,
        KLDivergence,
        LightningIRDataModule,
        LightningIRTrainer,
        RunDataset,
    )
    from lossbench.models import DprConfig

    module = BiEncoderModule(
        model_name_or_path=bert,  # guide: "bert-base-uncased"
        config=DprConfig(),
        loss_functions=[KLDivergence()],
    )
    module.set_optimizer(AdamW, lr=1e-5)

    data_module = LightningIRDataModule(
        train_dataset=RunDataset(
            run_path_or_id=collection,  # guide: "msmarco-passage/train/rank-distillm/set-encoder"
            depth=50,
            sample_size=8,
            sampling_strategy="random",
            targets="score",
        ),
        train_batch_size=16,
    )
    before = [p.detach().clone() for p in module.parameters()]
    trainer = LightningIRTrainer(max_steps=TINY_STEPS)  # guide: 50_000
    trainer.fit(module, data_module)
    # ---- what it did ------------------------------------------------------------------------
    assert trainer.global_step == TINY_STEPS
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    changed = [not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True)]
    assert any(changed)
