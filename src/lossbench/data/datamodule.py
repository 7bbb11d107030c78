"""LightningIRDataModule: training and inference DataLoaders that tokenize in their workers."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lossbench.data.batches import InferenceCollator
from lossbench.data.datasets import DocDataset
from lossbench.data.worker_context import worker_context


class LightningIRDataModule(L.LightningDataModule):
    """DataLoaders for a training dataset (and optional inference datasets).

    The tokenizer and the max lengths come from the module being trained (``trainer.lightning_module``),
    so the data module needs no model arguments, as in lightning-ir. Tokenization happens in the
    collate function, i.e. inside the DataLoader workers when ``num_workers > 0``, off the training
    step's critical path.

    Args:
        train_dataset: a TupleDataset or RunDataset.
        train_batch_size: queries per training batch.
        inference_datasets: Doc/QueryDatasets for ``predict_dataloader``.
        inference_batch_size: texts per inference batch.
        num_workers: DataLoader worker processes (0 tokenizes in the main process).
        shuffle: shuffle the training data every epoch. A streaming (iterable) dataset such as
            TupleDataset shuffles itself; False turns its shuffling off. It is also told the
            Trainer's rank and world size, so each DDP rank reads its own share.
    """

    def __init__(
        self,
        train_dataset: Dataset | None = None,
        train_batch_size: int = 32,
        inference_datasets: Sequence[Dataset] | None = None,
        inference_batch_size: int = 128,
        num_workers: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.train_dataset = train_dataset
        self.train_batch_size = train_batch_size
        self.inference_datasets = list(inference_datasets or [])
        self.inference_batch_size = inference_batch_size
        self.num_workers = num_workers
        self.shuffle = shuffle

    def _module(self):  # type: ignore[no-untyped-def]
        if self.trainer is None or self.trainer.lightning_module is None:
            raise RuntimeError(
                "LightningIRDataModule needs to be attached to a Trainer with a module"
            )
        return self.trainer.lightning_module

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("LightningIRDataModule has no train_dataset")
        module = self._module()
        # the module's own batches (a bi-encoder's queries and docs, a cross-encoder's pairs);
        # compiled: one shape per step
        collate = module.train_collator(fixed_length=getattr(module, "compiled", False))
        streaming = isinstance(self.train_dataset, IterableDataset)
        if streaming:
            if not self.shuffle and hasattr(self.train_dataset, "shuffle"):
                self.train_dataset.shuffle = False
            if hasattr(self.train_dataset, "set_distributed") and self.trainer is not None:
                self.train_dataset.set_distributed(
                    self.trainer.global_rank, self.trainer.world_size
                )
        return DataLoader(
            self.train_dataset,
            batch_size=self.train_batch_size,
            shuffle=None if streaming else self.shuffle,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            multiprocessing_context=worker_context(self.num_workers),
            pin_memory=module.device.type == "cuda",
        )

    def predict_dataloader(self) -> list[DataLoader]:
        module = self._module()
        loaders = []
        for dataset in self.inference_datasets:
            is_docs = isinstance(dataset, DocDataset)
            length = module.config.doc_length if is_docs else module.config.query_length
            loaders.append(
                DataLoader(
                    dataset,
                    batch_size=self.inference_batch_size,
                    collate_fn=InferenceCollator(module.tokenizer, length),
                    num_workers=self.num_workers,
                    multiprocessing_context=worker_context(self.num_workers),
                )
            )
        return loaders
