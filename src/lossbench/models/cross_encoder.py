"""CrossEncoderModule: a cross-encoder (monoBERT) with its losses, optimizer and LR schedule, trained
by Lightning like the bi-encoder, saved and loaded the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lossbench.data.pairs import PairBatch, PairCollator, PairTokenizer
from lossbench.data.token_cache import TokenCache
from lossbench.loss.base import ScoringLossFunction
from lossbench.models.backbone import load_backbone, load_tokenizer, pool
from lossbench.models.config import BiEncoderConfig, CrossEncoderConfig
from lossbench.models.encoders import HEAD_FILE
from lossbench.models.module import SAVED_CONFIG, SAVED_FORMAT, read_saved_config
from lossbench.models.ranking_module import LossSpec, RankingModule
from lossbench.models.saved import read_saved_json


def saved_config_class(folder: str | Path) -> str | None:
    """The config class named in ``folder``'s ``lossbench_config.json`` (None: no such file), so a
    folder can be told a bi-encoder's or a cross-encoder's before it is loaded."""
    path = Path(folder) / SAVED_CONFIG
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    return str(saved.get("config", {}).get("class", "DprConfig"))


def read_saved_cross_encoder_config(folder: str | Path) -> CrossEncoderConfig | None:
    """The config saved in ``folder`` by :meth:`CrossEncoderModule.save_pretrained`, or None."""
    saved = read_saved_json(Path(folder) / SAVED_CONFIG, SAVED_FORMAT)
    if saved is None:
        return None
    if saved["config"].get("class") != CrossEncoderConfig.__name__:
        raise ValueError(
            f"{folder} holds a {saved['config'].get('class')} model, not a cross-encoder: load it "
            "with BiEncoderModule.from_pretrained"
        )
    return CrossEncoderConfig.from_dict(saved["config"])


def read_saved_model_config(folder: str | Path) -> BiEncoderConfig | CrossEncoderConfig | None:
    """The config a lossbench module of any family saved in ``folder``, or None: the saved class
    decides which reader (a cross-encoder's config, or a bi-encoder's)."""
    name = saved_config_class(folder)
    if name is None:
        return None
    if name == CrossEncoderConfig.__name__:
        return read_saved_cross_encoder_config(folder)
    return read_saved_config(folder)


class CrossEncoderModule(RankingModule):
    """A cross-encoder (query and doc read together, a score head on the pooled output; see
    :class:`~lossbench.models.config.CrossEncoderConfig`) and its training.

    It trains with every scoring loss (each query's ``(Q, D)`` scores against its targets): pairwise,
    listwise, approximate and distillation losses, on triples or a teacher run as the bi-encoder
    does. Losses that need embeddings or in-batch scores cannot apply (refused with a TypeError).

    Args:
        model_name_or_path: a local model folder (or, with internet, a hub id) for the backbone and
            tokenizer, or a folder written by :meth:`save_pretrained` (its trained weights and head;
            its config unless ``config`` is given).
        config: a :class:`CrossEncoderConfig` (default: its defaults).
        loss_functions: losses as instances, classes, class paths, or ``(loss, weight)`` pairs.
    """

    def __init__(
        self,
        model_name_or_path: str,
        config: CrossEncoderConfig | None = None,
        loss_functions: Sequence[LossSpec] | None = None,
    ) -> None:
        super().__init__(loss_functions)
        saved = read_saved_cross_encoder_config(model_name_or_path)
        self.config = config or saved or CrossEncoderConfig()
        if saved is not None and (self.config.random_init or self.config.backbone_overrides):
            raise ValueError(
                f"{model_name_or_path} holds a trained model: load it without random_init/"
                "backbone_overrides (CrossEncoderModule.from_pretrained(folder) uses its saved config)"
            )
        self.model_name_or_path = model_name_or_path
        self.tokenizer = load_tokenizer(model_name_or_path)
        self.backbone = load_backbone(model_name_or_path, self.config)
        backbone_config = self.backbone.config
        self.score_head = nn.Linear(
            int(backbone_config.hidden_size), 1, bias=self.config.linear_bias
        )
        nn.init.normal_(
            self.score_head.weight, std=float(getattr(backbone_config, "initializer_range", 0.02))
        )
        if self.score_head.bias is not None:
            nn.init.zeros_(self.score_head.bias)
        if saved is not None:
            self._load_head(Path(model_name_or_path))
        self.token_cache = TokenCache()  # query and doc parts seen so far: later passes skip them
        self.pairs = PairTokenizer(
            self.tokenizer, self.config.query_length, self.config.doc_length, self.config.max_length
        )
        positions = getattr(backbone_config, "max_position_embeddings", None)
        if positions is not None and self.pairs.max_length > int(positions):
            raise ValueError(
                f"pairs of up to {self.pairs.max_length} tokens (query_length + doc_length + "
                f"special tokens, or max_length) exceed the backbone's {positions} positions; "
                "lower doc_length or set max_length"
            )
        self.train()  # Hugging Face loads weights in eval mode; training wants dropout on

    # ---- scoring ------------------------------------------------------------------------------
    def score(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokenized pairs ``(B, L)`` (see :meth:`pair_tokenizer`) to one score each ``(B,)``."""
        hidden = self.backbone(**encoding).last_hidden_state  # (B, L, H)
        pooled = pool(hidden, encoding["attention_mask"], self.config.pooling)  # (B, H)
        return self.score_head(pooled).squeeze(-1)  # (B,)

    def forward(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.score(encoding)

    def pair_tokenizer(self, cached: bool = False) -> PairTokenizer:
        """The module's pair tokenizer (``cached``: through its token cache, for inference passes
        that see the same texts again; a DataLoader worker's additions would be lost)."""
        if not cached:
            return self.pairs
        config = self.config
        return PairTokenizer(
            self.tokenizer,
            config.query_length,
            config.doc_length,
            config.max_length,
            cache=self.token_cache,
        )

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> torch.Tensor:
        """Scores ``(N,)`` of the pairs ``(queries[i], docs[i])`` in one batch, in eval mode and
        inference mode, float32 on the module's device (for a few pairs;
        :func:`lossbench.retrieval.rerank.rerank` for a run)."""
        encoding = {k: v.to(self.device) for k, v in self.pairs(queries, docs).items()}
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self.score(encoding).float()
        finally:
            self.train(was_training)

    # ---- saving and loading -------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the trained model to ``folder``: the backbone as a Hugging Face folder
        (``config.json``, ``model.safetensors``, the tokenizer), the score head in
        ``lossbench_head.safetensors`` and the config in ``lossbench_config.json``. Load it back with
        :meth:`from_pretrained`; the losses are not saved."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        head = {
            f"score_head.{name}": tensor.detach().cpu().contiguous()
            for name, tensor in self.score_head.state_dict().items()
        }
        save_file(head, folder / HEAD_FILE)
        config = self.config.to_dict()
        config.update(random_init=False, backbone_overrides={})  # baked into the saved weights
        saved = {"format": SAVED_FORMAT, "config": config, "trained_from": self.model_name_or_path}
        (folder / SAVED_CONFIG).write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
        return folder

    def _load_head(self, folder: Path) -> None:
        path = folder / HEAD_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: the cross-encoder's score head was not saved"
            )
        state = load_file(path)
        expected = {f"score_head.{name}" for name in self.score_head.state_dict()}
        if set(state) != expected:
            raise ValueError(
                f"{path} holds {sorted(state)} but this score head has {sorted(expected)}; load it "
                "with the config it was saved with (CrossEncoderModule.from_pretrained(folder))"
            )
        self.score_head.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()})

    @staticmethod
    def read_own_saved_config(folder: str | Path) -> CrossEncoderConfig | None:
        return read_saved_cross_encoder_config(folder)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        loss_functions: Sequence[LossSpec] | None = None,
        tracking_uri: str | None = None,
    ) -> CrossEncoderModule:
        """Load a model written by :meth:`save_pretrained` (to re-rank with, or to train further)
        from its folder or from the MLflow URI a run logged it under (``runs:/<run id>/model``,
        ``models:/<model id>``; ``tracking_uri``: the store, else MLflow's default)."""
        folder = cls.saved_model_folder(folder, tracking_uri)
        return cls(model_name_or_path=str(folder), loss_functions=loss_functions)

    # ---- training -----------------------------------------------------------------------------
    def train_collator(self, fixed_length: bool = False) -> PairCollator:
        """Pairs each query with each candidate, one sequence per pair (the config's length rules)."""
        return PairCollator(self.pairs, fixed_length)

    def _losses_of_batch(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        mask = batch.doc_mask  # (Q, D)
        real = self.score(batch.pair_encoding)  # (N,)
        scores = real.new_zeros(mask.shape).masked_scatter(mask, real)  # (Q, D); padding 0, masked
        values: dict[str, torch.Tensor] = {}
        for name, loss in zip(self.loss_names, self.loss_functions, strict=True):
            if not isinstance(loss, ScoringLossFunction):
                raise TypeError(
                    f"{type(loss).__name__} needs {loss.needs}, which a cross-encoder does not "
                    "compute (it scores each query's own candidates only); use a scoring loss"
                )
            values[name] = loss(scores, batch.targets, mask)
        values["loss"] = self.weighted_total(values)
        return values
