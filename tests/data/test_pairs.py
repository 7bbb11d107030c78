"""Query-doc pairs for a cross-encoder: the tokenizer's own pair layout, the length rules (query, doc,
total), padding, and the training batches."""

from __future__ import annotations

import pytest
import torch

from lossbench.data.pairs import PairCollator, PairTemplate, PairTokenizer
from lossbench.data.samples import TrainSample
from lossbench.data.token_cache import TokenCache
from lossbench.models.backbone import load_tokenizer, minilm_path

QUERY = "what makes a wing stall at high angles"
DOC = "the boundary layer separates from the upper surface of the airfoil and lift drops sharply"


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201
    return load_tokenizer(minilm_path())


def words(tokenizer, text: str) -> list[int]:  # noqa: ANN001
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_the_template_is_the_tokenizers_own_pair_layout(tokenizer) -> None:
    template = PairTemplate.of(tokenizer)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert (template.prefix, template.middle, template.suffix) == ((cls,), (sep,), (sep,))
    assert template.num_special == tokenizer.num_special_tokens_to_add(pair=True) == 3


def test_a_pair_that_fits_equals_the_tokenizers_pair_encoding(tokenizer) -> None:
    pairs = PairTokenizer(tokenizer, query_length=32, doc_length=64)
    ours = pairs([QUERY], [DOC])
    theirs = tokenizer(QUERY, DOC, return_tensors="pt", return_token_type_ids=True)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours[key].tolist() == theirs[key].tolist(), key


def test_query_and_doc_are_cut_to_their_own_lengths(tokenizer) -> None:
    pairs = PairTokenizer(tokenizer, query_length=3, doc_length=5)
    (row,) = pairs.rows([QUERY], [DOC])
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    query, doc = words(tokenizer, QUERY)[:3], words(tokenizer, DOC)[:5]
    assert row.ids.tolist() == [cls, *query, sep, *doc, sep]
    assert row.types is not None
    assert row.types.tolist() == [0] * 5 + [1] * 6  # [CLS] q [SEP] -> 0, d [SEP] -> 1
    assert pairs.max_length == 3 + 5 + 3


def test_the_total_length_cuts_the_doc_and_keeps_the_query(tokenizer) -> None:
    pairs = PairTokenizer(tokenizer, query_length=8, doc_length=64, max_length=16)
    (row,) = pairs.rows([QUERY], [DOC])
    query = words(tokenizer, QUERY)[:8]
    assert len(row) == 16
    assert row.ids[1 : 1 + len(query)].tolist() == query  # the whole (cut) query
    assert row.ids[-(16 - 3 - len(query)) - 1 : -1].tolist() == words(tokenizer, DOC)[: 16 - 3 - 8]
    short = pairs.rows(["wing"], [DOC])[0]  # a short query leaves the doc more room
    assert len(short) == 16 and short.ids.tolist().count(tokenizer.sep_token_id) == 2


def test_padding_is_masked_and_fixed_length_pads_to_max_length(tokenizer) -> None:
    pairs = PairTokenizer(tokenizer, query_length=8, doc_length=16)
    batch = pairs(["wing", QUERY], ["lift", DOC])
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths[0] == 5 and batch["attention_mask"].shape[1] == lengths[1]
    assert batch["input_ids"][0, 5:].eq(tokenizer.pad_token_id).all()
    assert batch["token_type_ids"][0, 5:].eq(0).all()
    fixed = pairs(["wing"], ["lift"], fixed_length=True)
    assert fixed["input_ids"].shape == (1, 8 + 16 + 3)
    assert fixed["attention_mask"].sum().item() == 5


def test_the_token_cache_gives_the_same_pairs(tokenizer) -> None:
    plain = PairTokenizer(tokenizer, 8, 16)
    cached = PairTokenizer(tokenizer, 8, 16, cache=TokenCache())
    for _ in range(2):  # the second call reads the cache
        got, want = cached([QUERY, "wing"], [DOC, DOC]), plain([QUERY, "wing"], [DOC, DOC])
        assert all(torch.equal(got[k], want[k]) for k in want)
    assert len(cached.cache or []) == 3  # two queries, one doc


def test_a_collated_batch_pairs_each_query_with_its_own_candidates(tokenizer) -> None:
    pairs = PairTokenizer(tokenizer, 8, 16)
    samples = [
        TrainSample("q1", "wing", ["a", "b", "c"], ["lift", "drag", "stall"], [2.0, 1.0, 0.0]),
        TrainSample("q2", "heat", ["d"], ["flux"], [1.0]),
    ]
    batch = PairCollator(pairs)(samples)
    assert batch.doc_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.targets.tolist() == [[2.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    expected = pairs(["wing", "wing", "wing", "heat"], ["lift", "drag", "stall", "flux"])
    assert torch.equal(batch.pair_encoding["input_ids"], expected["input_ids"])
    fixed = PairCollator(pairs, fixed_length=True)(samples)
    assert fixed.pair_encoding["input_ids"].shape == (4, 27)
