"""ColBERT: MaxSim against a float64 hand computation, the encoder's token vectors (query augmentation,
punctuation and padding masks), training with every loss the model can feed, save/load, bad configs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from lossbench.data.batches import TrainCollator
from lossbench.data.datasets import TrainSample
from lossbench.loss import LOSSES, Needs
from lossbench.models import BiEncoderModule, ColConfig
from lossbench.models.backbone import TINY_BERT, load_tokenizer, minilm_path, write_tiny_model
from lossbench.models.scoring import DotProduct, MaxSim, token_mask

TEXTS = [
    "wing lift, at high angles!",
    "heat flux in a slab",
    "shock waves (supersonic) nozzle flow",
]


def tiny_colbert(path: str | None = None, **overrides: object) -> BiEncoderModule:
    torch.manual_seed(0)
    settings: dict[str, object] = {
        "query_length": 12,
        "doc_length": 16,
        "embedding_dim": 8,
        "random_init": True,
        "backbone_overrides": TINY_BERT,
        **overrides,
    }
    return BiEncoderModule(path or minilm_path(), ColConfig(**settings))  # type: ignore[arg-type]


def tokenized(module: BiEncoderModule, texts: list[str], length: int) -> dict[str, torch.Tensor]:
    encoded = module.tokenizer(
        texts, padding=True, truncation=True, max_length=length, return_tensors="pt"
    )
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


# ---- MaxSim against a hand-written float64 computation -----------------------------------------
def hand_maxsim(
    query: torch.Tensor, query_counts: list[bool], doc: torch.Tensor, doc_counts: list[bool]
) -> float:
    """sum over the query's counted tokens of the max over the doc's counted tokens, in float64."""
    total = 0.0
    doc_tokens = [j for j, counted in enumerate(doc_counts) if counted]
    if not doc_tokens:
        return 0.0
    for i, counted in enumerate(query_counts):
        if counted:
            total += max(float(query[i].double() @ doc[j].double()) for j in doc_tokens)
    return total


def padded_token_vectors(
    generator: torch.Generator, count: int, length: int, dim: int, real: list[int]
):  # noqa: ANN201
    """``(count, length, dim)`` random vectors; text ``t`` has ``real[t]`` tokens, the rest padding,
    and its second token is masked (punctuation) when it has more than two; masked = zero vectors.
    Returns the vectors and which tokens count."""
    vectors = torch.randn(count, length, dim, generator=generator, dtype=torch.float64)
    counts = torch.zeros(count, length, dtype=torch.bool)
    for text, size in enumerate(real):
        counts[text, :size] = True
        if size > 2:
            counts[text, 1] = False
    return vectors * counts.unsqueeze(-1), counts


def test_maxsim_equals_a_float64_hand_computation_ignoring_padding_and_masked_tokens() -> None:
    generator = torch.Generator().manual_seed(0)
    queries, query_counts = padded_token_vectors(generator, 3, 5, 4, [5, 3, 1])
    docs, doc_counts = padded_token_vectors(generator, 6, 7, 4, [7, 4, 2, 1, 6, 0])
    # a masked token would win every max if it counted: a doc's padding must not be read as a 0 score
    docs[0, 1] = 0.0
    scoring = MaxSim()
    all_docs = scoring.all_docs(queries.float(), docs.float())  # (3, 6)
    per_query = scoring.per_query(queries.float(), docs.float().view(3, 2, 7, 4))  # (3, 2)
    for q in range(3):
        for d in range(6):
            expected = hand_maxsim(
                queries[q], query_counts[q].tolist(), docs[d], doc_counts[d].tolist()
            )
            assert all_docs[q, d].item() == pytest.approx(expected, abs=1e-5)
            if d // 2 == q:
                assert per_query[q, d % 2].item() == pytest.approx(expected, abs=1e-5)
    assert torch.equal(token_mask(docs), doc_counts)
    assert all_docs[:, 5].tolist() == [0.0, 0.0, 0.0]  # a doc with no token: 0, never -inf


def test_negative_similarities_are_not_lifted_by_padding() -> None:
    query = torch.tensor([[[1.0, 0.0]]])  # (1, 1, 2)
    doc = torch.tensor(
        [[[-1.0, 0.0], [0.0, 0.0]]]
    )  # one real token opposite the query, then padding
    assert MaxSim().all_docs(query, doc).item() == -1.0
    assert MaxSim().per_query(query, doc[None]).item() == -1.0


def test_dot_product_is_the_single_vector_scoring() -> None:
    queries, docs = torch.randn(2, 3), torch.randn(2, 4, 3)
    assert torch.allclose(
        DotProduct().per_query(queries, docs), torch.einsum("qh,qdh->qd", queries, docs)
    )
    assert torch.allclose(DotProduct().all_docs(queries, docs[0]), queries @ docs[0].T)


# ---- the encoder ---------------------------------------------------------------------------------
def test_queries_are_augmented_with_mask_tokens_that_nobody_attends_to() -> None:
    module = tiny_colbert().eval()
    encoding = tokenized(module, TEXTS, 12)
    with torch.no_grad():
        augmented = module.encode_queries(encoding)  # (3, 12, 8)
        plain = module.query_encoder.encode(encoding, "doc")  # no augmentation, same tokens
    assert augmented.shape == (3, 12, 8)
    assert token_mask(augmented).all()  # every position counts, mask tokens included
    assert torch.allclose(augmented.norm(dim=-1), torch.ones(3, 12), atol=1e-5)
    inputs, _ = module.query_encoder.query_inputs(encoding)  # type: ignore[operator]
    real = encoding["attention_mask"].bool()
    assert (inputs["input_ids"][:, real.shape[1] :] == module.tokenizer.mask_token_id).all()
    # the mask tokens are not attended to: the real tokens' vectors are those of the bare query
    # (except punctuation, which a doc masks and a query keeps)
    counted = module.query_encoder.doc_tokens(encoding)  # type: ignore[operator]
    width = real.shape[1]
    assert torch.allclose(augmented[:, :width][counted], plain[counted], atol=1e-5)


def test_a_query_without_augmentation_keeps_only_its_real_tokens() -> None:
    module = tiny_colbert(query_augmentation=False).eval()
    encoding = tokenized(module, TEXTS, 12)
    with torch.no_grad():
        vectors = module.encode_queries(encoding)
    assert vectors.shape[1] == encoding["input_ids"].shape[1]
    assert torch.equal(token_mask(vectors), encoding["attention_mask"].bool())


def test_docs_lose_padding_and_punctuation_and_padding_changes_nothing() -> None:
    module = tiny_colbert().eval()
    encoding = tokenized(module, TEXTS, 16)
    with torch.no_grad():
        batch = module.encode_docs(encoding)  # (3, L, 8), padded to the longest
        alone = module.encode_docs(tokenized(module, TEXTS[:1], 16))  # no padding
    punctuation = set(load_tokenizer(minilm_path()).convert_tokens_to_ids([",", "!", "(", ")"]))
    ids = encoding["input_ids"]
    expected = encoding["attention_mask"].bool() & ~torch.isin(
        ids, torch.tensor(sorted(punctuation))
    )
    assert torch.equal(token_mask(batch), expected)
    assert torch.allclose(batch[0, : alone.shape[1]], alone[0], atol=1e-5)
    kept = tiny_colbert(mask_punctuation=False).eval()
    with torch.no_grad():
        assert torch.equal(
            token_mask(kept.encode_docs(encoding)), encoding["attention_mask"].bool()
        )


def test_save_and_load_round_trip_is_bit_identical(tmp_path: Path) -> None:
    base = write_tiny_model(tmp_path / "base")
    module = tiny_colbert(base, projection="linear", random_init=False, backbone_overrides={})
    module.eval()
    with torch.no_grad():  # perturb every parameter so nothing matches a fresh init by chance
        for param in module.parameters():
            param.add_(0.01 * torch.randn_like(param))
    saved = module.save_pretrained(tmp_path / "trained")
    loaded = BiEncoderModule.from_pretrained(saved).eval()
    assert loaded.config == module.config and isinstance(loaded.config, ColConfig)
    assert set(loaded.state_dict()) == set(module.state_dict())
    for name, tensor in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    queries, docs = tokenized(module, TEXTS, 12), tokenized(module, TEXTS, 16)
    with torch.no_grad():
        assert torch.equal(loaded.encode_queries(queries), module.encode_queries(queries))
        assert torch.equal(loaded.encode_docs(docs), module.encode_docs(docs))


# ---- training ------------------------------------------------------------------------------------
def training_batch(module: BiEncoderModule) -> object:
    samples = [
        TrainSample(
            "q0", TEXTS[0], ["a", "b", "c"], [TEXTS[0], TEXTS[1], TEXTS[2]], [3.0, 1.0, 0.5]
        ),
        TrainSample("q1", TEXTS[1], ["b", "c"], [TEXTS[1], "heat, heat."], [2.0, 0.0]),
    ]
    return TrainCollator(module.tokenizer, 12, 16)(samples)


TRAINABLE = sorted(
    name for name, cls in LOSSES.items() if not cls.needs & (Needs.EMBEDDINGS | Needs.SPARSE)
)


@pytest.fixture(scope="module")
def colbert() -> BiEncoderModule:
    return tiny_colbert()


@pytest.mark.parametrize("name", TRAINABLE)
def test_every_scoring_and_in_batch_loss_trains_a_colbert_model(
    colbert: BiEncoderModule, name: str
) -> None:
    module = copy.deepcopy(colbert)
    module.loss_functions, module.loss_weights, module.loss_names = [LOSSES[name]()], [1.0], [name]
    values = module.compute_losses(training_batch(module))  # type: ignore[arg-type]
    assert torch.isfinite(values["loss"])
    values["loss"].backward()
    gradient = module.encoder.projection.weight.grad  # type: ignore[union-attr]
    assert gradient is not None and torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_regularizers_meant_for_single_vectors_are_refused() -> None:
    from lossbench.loss import FLOPSRegularization, L1Regularization, RankNet

    with pytest.raises(
        ValueError, match=r"L1Regularization, FLOPSRegularization regularizes one vector per text"
    ):
        BiEncoderModule(
            minilm_path(),
            ColConfig(random_init=True, backbone_overrides=TINY_BERT, embedding_dim=8),
            loss_functions=[RankNet(), L1Regularization(), FLOPSRegularization()],
        )


# ---- bad configs ---------------------------------------------------------------------------------
def test_a_projection_wider_than_the_backbone_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"embedding_dim=64 is larger than the backbone's hidden size 32"
    ):
        tiny_colbert(embedding_dim=64)
    with pytest.raises(ValueError, match="embedding_dim must be positive"):
        ColConfig(embedding_dim=0)
    with pytest.raises(ValueError, match="projection=None; valid: linear, linear_no_bias"):
        ColConfig(projection=None)  # type: ignore[arg-type]


def test_query_augmentation_needs_a_mask_token(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "no_mask")
    tokenizer = load_tokenizer(folder)
    tokenizer.mask_token = None
    tokenizer.save_pretrained(folder)
    with pytest.raises(
        ValueError, match=r"query_augmentation pads queries with the tokenizer's mask token"
    ):
        tiny_colbert(folder)
    assert tiny_colbert(folder, query_augmentation=False).encoder.mask_token_id is None  # type: ignore[union-attr]


def test_encoding_many_texts_pads_token_vectors_with_zeros(colbert: BiEncoderModule) -> None:
    from lossbench.data.datasets import TextSample
    from lossbench.retrieval.encode import encode_texts

    samples = [TextSample(f"t{i}", text) for i, text in enumerate(TEXTS)]
    ids, vectors = encode_texts(colbert, samples, "doc", batch_size=1, progress=False)
    for row, text_id in enumerate(ids):
        text = TEXTS[int(text_id[1:])]
        with torch.no_grad():
            alone = colbert.eval().encode_docs(tokenized(colbert, [text], 16))[0]
        assert torch.allclose(vectors[row, : alone.shape[0]], alone, atol=1e-5)
        assert not vectors[row, alone.shape[0] :].any()
