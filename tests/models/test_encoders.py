"""DPR and SPLADE encoders: SPLADE's activation and pooling, padding, projections, separate encoders,
the MLM head's source, save/load round trips with identical scores."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lossbench.data.batches import TrainCollator
from lossbench.data.datasets import TrainSample
from lossbench.loss import FLOPSRegularization, InBatchCrossEntropy
from lossbench.models import BiEncoderModule, DprConfig, SpladeConfig
from lossbench.models.backbone import (
    TINY_BERT,
    load_mlm_head_state,
    load_tokenizer,
    minilm_path,
    write_tiny_model,
)
from lossbench.models.config import config_from_dict
from lossbench.models.encoders import SpladeEncoder, splade_activation

TEXTS = ["a short query", "a much longer text about sparse retrieval with many more tokens in it"]


def tiny(config_class: type = SpladeConfig, **fields: object) -> BiEncoderModule:
    torch.manual_seed(0)
    config = config_class(
        query_length=16, doc_length=32, random_init=True, backbone_overrides=TINY_BERT, **fields
    )
    return BiEncoderModule(model_name_or_path=minilm_path(), config=config).eval()


def encode(module: BiEncoderModule, texts: list[str], kind: str = "doc") -> torch.Tensor:
    encoding = module.tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=32,
        return_tensors="pt",
        return_token_type_ids=False,
    )
    with torch.no_grad():
        return module.encode(dict(encoding), kind)


def test_splade_activation() -> None:
    logits = torch.tensor([-2.0, 0.0, 1.0, float(torch.e - 1)])
    assert splade_activation(logits).tolist() == pytest.approx([0.0, 0.0, 0.6931472, 1.0])


@pytest.mark.parametrize("pooling", ["max", "mean", "first"])
def test_splade_vector_is_pooled_activated_logits_over_real_tokens(pooling: str) -> None:
    module = tiny(pooling=pooling)
    encoder = module.encoder
    assert isinstance(encoder, SpladeEncoder)
    encoding = dict(
        module.tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    )
    with torch.no_grad():
        vectors = encoder(encoding)  # (2, V)
        logits = encoder.token_logits(encoding)  # (2, L, V)
    weights = torch.log1p(torch.relu(logits))  # (2, L, V)
    mask = encoding["attention_mask"].bool()
    for row in range(2):
        real = weights[row, mask[row]]  # (L_real, V)
        expected = {"max": real.amax(0), "mean": real.mean(0), "first": real[0]}[pooling]
        assert torch.allclose(vectors[row], expected, atol=1e-6)
    assert vectors.shape == (2, module.tokenizer.vocab_size)
    assert (vectors >= 0).all()


def test_padding_never_changes_a_vector() -> None:
    for module in (
        tiny(SpladeConfig),
        tiny(DprConfig, pooling="mean"),
        tiny(DprConfig, pooling="max"),
    ):
        alone = encode(module, TEXTS[:1])
        padded = encode(module, TEXTS)[:1]  # the short text padded to the long one's length
        assert torch.allclose(alone, padded, atol=1e-5)


def test_decoding_a_few_tokens_at_a_time_changes_nothing(monkeypatch) -> None:
    from lossbench.models import encoders

    module = tiny()
    encoding = dict(
        module.tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    )
    with torch.no_grad():
        full = module.encoder(encoding)  # every token at once (the budget allows it)
    monkeypatch.setattr(encoders, "DECODE_BUDGET", 2 * 30522 * 3)  # 3 tokens per chunk
    with torch.no_grad():
        chunked = module.encoder(encoding)
    assert torch.allclose(full, chunked, atol=1e-6)  # BLAS blocks differ by chunk shape


def test_splade_gradients_reach_the_tied_embeddings_and_the_head() -> None:
    module = tiny().train()
    module.loss_functions = [InBatchCrossEntropy(), FLOPSRegularization(1e-3, 1e-3)]
    module.loss_weights, module.loss_names = [1.0, 1.0], ["in_batch_ce", "flops"]
    samples = [
        TrainSample("q1", "alpha beta", ["a", "b"], ["doc one", "doc two here"], [1.0, 0.0]),
        TrainSample("q2", "gamma", ["c", "d"], ["doc three", "doc four"], [1.0, 0.0]),
    ]
    values = module.compute_losses(TrainCollator(module.tokenizer, 16, 32)(samples))
    assert 0 < values["doc_nnz"] <= module.tokenizer.vocab_size
    assert 0 < values["query_nnz"] <= module.tokenizer.vocab_size
    values["loss"].backward()
    embeddings = module.backbone.get_input_embeddings().weight
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0
    assert module.encoder.head.bias.grad is not None
    assert module.encoder.head.dense.weight.grad.abs().sum() > 0


def test_dpr_projection_and_normalization() -> None:
    module = tiny(DprConfig, projection="linear", embedding_dim=8, normalize=True)
    vectors = encode(module, TEXTS)
    assert vectors.shape == (2, 8)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=1e-5)
    no_bias = tiny(DprConfig, projection="linear_no_bias", embedding_dim=4)
    assert no_bias.encoder.projection.bias is None
    with pytest.raises(ValueError, match="needs a projection"):
        DprConfig(embedding_dim=8)
    with pytest.raises(ValueError, match="projection="):
        DprConfig(projection="mlp")  # type: ignore[arg-type]


def test_separate_encoders_start_equal_and_train_apart() -> None:
    module = tiny(DprConfig, pooling="mean", shared_encoder=False)
    assert module.query_encoder is not module.doc_encoder
    query_params = dict(module.query_encoder.named_parameters())
    for name, param in module.doc_encoder.named_parameters():
        assert torch.equal(param, query_params[name]) and param is not query_params[name]
    assert torch.equal(encode(module, TEXTS, "query"), encode(module, TEXTS, "doc"))
    shared = tiny(DprConfig, pooling="mean")
    count = sum(p.numel() for p in shared.parameters())
    assert sum(p.numel() for p in module.parameters()) == 2 * count


def test_config_round_trip_through_a_dict() -> None:
    config = SpladeConfig(query_length=8, shared_encoder=False)
    assert config_from_dict(config.to_dict()) == config
    assert SpladeConfig.sparse and not DprConfig.sparse
    with pytest.raises(ValueError, match="unknown config class"):
        config_from_dict({"class": "ColbertConfig"})


def test_minilm_has_no_mlm_head_so_the_head_starts_fresh_and_says_so(caplog) -> None:
    assert load_mlm_head_state(minilm_path()) is None
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        module = BiEncoderModule(minilm_path(), SpladeConfig(query_length=8, doc_length=8))
    assert "has no pretrained MLM head" in caplog.text
    assert torch.equal(module.encoder.head.bias, torch.zeros_like(module.encoder.head.bias))


def test_a_checkpoint_with_an_mlm_head_is_reused(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig.from_pretrained(minilm_path())
    for key, value in TINY_BERT.items():
        setattr(config, key, value)
    torch.manual_seed(1)
    mlm = BertForMaskedLM(config)
    with torch.no_grad():
        mlm.cls.predictions.bias.normal_()  # distinguishable from a fresh (zero) bias
    mlm.save_pretrained(tmp_path)
    load_tokenizer(minilm_path()).save_pretrained(tmp_path)
    module = BiEncoderModule(str(tmp_path), SpladeConfig(query_length=8, doc_length=8)).eval()
    head = module.encoder.head
    assert torch.equal(head.dense.weight, mlm.cls.predictions.transform.dense.weight)
    assert torch.equal(head.layer_norm.weight, mlm.cls.predictions.transform.LayerNorm.weight)
    assert torch.equal(head.bias, mlm.cls.predictions.bias)
    encoding = dict(module.tokenizer(TEXTS[:1], return_tensors="pt", return_token_type_ids=False))
    with torch.no_grad():
        expected = mlm.eval()(**encoding).logits.amax(1)  # (1, V), one text: no padding
    assert torch.allclose(module.encoder(encoding), torch.log1p(torch.relu(expected)), atol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        SpladeConfig(query_length=16, doc_length=32),
        DprConfig(
            query_length=16, doc_length=32, pooling="mean", projection="linear", embedding_dim=8
        ),
        SpladeConfig(query_length=16, doc_length=32, shared_encoder=False),
    ],
    ids=["splade", "dpr_projection", "splade_separate_encoders"],
)
def test_save_and_load_give_identical_scores(tmp_path: Path, config) -> None:
    base = write_tiny_model(tmp_path / "base")
    torch.manual_seed(0)
    module = BiEncoderModule(base, config).eval()
    with torch.no_grad():  # perturb every parameter so nothing matches a fresh init by chance
        for param in module.parameters():
            param.add_(0.01 * torch.randn_like(param))
    saved = module.save_pretrained(tmp_path / "trained")
    loaded = BiEncoderModule.from_pretrained(saved).eval()
    assert loaded.config == config
    queries, docs = encode(module, TEXTS, "query"), encode(module, TEXTS, "doc")
    assert torch.equal(encode(loaded, TEXTS, "query"), queries)
    assert torch.equal(encode(loaded, TEXTS, "doc"), docs)
    assert torch.equal(
        queries @ docs.T, encode(loaded, TEXTS, "query") @ encode(loaded, TEXTS, "doc").T
    )


def test_loading_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not written by"):
        BiEncoderModule.from_pretrained(write_tiny_model(tmp_path / "plain"))
    saved = tiny(DprConfig).save_pretrained(tmp_path / "dpr")
    with pytest.raises(FileNotFoundError, match="lossbench_head"):
        BiEncoderModule.from_pretrained(saved, config=SpladeConfig())


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_max_pooled_decode_matches_dense_autograd(chunk: int) -> None:
    from lossbench.models.encoders import MaxPooledDecode

    generator = torch.Generator().manual_seed(0)
    transformed = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    embeddings = torch.randn(7, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(7, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    upstream = torch.randn(3, 7, generator=generator, dtype=torch.float64)
    upstream[0, 2] = 0.0  # entries without a gradient are skipped

    fast = MaxPooledDecode.apply(transformed, embeddings, bias, mask, chunk)  # (3, 7)
    fast_grads = torch.autograd.grad((fast * upstream).sum(), (transformed, embeddings, bias))
    logits = transformed @ embeddings.T + bias  # (3, 5, 7)
    dense = logits.masked_fill(~mask[:, :, None], float("-inf")).amax(1)  # (3, 7)
    dense_grads = torch.autograd.grad((dense * upstream).sum(), (transformed, embeddings, bias))
    assert torch.allclose(fast, dense)
    for got, expected in zip(fast_grads, dense_grads, strict=True):
        assert torch.allclose(got, expected)
    assert torch.autograd.gradcheck(
        lambda t, e, b: MaxPooledDecode.apply(t, e, b, mask, chunk), (transformed, embeddings, bias)
    )
