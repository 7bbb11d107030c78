"""The faiss indexes: flat is exact, IVF finds most of the exact top-100, both keep the index contract."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

from lossbench.retrieval import ExactDenseIndex, FaissFlatIndex, FaissIVFIndex
from lossbench.retrieval.recall import overlap_at_k


def clustered(
    num_docs: int, num_queries: int, dim: int = 32, clusters: int = 40, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Docs and queries scattered around shared random centres (the shape IVF is built for)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator) * 3
    doc_centres = torch.randint(clusters, (num_docs,), generator=generator)
    query_centres = torch.randint(clusters, (num_queries,), generator=generator)
    docs = centres[doc_centres] + torch.randn(num_docs, dim, generator=generator)
    queries = centres[query_centres] + torch.randn(num_queries, dim, generator=generator)
    return docs, queries


def doc_ids(n: int) -> list[str]:
    return [f"doc-{(i * 7919) % 10007}" for i in range(n)]  # not in position order


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_flat_returns_the_exact_index_top_k(similarity: str) -> None:
    generator = torch.Generator().manual_seed(1)
    docs, queries = (
        torch.randn(300, 24, generator=generator),
        torch.randn(9, 24, generator=generator),
    )
    if similarity == "cosine":  # a cosine model L2-normalizes its vectors in the encoder
        docs, queries = F.normalize(docs, dim=-1), F.normalize(queries, dim=-1)
    ids, qids = doc_ids(300), [f"q{i}" for i in range(9)]
    exact, flat = ExactDenseIndex(chunk_size=64), FaissFlatIndex()
    for index in (exact, flat):
        index.add(docs[:120], ids[:120])
        index.add(docs[120:], ids[120:])  # added in two parts, like index_corpus's batches
    exact_scores, exact_positions = exact.search_tensors(queries, 20)
    flat_scores, flat_positions = flat.search_tensors(queries, 20)
    assert flat_positions.tolist() == exact_positions.tolist()
    assert torch.allclose(flat_scores, exact_scores, atol=1e-5)
    exact_run, flat_run = exact.search(queries, qids, 20), flat.search(queries, qids, 20)
    assert exact_run.keys() == flat_run.keys()
    for qid in qids:
        assert list(flat_run[qid]) == list(exact_run[qid])  # same doc ids, same order
        assert flat_run[qid] == pytest.approx(exact_run[qid], abs=1e-5)


def test_ids_map_to_doc_ids_in_the_order_added() -> None:
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    for index in (FaissFlatIndex(), FaissIVFIndex(nlist=1, nprobe=1)):
        index.add(vectors[:1], ["zebra"])
        index.add(vectors[1:], ["apple", "mango"])
        run = index.search(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), ["q1", "q2"], k=2)
        assert run == {"q1": {"zebra": 1.0, "mango": 1.0}, "q2": {"apple": 2.0, "mango": 2.0}}


@pytest.mark.parametrize("make", [FaissFlatIndex, lambda: FaissIVFIndex(nlist=2, nprobe=2)])
def test_k_larger_than_the_corpus_returns_every_doc(make) -> None:
    index = make()
    index.add(torch.eye(3).repeat(40, 1), [f"d{i}" for i in range(120)])
    scores, positions = index.search_tensors(torch.ones(2, 3), k=1000)
    assert positions.shape == (2, 120)
    assert sorted(positions[0].tolist()) == list(range(120))
    assert len(index.search(torch.ones(1, 3), ["q"], k=1000)["q"]) == 120


def test_ivf_recall_at_100_against_exact_search_on_clustered_data() -> None:
    docs, queries = clustered(4000, 50)
    exact = ExactDenseIndex()
    ivf = FaissIVFIndex(nlist=32, nprobe=8)
    for index in (exact, ivf):
        index.add(docs, doc_ids(4000))
    _, exact_top = exact.search_tensors(queries, 100)
    _, ivf_top = ivf.search_tensors(queries, 100)
    assert overlap_at_k(ivf_top, exact_top).mean() >= 0.95
    few = FaissIVFIndex(nlist=32, nprobe=1)  # one list of 32: cheaper, and it misses docs
    few.add(docs, doc_ids(4000))
    _, few_top = few.search_tensors(queries, 100)
    assert overlap_at_k(few_top, exact_top).mean() < overlap_at_k(ivf_top, exact_top).mean()
    with few.exhaustive():  # every list probed: the exact top-100
        _, all_top = few.search_tensors(queries, 100)
    assert overlap_at_k(all_top, exact_top).mean() == pytest.approx(1.0)
    assert few.faiss_index().nprobe == 1  # restored after the block
    few.nprobe = 32  # set after training: takes effect at once
    _, all_top = few.search_tensors(queries, 100)
    assert overlap_at_k(all_top, exact_top).mean() == pytest.approx(1.0)


def test_ivf_drops_the_slots_a_probe_leaves_empty() -> None:
    docs, queries = clustered(800, 4, clusters=8)
    index = FaissIVFIndex(nlist=16, nprobe=1)
    index.add(docs, doc_ids(800))
    scores, positions = index.search_tensors(queries, 500)  # one list holds far fewer than 500
    assert (positions == -1).any()
    assert torch.isinf(scores[positions == -1]).all()
    run = index.search(queries, ["a", "b", "c", "d"], 500)
    for qid, row in zip("abcd", positions, strict=True):
        assert len(run[qid]) == int((row >= 0).sum()) < 500
        assert set(run[qid]) <= set(doc_ids(800))


def test_ivf_lowers_nlist_for_a_small_corpus_with_a_warning() -> None:
    docs, queries = clustered(100, 3)
    index = FaissIVFIndex(nlist=1024, nprobe=64)
    index.add(docs, doc_ids(100))
    with pytest.warns(UserWarning, match=r"100 training docs are too few for nlist=1024.*nlist=2"):
        index.search(queries, ["a", "b", "c"], 10)
    stats = index.stats()
    assert stats["nlist"] == 2 and stats["nprobe"] == 2 and stats["train_docs"] == 100
    assert stats["docs"] == 100 and stats["dim"] == 32


def test_ivf_trains_on_the_first_train_size_docs_then_adds_directly() -> None:
    docs, queries = clustered(600, 5)
    index = FaissIVFIndex(nlist=4, nprobe=4, train_size=200)
    ids = doc_ids(600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 200 docs for 4 lists: enough, no warning
        index.add(docs[:150], ids[:150])
        assert index.trained_on == 0  # held back until the sample is complete
        index.add(docs[150:250], ids[150:250])
        assert index.trained_on == 200
        index.add(docs[250:], ids[250:])
    assert index.faiss_index().ntotal == 600
    exact = ExactDenseIndex()
    exact.add(docs, ids)
    with index.exhaustive():  # every list probed: the docs added after training are found too
        found = index.search(queries, list("abcde"), 30)
    for qid, docs_scores in exact.search(queries, list("abcde"), 30).items():
        assert found[qid] == pytest.approx(docs_scores, rel=1e-5)


def test_inputs_are_checked() -> None:
    index = FaissFlatIndex()
    with pytest.raises(ValueError, match="empty"):
        index.search_tensors(torch.ones(1, 4), 5)
    with pytest.raises(ValueError, match="do not match 3 doc ids"):
        index.add(torch.ones(2, 4), ["a", "b", "c"])
    index.add(torch.ones(2, 4, dtype=torch.float64), ["a", "b"])  # any float dtype is converted
    with pytest.raises(ValueError, match="5 dimensions; the index has 4"):
        index.add(torch.ones(1, 5), ["c"])
    with pytest.raises(ValueError, match=r"queries \(1, 3\)"):
        index.search_tensors(torch.ones(1, 3), 5)
    with pytest.raises(ValueError, match="positive"):
        FaissIVFIndex(nlist=0)


def test_non_contiguous_vectors_are_searched_as_given() -> None:
    generator = torch.Generator().manual_seed(2)
    docs = torch.randn(16, 50, generator=generator).T  # (50, 16), not C-contiguous
    queries = torch.randn(16, 3, generator=generator).T  # (3, 16), not C-contiguous
    flat, exact = FaissFlatIndex(), ExactDenseIndex()
    for index in (flat, exact):
        index.add(docs, doc_ids(50))
    assert (
        flat.search_tensors(queries, 5)[1].tolist() == exact.search_tensors(queries, 5)[1].tolist()
    )


def test_overlap_counts_the_exact_docs_found() -> None:
    exact = torch.tensor([[0, 1, 2, 3], [4, 5, -1, -1]])
    approximate = torch.tensor([[3, 9, 1, -1], [5, 4, -1, -1]])
    assert overlap_at_k(approximate, exact).tolist() == [0.5, 1.0]


def test_a_missing_faiss_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        FaissIVFIndex()
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        FaissFlatIndex()


def test_a_splade_model_on_a_faiss_index_is_refused() -> None:
    """faiss indexes say they take dense vectors; the check then names the sparse index instead."""
    from lossbench.experiment.checks import ConfigurationError, check_index
    from lossbench.models import DprConfig, SpladeConfig

    for index in (FaissFlatIndex(), FaissIVFIndex(nlist=4)):
        assert index.vectors == "dense"
        with pytest.raises(ConfigurationError, match="choose index=sparse"):
            check_index(SpladeConfig(), index, "tiny_splade")
        check_index(DprConfig(), index, "tiny")
    assert FaissIVFIndex(nlist=4).approximate and not FaissFlatIndex().approximate


def test_recall_needs_an_index_that_can_search_exhaustively() -> None:
    from lossbench.retrieval.recall import recall_vs_exact

    with pytest.raises(TypeError, match="report_recall_vs_exact=false"):
        recall_vs_exact(None, None, ExactDenseIndex(), "test")  # type: ignore[arg-type]
