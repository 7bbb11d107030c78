"""The cross-encoder: its scores are a plain forward of its weights, every scoring loss trains it,
other losses are refused, and a saved model loads back bit-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lossbench.data.samples import TrainSample
from lossbench.loss import LOSSES, InBatchCrossEntropy, L2Regularization, ScoringLossFunction
from lossbench.models import CrossEncoderConfig, CrossEncoderModule
from lossbench.models.backbone import TINY_BERT, minilm_path

PAIRS = [
    ("wing stall", "the boundary layer separates and lift drops"),
    ("wing stall", "heat flux through a slab"),
    ("supersonic nozzle flow", "a shock wave forms in the nozzle at mach one"),
    ("heat", "conduction"),
]

SAMPLES = [
    TrainSample("q1", "wing stall", ["a", "b", "c"], [d for _, d in PAIRS[:3]], [3.0, 1.5, 0.2]),
    TrainSample("q2", "heat", ["d", "e"], ["conduction in a slab", "lift"], [2.0, -1.0]),
]
"""Ragged candidate lists with graded, real-valued targets (every loss can read them)."""

SCORING_LOSSES = sorted(n for n, cls in LOSSES.items() if issubclass(cls, ScoringLossFunction))


def tiny_cross(pooling: str = "first", **kwargs) -> CrossEncoderModule:  # noqa: ANN003
    torch.manual_seed(0)
    config = CrossEncoderConfig(
        query_length=16,
        doc_length=32,
        pooling=pooling,  # type: ignore[arg-type]
        random_init=True,
        backbone_overrides=TINY_BERT,
    )
    return CrossEncoderModule(minilm_path(), config=config, **kwargs)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_scores_equal_a_hand_written_forward_of_the_same_weights(
    tmp_path: Path, pooling: str
) -> None:
    """Each pair alone, unpadded, through a BertModel loaded from the saved weights (eager
    attention), pooled by hand, times the head's weight: the module's batched scores."""
    from transformers import BertModel

    from lossbench.retrieval.rerank import rerank

    module = tiny_cross(pooling).eval()
    module.save_pretrained(tmp_path)
    bert = BertModel.from_pretrained(
        tmp_path, attn_implementation="eager", add_pooling_layer=False
    ).eval()
    weight = module.score_head.weight[0].detach()
    expected = []
    with torch.no_grad():
        for query, doc in PAIRS:
            encoding = module.tokenizer(query, doc, return_tensors="pt")
            hidden = bert(**encoding).last_hidden_state[0]  # (L, H)
            pooled = hidden[0] if pooling == "first" else hidden.mean(0)
            expected.append(float(pooled @ weight))
    got = module.score_pairs([q for q, _ in PAIRS], [d for _, d in PAIRS])  # one padded batch
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    docs = {f"d{i}": d for i, (_, d) in enumerate(PAIRS)}
    queries = {"q1": "wing stall", "q2": "supersonic nozzle flow", "q3": "heat"}
    candidates = {"q1": ["d0", "d1"], "q2": ["d2"], "q3": ["d3"]}
    run = rerank(module, candidates, queries, docs, batch_size=3, progress=False)
    flat = [run["q1"]["d0"], run["q1"]["d1"], run["q2"]["d2"], run["q3"]["d3"]]
    assert flat == pytest.approx(expected, abs=1e-5)


def test_ragged_lists_are_scored_per_pair_and_padding_stays_out(tiny_cross_module) -> None:
    seen = {}

    class Recorder(ScoringLossFunction):
        def compute(self, scores, targets, mask):  # noqa: ANN001, ANN202
            seen.update(scores=scores.detach().clone(), mask=mask.clone())
            return scores.sum() * 0

    module = tiny_cross_module.eval()
    module.loss_functions, module.loss_weights, module.loss_names = [Recorder()], [1.0], ["r"]
    module.compute_losses(module.train_collator()(SAMPLES))
    assert seen["mask"].tolist() == [[True, True, True], [True, True, False]]
    for row, sample in enumerate(SAMPLES):
        alone = module.score_pairs([sample.query_text] * len(sample.doc_texts), sample.doc_texts)
        assert seen["scores"][row, : len(alone)].tolist() == pytest.approx(alone.tolist(), abs=1e-5)


@pytest.mark.parametrize("name", SCORING_LOSSES)
def test_every_scoring_loss_trains_a_cross_encoder(name: str) -> None:
    module = tiny_cross(loss_functions=[LOSSES[name]()])
    batch = module.train_collator()(SAMPLES)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    watched = {
        "head": module.score_head.weight,
        "layer": module.backbone.encoder.layer[0].attention.self.query.weight,
    }
    before = {key: tensor.detach().clone() for key, tensor in watched.items()}
    for _ in range(3):
        values = module.compute_losses(batch)
        assert torch.isfinite(values["loss"]), (name, values)
        values["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for key, tensor in watched.items():
        assert not torch.equal(before[key], tensor.detach()), f"{name} left the {key} unchanged"


@pytest.mark.parametrize("loss", [InBatchCrossEntropy(), L2Regularization()])
def test_losses_a_cross_encoder_cannot_feed_are_refused(loss) -> None:  # noqa: ANN001
    module = tiny_cross(loss_functions=[loss])
    with pytest.raises(TypeError, match="does not compute.*use a scoring loss"):
        module.compute_losses(module.train_collator()(SAMPLES))


def test_a_saved_cross_encoder_loads_back_bit_identical(tmp_path: Path) -> None:
    from lossbench.models import BiEncoderModule

    module = tiny_cross().eval()
    with torch.no_grad():  # a trained head, not the fresh init
        module.score_head.weight.add_(0.5)
    module.save_pretrained(tmp_path / "saved")
    loaded = CrossEncoderModule.from_pretrained(tmp_path / "saved").eval()
    assert loaded.config == CrossEncoderConfig(query_length=16, doc_length=32)
    original, reloaded = module.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    assert all(torch.equal(original[key], reloaded[key]) for key in original)
    queries, docs = [q for q, _ in PAIRS], [d for _, d in PAIRS]
    assert torch.equal(module.score_pairs(queries, docs), loaded.score_pairs(queries, docs))
    with pytest.raises(ValueError, match="unknown config class 'CrossEncoderConfig'"):
        BiEncoderModule.from_pretrained(tmp_path / "saved")


def test_a_bi_encoder_folder_is_not_a_cross_encoder(tmp_path: Path, tiny_module) -> None:
    tiny_module.save_pretrained(tmp_path / "dpr")
    with pytest.raises(ValueError, match="holds a DprConfig model, not a cross-encoder"):
        CrossEncoderModule.from_pretrained(tmp_path / "dpr")
    with pytest.raises(
        FileNotFoundError, match="not written by CrossEncoderModule.save_pretrained"
    ):
        CrossEncoderModule.from_pretrained(tmp_path)


def test_lengths_beyond_the_backbones_positions_are_refused() -> None:
    config = CrossEncoderConfig(
        query_length=32, doc_length=600, random_init=True, backbone_overrides=TINY_BERT
    )
    with pytest.raises(ValueError, match="exceed the backbone's 512 positions"):
        CrossEncoderModule(minilm_path(), config=config)
    with pytest.raises(ValueError, match="leaves no room for the doc"):
        CrossEncoderConfig(query_length=32, max_length=32)
