"""MaxSim indexes: exact search equals brute force over the whole corpus; the approximate one reports
what it misses and equals the exact one at full probe; sizes; bad input."""

from __future__ import annotations

import pytest
import torch

from lossbench.retrieval import MaxSimANNIndex, MaxSimIndex
from lossbench.retrieval.recall import overlap_at_k
from lossbench.retrieval.tokens import TokenStore

DIM = 8


def token_vectors(
    generator: torch.Generator, count: int, length: int, real: torch.Tensor
) -> torch.Tensor:
    """``(count, length, DIM)`` normalized vectors; text ``t`` has ``real[t]`` tokens that count,
    its third token masked (a zero vector) when it has more than three, the rest padding (zeros)."""
    vectors = torch.nn.functional.normalize(
        torch.randn(count, length, DIM, generator=generator), dim=-1
    )
    counts = torch.arange(length)[None] < real[:, None]
    counts[real > 3, 2] = False
    return vectors * counts.unsqueeze(-1)


def corpus(
    num_docs: int = 300, seed: int = 0
) -> tuple[list[torch.Tensor], list[str], torch.Tensor]:
    """Docs in batches of different padded lengths (as an encoding pass adds them), their ids, and
    queries ``(20, 6, DIM)`` with padded tokens."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, num_docs, 64):
        count = min(64, num_docs - start)
        length = int(torch.randint(4, 30, (1,), generator=generator))
        real = torch.randint(1, length + 1, (count,), generator=generator)
        batches.append(token_vectors(generator, count, length, real))
    queries = token_vectors(generator, 20, 6, torch.randint(2, 7, (20,), generator=generator))
    return batches, [f"d{i}" for i in range(num_docs)], queries


def brute_force(batches: list[torch.Tensor], queries: torch.Tensor) -> torch.Tensor:
    """Every query against every doc in float64, from the fp16 vectors the index stores: ``(Q, N)``."""
    rows = []
    for batch in batches:
        docs = batch.half().double()  # (n, L, dim)
        counts = docs.ne(0).any(-1)  # (n, L)
        sims = torch.einsum("qid,njd->qnij", queries.double(), docs)
        sims = sims.masked_fill(~counts[None, :, None, :], float("-inf")).amax(-1)  # (Q, n, Lq)
        rows.append(sims.sum(-1))
    return torch.cat(rows, dim=1)


def filled(index: MaxSimIndex, batches: list[torch.Tensor], ids: list[str]) -> MaxSimIndex:
    start = 0
    for batch in batches:
        index.add(batch, ids[start : start + batch.shape[0]])
        start += batch.shape[0]
    return index


@pytest.mark.parametrize(("chunk_tokens", "query_batch_size"), [(40, 3), (200, 7), (10**6, 64)])
def test_exact_search_equals_brute_force_over_the_whole_corpus(
    chunk_tokens: int, query_batch_size: int
) -> None:
    batches, ids, queries = corpus()
    index = filled(
        MaxSimIndex(chunk_tokens=chunk_tokens, query_batch_size=query_batch_size), batches, ids
    )
    expected = brute_force(batches, queries)  # (20, 300)
    scores, positions = index.search_tensors(queries, 10)
    top = expected.topk(10, dim=1)
    assert torch.equal(positions, top.indices)
    assert torch.allclose(scores.double(), top.values, atol=1e-5)
    run = index.search(queries, [f"q{i}" for i in range(20)], k=3)
    assert list(run["q0"]) == [ids[p] for p in top.indices[0, :3].tolist()]


def test_asking_for_more_than_the_corpus_returns_every_doc_ranked() -> None:
    batches, ids, queries = corpus(num_docs=40)
    index = filled(MaxSimIndex(chunk_tokens=50), batches, ids)
    scores, positions = index.search_tensors(queries, 100)
    assert positions.shape == (20, 40)
    assert torch.equal(positions, brute_force(batches, queries).argsort(dim=1, descending=True))
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_chunks_bound_the_padded_tokens_and_padding_repeats_a_docs_own_token() -> None:
    batches, ids, _ = corpus()
    store = filled(MaxSimIndex(), batches, ids).store
    order = store.by_length()
    lengths = store.lengths[order]
    assert (lengths[:-1] >= lengths[1:]).all()
    slices = list(store.chunks(order, 100))
    assert slices[0][0] == 0 and slices[-1][1] == len(order)
    for start, end in slices:
        padded = store.padded(order[start:end])  # (n, L, dim)
        assert padded.numel() // DIM <= 100 or end - start == 1
        for row, position in enumerate(order[start:end].tolist()):
            length = int(store.lengths[position])
            assert torch.equal(
                padded[row, length:],
                padded[row, length - 1 : length].expand(padded.shape[1] - length, -1),
            )


def test_sizes_count_docs_tokens_and_fp16_bytes() -> None:
    batches, ids, _ = corpus()
    index = filled(MaxSimIndex(), batches, ids)
    tokens = sum(int(batch.ne(0).any(-1).sum()) for batch in batches)
    stats = index.stats()
    assert stats["docs"] == 300 and stats["tokens"] == tokens and stats["dim"] == DIM
    assert index.store.vectors.dtype == torch.float16
    expected_bytes = tokens * DIM * 2 + 300 * 8 * 2  # fp16 vectors, int64 lengths and offsets
    assert stats["size_mb"] * 2**20 == pytest.approx(expected_bytes)
    assert stats["bytes_per_doc"] == pytest.approx(expected_bytes / 300)


def test_a_doc_without_tokens_scores_zero() -> None:
    store = TokenStore()
    store.add(torch.zeros(1, 3, DIM))
    index = MaxSimIndex()
    index.add(torch.zeros(1, 3, DIM), ["empty"])
    query = torch.nn.functional.normalize(torch.ones(1, 2, DIM), dim=-1)
    scores, positions = index.search_tensors(query, 5)
    assert scores.tolist() == [[0.0]] and positions.tolist() == [[0]]
    assert len(store) == 1 and store.lengths.tolist() == [1]


def test_single_vectors_are_refused_with_what_the_index_takes() -> None:
    with pytest.raises(
        ValueError, match=r"a MaxSim index takes a multi-vector \(ColBERT\) model's vectors"
    ):
        MaxSimIndex().add(torch.randn(3, DIM), ["a", "b", "c"])
    with pytest.raises(ValueError, match="do not match 2 doc ids"):
        MaxSimIndex().add(torch.randn(3, 4, DIM), ["a", "b"])
    index = MaxSimIndex()
    with pytest.raises(ValueError, match="the index is empty"):
        index.search_tensors(torch.randn(1, 2, DIM), 3)
    index.add(torch.randn(2, 4, DIM), ["a", "b"])
    with pytest.raises(ValueError, match=r"are not \(queries, tokens, 8\) token vectors"):
        index.search_tensors(torch.randn(1, DIM), 3)


# ---- the approximate index -----------------------------------------------------------------------
def ann(nprobe: int, **kwargs: int) -> MaxSimANNIndex:
    return MaxSimANNIndex(
        nlist=32, nprobe=nprobe, min_points_per_list=10, query_batch_size=4, **kwargs
    )


def test_the_approximate_index_equals_the_exact_one_at_full_probe() -> None:
    batches, ids, queries = corpus()
    exact = filled(MaxSimIndex(), batches, ids).search_tensors(queries, 10)
    index = filled(ann(nprobe=32), batches, ids)
    scores, positions = index.search_tensors(
        queries, 10
    )  # every cluster probed: every doc a candidate
    assert torch.equal(positions, exact[1]) and torch.equal(scores, exact[0])


def test_a_low_probe_misses_docs_and_recall_against_exhaustive_search_says_how_many() -> None:
    batches, ids, queries = corpus()
    index = filled(ann(nprobe=1), batches, ids)
    _, approximate = index.search_tensors(queries, 50)
    with index.exhaustive():
        scores, exact = index.search_tensors(queries, 50)
    assert torch.equal(exact, filled(MaxSimIndex(), batches, ids).search_tensors(queries, 50)[1])
    recall = float(overlap_at_k(approximate, exact).mean())
    assert 0.0 < recall < 1.0
    _, everything = index.search_tensors(queries, 300)  # fewer candidates than docs: empty slots
    assert (everything == -1).any() and (everything[:, 0] >= 0).all()
    # what it finds, it scores exactly
    lookup = dict(zip(exact[0].tolist(), scores[0].tolist(), strict=True))
    approx_scores, approx_positions = index.search_tensors(queries[:1], 50)
    for position, score in zip(
        approx_positions[0].tolist(), approx_scores[0].tolist(), strict=True
    ):
        if position in lookup:
            assert score == pytest.approx(lookup[position], abs=1e-6)


def test_the_approximate_index_sizes_and_a_small_sample_lowers_nlist() -> None:
    batches, ids, queries = corpus(num_docs=64)
    index = filled(MaxSimANNIndex(nlist=1024, nprobe=2), batches, ids)
    with pytest.warns(UserWarning, match="too few for nlist=1024"):
        stats = index.stats()
    tokens = int(stats["tokens"])
    assert stats["nlist"] == tokens // 39 and stats["train_tokens"] == tokens
    assert stats["size_mb"] > filled(MaxSimIndex(), batches, ids).stats()["size_mb"]
    assert index.approximate and index.report_recall_vs_exact and index.vectors == "multi_vector"
    index.add(batches[0][:2], ["new0", "new1"])  # docs added later are searched too
    _, positions = index.search_tensors(batches[0][:1, :4], 1)
    assert positions.tolist() == [[0]] or positions.tolist() == [[64]]
