"""TupleDataset: streamed sources, sharding over workers and ranks (each tuple once), targets, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from lossbench.data.collection import Collection
from lossbench.data.datasets import TupleDataset
from lossbench.data.sources.formats import DataFormatError
from lossbench.data.streams import TuplesFile, buffer_shuffle

NUM_TRIPLES = 103  # not a multiple of the 4 shards
QUERIES = {f"q{i}": f"query {i}" for i in range(NUM_TRIPLES)}
DOCS = {f"d{i}": f"doc {i}" for i in range(2 * NUM_TRIPLES)}


@pytest.fixture
def triples_file(tmp_path: Path) -> Path:
    path = tmp_path / "triples.tsv"
    path.write_text("".join(f"q{i}\td{2 * i}\td{2 * i + 1}\n" for i in range(NUM_TRIPLES)))
    return path


def read_all(dataset: TupleDataset, num_workers: int) -> list[str]:
    """The query ids one epoch of ``dataset`` yields through a DataLoader with ``num_workers``."""
    loader = DataLoader(dataset, batch_size=8, num_workers=num_workers, collate_fn=list)
    return [sample.query_id for batch in loader for sample in batch]


@pytest.mark.parametrize("source", ["file", "list"])
def test_every_tuple_once_per_epoch_across_two_workers_and_two_ranks(
    source: str, triples_file: Path
) -> None:
    seen: list[str] = []
    per_rank = []
    for rank in (0, 1):
        if source == "file":
            dataset = TupleDataset(str(triples_file), docs=DOCS, queries=QUERIES, seed=3)
        else:
            triples = [(f"q{i}", f"d{2 * i}", f"d{2 * i + 1}") for i in range(NUM_TRIPLES)]
            collection = Collection("c", DOCS, {"train": QUERIES}, {}, triples=triples)
            dataset = TupleDataset(collection, seed=3)
        dataset.set_distributed(rank, 2)
        ids = read_all(dataset, num_workers=2)
        per_rank.append(ids)
        seen += ids
    counts = Counter(seen)
    assert set(counts) == set(QUERIES) and set(counts.values()) == {1}
    if source == "file":  # a rank's share is every other line, whatever its number of workers
        expected = [f"q{i}" for i in range(0, NUM_TRIPLES, 2)]
        assert sorted(per_rank[0], key=lambda q: int(q[1:])) == expected
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= 1


def test_shards_and_shuffle_change_with_the_epoch_but_stay_exact(triples_file: Path) -> None:
    dataset = TupleDataset(str(triples_file), docs=DOCS, queries=QUERIES, seed=0)
    first = [s.query_id for s in dataset]
    second = [s.query_id for s in dataset]
    assert sorted(first) == sorted(second) == sorted(QUERIES)
    assert first != second  # a new order every epoch
    dataset.set_epoch(0)
    assert [s.query_id for s in dataset] == first  # reproducible from (seed, epoch)


def test_unshuffled_file_streams_in_file_order(triples_file: Path) -> None:
    dataset = TupleDataset(str(triples_file), docs=DOCS, queries=QUERIES, shuffle=False)
    samples = list(dataset)
    assert [s.query_id for s in samples] == [f"q{i}" for i in range(NUM_TRIPLES)]
    first = samples[0]
    assert (first.doc_ids, first.targets) == (["d0", "d1"], [1.0, 0.0])
    assert (first.query_text, first.doc_texts) == ("query 0", ["doc 0", "doc 1"])


def test_buffer_shuffle_yields_each_item_once() -> None:
    import random

    items = list(range(1000))
    for size in (0, 1, 7, 5000):
        out = list(buffer_shuffle(iter(items), size, random.Random(1)))
        assert sorted(out) == items
    assert list(buffer_shuffle(iter(items), 7, random.Random(1))) != items


def test_a_file_is_streamed_not_loaded(triples_file: Path) -> None:
    dataset = TupleDataset(str(triples_file), docs=DOCS, queries=QUERIES)
    assert isinstance(dataset.source, TuplesFile)
    assert len(dataset.source) == NUM_TRIPLES
    assert not hasattr(dataset, "__len__")  # an epoch ends when the stream does


def test_score_targets_from_a_five_column_file_and_jsonl_tuples(tmp_path: Path) -> None:
    tsv = tmp_path / "scored.tsv"
    tsv.write_text("q0\td0\td1\t7.5\t2.5\n")
    sample = next(iter(TupleDataset(str(tsv), targets="score", docs=DOCS, queries=QUERIES)))
    assert (sample.doc_ids, sample.targets) == (["d0", "d1"], [7.5, 2.5])
    jsonl = tmp_path / "tuples.jsonl"
    record = {"query_id": "q1", "doc_ids": ["d2", "d3", "d4"], "scores": [3, 2, 1]}
    jsonl.write_text(json.dumps(record) + "\n")
    ordered = next(iter(TupleDataset(str(jsonl), docs=DOCS, queries=QUERIES)))
    assert (ordered.doc_ids, ordered.targets) == (["d2", "d3", "d4"], [2.0, 1.0, 0.0])
    cut = next(
        iter(TupleDataset(str(jsonl), targets="score", num_docs=2, docs=DOCS, queries=QUERIES))
    )
    assert (cut.doc_ids, cut.targets) == (["d2", "d3"], [3.0, 2.0])


def test_score_targets_on_plain_triples_name_the_fix(triples_file: Path) -> None:
    with pytest.raises(ValueError, match="carry no scores; use targets='order'"):
        TupleDataset(str(triples_file), targets="score", docs=DOCS, queries=QUERIES)


def test_a_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("q0\td0\td1\nq1\td2\td3\textra\n")
    with pytest.raises(
        DataFormatError, match=r"bad.tsv:2: expected 'qid<TAB>pos_docid<TAB>neg_docid'"
    ):
        TupleDataset(str(path), docs=DOCS, queries=QUERIES)


def test_tuple_queries_without_text_fail_early(triples_file: Path) -> None:
    with pytest.raises(ValueError, match="tuple query 'q0' has no query text"):
        TupleDataset(str(triples_file), docs=DOCS, queries={"other": "x"})


def test_an_unknown_name_is_neither_file_nor_dataset() -> None:
    with pytest.raises(KeyError, match=r"'no/such/triples' is not a file, and not a dataset id"):
        TupleDataset("no/such/triples")


def test_the_guides_docpairs_id_builds_without_reading_the_data(monkeypatch) -> None:
    """``TupleDataset("msmarco-passage/train/triples-small")`` resolves its docs, queries and docpairs
    from that id (the files themselves are not here: texts are looked up lazily)."""
    from lossbench.data import datasets

    class FakeDocs(dict):
        def __init__(self, dataset_id: str) -> None:
            super().__init__()
            self.dataset_id = dataset_id

    calls = {}
    monkeypatch.setattr(
        "lossbench.data.sources.irds.IrDatasetsDocs",
        lambda dataset_id, fields=None: FakeDocs(dataset_id),
    )
    monkeypatch.setattr(
        "lossbench.data.sources.irds.read_queries",
        lambda dataset_id, fields=None: calls.setdefault("queries", dataset_id) and {},
    )
    monkeypatch.setattr(datasets.TupleDataset, "_check", lambda self, first: None)
    dataset = TupleDataset("msmarco-passage/train/triples-small")
    assert repr(dataset.source) == "IrDatasetsDocPairs('msmarco-passage/train/triples-small')"
    assert dataset.docs.dataset_id == "msmarco-passage/train/triples-small"
    assert calls["queries"] == "msmarco-passage/train/triples-small"


def test_the_data_module_tells_a_stream_its_rank_and_leaves_shuffling_to_it(
    triples_file: Path,
) -> None:
    from types import SimpleNamespace

    import torch

    from lossbench.data.datamodule import LightningIRDataModule

    dataset = TupleDataset(str(triples_file), docs=DOCS, queries=QUERIES)
    module = SimpleNamespace(
        train_collator=lambda fixed_length=False: None,  # the module gives its batches' collator
        device=torch.device("cpu"),
    )
    data_module = LightningIRDataModule(train_dataset=dataset, train_batch_size=4, shuffle=False)
    data_module.trainer = SimpleNamespace(lightning_module=module, global_rank=1, world_size=2)
    loader = data_module.train_dataloader()
    assert (dataset.rank, dataset.world_size, dataset.shuffle) == (1, 2, False)
    assert loader.dataset is dataset
    assert [s.query_id for s in dataset] == [f"q{i}" for i in range(1, NUM_TRIPLES, 2)]
