"""Corpus encoding: tokenizing ahead in a thread, in workers or in line gives the same vectors."""

from __future__ import annotations

import os

import torch

from lossbench.data.batches import InferenceCollator
from lossbench.data.datasets import TextSample
from lossbench.retrieval.encode import iter_encoded, tokenized_ahead

# 1 + (7 i mod 13) words: lengths out of order, so sorting shows
TEXTS = [TextSample(f"d{i}", " ".join(["word"] * (1 + (i * 7) % 13))) for i in range(11)]


class NoTokenizing:
    """A tokenizer that refuses to tokenize (its pad id and padding side still answer)."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001
        self.pad_token_id, self.padding_side = tokenizer.pad_token_id, tokenizer.padding_side

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        raise AssertionError("tokenized a text that the cache holds")


def encoded(module, **kwargs) -> tuple[list[str], torch.Tensor]:  # noqa: ANN001
    module.token_cache.clear()  # every pass tokenizes
    ids: list[str] = []
    vectors = []
    for batch_ids, batch in iter_encoded(module, TEXTS, "doc", 3, progress=False, **kwargs):
        ids += batch_ids
        vectors.append(batch)
    return ids, torch.cat(vectors)


def test_tokenizing_ahead_in_a_thread_equals_in_line_and_workers(tiny_module) -> None:  # noqa: ANN001
    in_line_ids, in_line = encoded(tiny_module, tokenize_ahead=False)
    ahead_ids, ahead = encoded(tiny_module, tokenize_ahead=True)
    worker_ids, workers = encoded(tiny_module, num_workers=1)
    assert in_line_ids == ahead_ids == worker_ids
    assert in_line_ids[:2] == ["d9", "d7"]  # longest first: 12 and 11 words
    torch.testing.assert_close(ahead, in_line)
    torch.testing.assert_close(workers, in_line)


def test_tokenized_ahead_restores_tokenizer_parallelism_and_stops_early(tiny_module) -> None:  # noqa: ANN001
    collate = InferenceCollator(tiny_module.tokenizer, 16)
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    batches = tokenized_ahead(TEXTS, collate, 2, pin_memory=False)
    first = next(batches)
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"  # during the pass
    assert first.ids == ["d0", "d1"]  # in the given order (iter_encoded sorts before)
    batches.close()  # the consumer stops after one batch: nothing hangs, the setting comes back
    assert os.environ.get("TOKENIZERS_PARALLELISM") == before
    sizes = [len(batch.ids) for batch in tokenized_ahead(TEXTS, collate, 4, pin_memory=False)]
    assert sizes == [4, 4, 3]


def test_a_second_pass_takes_its_tokens_from_the_modules_cache(tiny_module) -> None:  # noqa: ANN001
    first_ids, first = encoded(tiny_module)
    assert len(tiny_module.token_cache) == len(TEXTS)
    tiny_module.tokenizer = NoTokenizing(tiny_module.tokenizer)  # a call would fail now
    ids: list[str] = []
    vectors = []
    for batch_ids, batch in iter_encoded(tiny_module, TEXTS, "doc", 3, progress=False):
        ids += batch_ids
        vectors.append(batch)
    assert ids == first_ids
    torch.testing.assert_close(torch.cat(vectors), first)
