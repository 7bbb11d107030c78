"""RunDataset on a small hand-written run: every sampling strategy and target kind, short lists, errors."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from lossbench.data.batches import TrainCollator
from lossbench.data.datasets import RunDataset, TrainSample

# q1's lines are out of order on purpose: ranks come from the scores. q2 ties: the file's rank
# decides (x before y). q3 has a single candidate (a short list).
RUN = """\
q1 Q0 c 3 3.0 t
q1 Q0 a 1 5.0 t
q1 Q0 e 5 1.0 t
q1 Q0 b 2 4.0 t
q1 Q0 d 4 2.0 t
q2 Q0 y 2 9.0 t
q2 Q0 x 1 9.0 t
q3 Q0 z 1 0.5 t
"""
QUERIES = {"q1": "first query", "q2": "second query", "q3": "third query"}
DOCS = {d: f"text of {d}" for d in "abcdexyz"}
QRELS = {"q1": {"b": 2, "d": 1, "a": 0}, "q2": {"y": 1}}


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.run"
    path.write_text(RUN)
    return path


def make(run_file: Path, **options) -> RunDataset:
    return RunDataset(str(run_file), docs=DOCS, queries=QUERIES, qrels=QRELS, **options)


def by_query(dataset: RunDataset) -> dict[str, TrainSample]:
    return {sample.query_id: sample for sample in (dataset[i] for i in range(len(dataset)))}


def test_top_keeps_rank_order_and_scores(run_file: Path) -> None:
    samples = by_query(make(run_file, depth=3, targets="score"))
    assert samples["q1"].doc_ids == ["a", "b", "c"]
    assert samples["q1"].targets == [5.0, 4.0, 3.0]
    assert samples["q1"].doc_texts == ["text of a", "text of b", "text of c"]
    assert samples["q1"].query_text == "first query"
    assert samples["q2"].doc_ids == ["x", "y"]  # equal scores: the file's rank breaks the tie
    assert samples["q3"].doc_ids == ["z"]


def test_none_targets_mean_score(run_file: Path) -> None:
    assert by_query(make(run_file, sample_size=2))["q1"].targets == [5.0, 4.0]


def test_rank_targets_are_depth_minus_rank_plus_one(run_file: Path) -> None:
    assert by_query(make(run_file, depth=3, targets="rank"))["q1"].targets == [3.0, 2.0, 1.0]
    # depth 10 > list length: still depth - rank + 1
    assert by_query(make(run_file, depth=10, targets="rank"))["q1"].targets == [10, 9, 8, 7, 6]
    # no depth: the list's length stands for it
    assert by_query(make(run_file, targets="rank"))["q1"].targets == [5.0, 4.0, 3.0, 2.0, 1.0]


def test_relevance_targets_come_from_qrels(run_file: Path) -> None:
    samples = by_query(make(run_file, targets="relevance"))
    assert samples["q1"].targets == [0.0, 2.0, 0.0, 1.0, 0.0]  # a b c d e
    assert samples["q2"].targets == [0.0, 1.0]
    assert samples["q3"].targets == [0.0]  # unjudged


def test_relevance_is_the_max_over_qrels_iterations(run_file: Path, tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 b 1\nq1 1 b 3\nq1 0 d 1\n")
    dataset = RunDataset(
        str(run_file), docs=DOCS, queries=QUERIES, qrels=str(qrels), targets="relevance"
    )
    assert by_query(dataset)["q1"].targets == [0.0, 3.0, 0.0, 1.0, 0.0]


def test_normalized_targets_are_min_max_per_query(run_file: Path) -> None:
    samples = by_query(make(run_file, targets="relevance", normalize_targets=True))
    assert samples["q1"].targets == [0.0, 1.0, 0.0, 0.5, 0.0]
    assert samples["q3"].targets == [0.0]  # a constant list: zeros, not NaN
    scores = by_query(make(run_file, depth=3, targets="score", normalize_targets=True))
    assert scores["q1"].targets == [1.0, 0.5, 0.0]
    assert scores["q2"].targets == [0.0, 0.0]  # tied scores


def test_random_draws_k_docs_uniformly_in_rank_order(run_file: Path) -> None:
    torch.manual_seed(0)
    dataset = make(run_file, sample_size=2, sampling_strategy="random")
    index = [s.query_id for s in (dataset[i] for i in range(len(dataset)))].index("q1")
    counts: Counter[str] = Counter()
    for _ in range(2000):
        sample = dataset[index]
        assert len(sample.doc_ids) == 2 and len(set(sample.doc_ids)) == 2
        assert sample.doc_ids == sorted(sample.doc_ids)  # a..e is rank order
        assert sample.targets == [5.0 - "abcde".index(d) for d in sample.doc_ids]
        counts.update(sample.doc_ids)
    for doc in "abcde":  # each doc is drawn with probability 2/5
        assert counts[doc] / 2000 == pytest.approx(0.4, abs=0.05)


def test_log_random_weights_ranks_by_one_over_log_one_plus_rank(run_file: Path) -> None:
    torch.manual_seed(0)
    dataset = make(run_file, sample_size=1, sampling_strategy="log_random")
    index = [dataset.lists[i][0] for i in range(len(dataset))].index("q1")
    counts = Counter(dataset[index].doc_ids[0] for _ in range(4000))
    weights = [1 / math.log(1 + rank) for rank in range(1, 6)]
    for rank, doc in enumerate("abcde"):
        assert counts[doc] / 4000 == pytest.approx(weights[rank] / sum(weights), abs=0.03)


def test_top_and_random_keeps_the_first_half_then_draws(run_file: Path) -> None:
    torch.manual_seed(0)
    dataset = make(run_file, sample_size=4, sampling_strategy="top_and_random")
    index = [dataset.lists[i][0] for i in range(len(dataset))].index("q1")
    tails = set()
    for _ in range(200):
        doc_ids = dataset[index].doc_ids
        assert doc_ids[:2] == ["a", "b"]
        assert len(doc_ids) == 4 and set(doc_ids[2:]) <= {"c", "d", "e"}
        assert doc_ids[2:] == sorted(doc_ids[2:])
        tails.add(tuple(doc_ids[2:]))
    assert tails == {("c", "d"), ("c", "e"), ("d", "e")}


def test_single_relevant_is_one_relevant_then_non_relevant(run_file: Path) -> None:
    torch.manual_seed(0)
    dataset = make(
        run_file, sample_size=3, sampling_strategy="single_relevant", targets="relevance"
    )
    assert [qid for qid, _, _ in dataset.lists] == ["q1", "q2"]  # q3 has no relevant candidate
    firsts = Counter()
    for _ in range(300):
        sample = dataset[0]
        assert sample.doc_ids[0] in {"b", "d"}
        assert sample.targets[0] > 0 and all(t == 0 for t in sample.targets[1:])
        assert len(sample.doc_ids) == 3 and set(sample.doc_ids[1:]) <= {"a", "c", "e"}
        assert sample.doc_ids[1:] == sorted(sample.doc_ids[1:])
        firsts[sample.doc_ids[0]] += 1
    assert set(firsts) == {"b", "d"}
    assert dataset[1].doc_ids == ["y", "x"]  # q2: its relevant doc, then the one other


@pytest.mark.parametrize("strategy", ["top", "random", "log_random", "top_and_random"])
def test_short_lists_are_kept_whole_and_padded_by_the_collator(
    run_file: Path, strategy: str
) -> None:
    dataset = make(run_file, sample_size=4, sampling_strategy=strategy, targets="score")
    samples = [dataset[i] for i in range(len(dataset))]
    assert [s.query_id for s in samples] == ["q1", "q2", "q3"]  # never dropped, in order
    assert [len(s.doc_ids) for s in samples] == [4, 2, 1]
    batch = TrainCollator(fake_tokenizer, 8, 8)(samples)
    assert batch.doc_mask.tolist() == [
        [True] * 4,
        [True, True, False, False],
        [True, False, False, False],
    ]
    assert batch.targets[1].tolist() == [9.0, 9.0, 0.0, 0.0]
    assert batch.targets[2].tolist() == [0.5, 0.0, 0.0, 0.0]
    assert batch.doc_encoding["input_ids"].shape[0] == 7  # only the real docs, row-major
    assert batch.query_ids == ["q1", "q2", "q3"]


def fake_tokenizer(texts: list[str], **_: object) -> dict[str, torch.Tensor]:
    """One token per text, its length: enough to count what the collator encodes."""
    ids = torch.tensor([[len(text)] for text in texts])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_jsonl_and_parquet_runs_read_like_trec(run_file: Path, tmp_path: Path) -> None:
    import pandas as pd

    rows = []
    for line in RUN.splitlines():
        qid, _, doc, rank, score, _ = line.split()
        rows.append({"query_id": qid, "doc_id": doc, "score": float(score), "rank": int(rank)})
    jsonl = tmp_path / "run.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    parquet = tmp_path / "run.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    expected = make(run_file, depth=4).lists
    assert make(jsonl, depth=4).lists == expected
    assert make(parquet, depth=4).lists == expected


def test_from_a_collection_reads_its_teacher_run() -> None:
    from lossbench.data.collection import Collection

    collection = Collection(
        name="tiny",
        docs=DOCS,
        queries={"train": {"q1": "first query"}},
        qrels={"train": QRELS},
        teacher_run={"q1": {"a": 1.0, "b": 3.0, "c": 2.0}, "other": {"a": 1.0}},
    )
    dataset = RunDataset(collection, depth=2, targets="rank")
    assert len(dataset) == 1  # "other" is not a train query
    sample = dataset[0]
    assert (sample.doc_ids, sample.targets) == (["b", "c"], [2.0, 1.0])


def test_the_guides_run_id_fails_clearly_when_ir_datasets_lacks_it() -> None:
    guide_id = "msmarco-passage/train/rank-distillm/set-encoder"
    with pytest.raises(KeyError, match=r"rank-distillm/set-encoder.*local run file"):
        RunDataset(
            run_path_or_id=guide_id,
            depth=50,
            sample_size=8,
            sampling_strategy="random",
            targets="score",
        )


def test_relevance_targets_without_qrels_name_the_fix(run_file: Path) -> None:
    with pytest.raises(ValueError, match="pass qrels="):
        RunDataset(str(run_file), docs=DOCS, queries=QUERIES, targets="relevance")


def test_a_run_file_without_texts_names_the_argument(run_file: Path) -> None:
    with pytest.raises(ValueError, match="pass queries="):
        RunDataset(str(run_file), docs=DOCS)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("sampling_strategy", "best", "valid: top, random"),
        ("targets", "grade", "valid: relevance, rank, score"),
        ("sample_size", 0, "sample_size=0"),
    ],
)
def test_bad_options_list_the_valid_ones(run_file: Path, option: str, value, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(run_file, **{option: value})
