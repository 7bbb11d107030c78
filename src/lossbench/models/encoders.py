"""Text encoders: a transformer backbone plus what turns its token states into one vector per text.

* :class:`DenseEncoder` (DPR): pooling, an optional linear projection, optional L2 normalization.
* :class:`SpladeEncoder`: an MLM head over every token, ``log(1 + relu(.))``, pooling over tokens:
  a non-negative vocabulary-sized vector.
* :class:`~lossbench.models.colbert.ColEncoder` (ColBERT): a projected, normalized vector per token.

Each encoder says how its embeddings are compared (:attr:`TextEncoder.scoring`, see
:mod:`lossbench.models.scoring`).

Each encoder saves itself as a Hugging Face folder (the backbone) plus ``lossbench_head.safetensors``
(the parameters around the backbone: projection or MLM head), and loads back from that folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel

from lossbench.models.backbone import load_backbone, load_mlm_head_state, pool
from lossbench.models.config import BiEncoderConfig, ColConfig, DprConfig, SpladeConfig
from lossbench.models.scoring import DotProduct, Scoring

log = logging.getLogger("lossbench")

HEAD_FILE = "lossbench_head.safetensors"
"""The encoder's parameters that are not part of the Hugging Face backbone."""

DECODE_BUDGET = 1 << 25
"""Logits ``(B, chunk, V)`` materialized at once by SPLADE's max pooling (128 MiB in fp32)."""

BACKWARD_BUDGET = 1 << 24
"""Elements of the ``(pairs, H)`` blocks of :class:`MaxPooledDecode`'s backward."""


class TextEncoder(nn.Module):
    """A backbone and the layers after it; ``forward(encoding) -> (B, dim)``."""

    scoring: ClassVar[Scoring] = DotProduct()
    """How two of its embeddings are compared (single vectors: the dot product)."""

    def __init__(self, backbone: PreTrainedModel, config: BiEncoderConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config

    def encode(self, encoding: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        """Texts' token ids ``(B, L)`` as queries or docs (``kind``) to their embeddings; a
        single-vector encoder treats both alike: ``(B, dim)``."""
        return self(encoding)  # type: ignore[no-any-return]

    def head_state(self) -> dict[str, torch.Tensor]:
        """The parameters outside the backbone, by name (empty when there are none)."""
        return {
            name: tensor
            for name, tensor in self.state_dict().items()
            if not name.startswith("backbone.")
        }

    def save(self, folder: str | Path) -> None:
        """Write the backbone as a Hugging Face folder and the other parameters beside it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(folder)
        head = self.head_state()
        if head:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in head.items()}, folder / HEAD_FILE
            )

    def load_head(self, folder: str | Path) -> None:
        """Load the parameters written by :meth:`save` (strict: names and shapes must match)."""
        expected = self.head_state()
        path = Path(folder) / HEAD_FILE
        if not expected:
            return
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: the folder was saved by a model without "
                f"{', '.join(sorted(expected))}; load it with the config it was saved with "
                "(BiEncoderModule.from_pretrained(folder) without config=...)"
            )
        state = load_file(path)
        if set(state) != set(expected):
            raise ValueError(
                f"{path} holds {sorted(state)} but this encoder has {sorted(expected)}; load it with "
                "the config it was saved with (BiEncoderModule.from_pretrained(folder))"
            )
        self.load_state_dict(state, strict=False)  # the backbone is loaded already

    def embedding_matrix(self) -> torch.Tensor:
        """The backbone's input embeddings ``(V, H)`` (SPLADE's tied decoder)."""
        weight = self.backbone.get_input_embeddings().weight
        assert isinstance(weight, torch.Tensor)
        return weight

    def hidden_states(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.backbone(**encoding).last_hidden_state  # (B, L, H)


class DenseEncoder(TextEncoder):
    """DPR: ``v = normalize?(W · pool(h) + b)``; see :class:`~lossbench.models.DprConfig`."""

    def __init__(self, backbone: PreTrainedModel, config: DprConfig) -> None:
        super().__init__(backbone, config)
        hidden_size = int(backbone.config.hidden_size)
        self.projection: nn.Linear | None = None
        if config.projection is not None:
            self.projection = nn.Linear(
                hidden_size,
                config.embedding_dim or hidden_size,
                bias=config.projection == "linear",
            )
        self.normalize = config.normalize or config.similarity == "cosine"

    def forward(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.hidden_states(encoding)  # (B, L, H)
        vectors = pool(hidden, encoding["attention_mask"], self.config.pooling)  # (B, H)
        if self.projection is not None:
            vectors = self.projection(vectors)  # (B, dim)
        if self.normalize:
            vectors = F.normalize(vectors, dim=-1)  # (B, dim)
        return vectors


class MlmHead(nn.Module):
    """BERT's masked-language-model head without its decoder matrix (tied to the input embeddings).

    ``logits = LayerNorm(act(dense(h))) · E^T + bias`` with ``E`` the backbone's input embeddings
    ``(V, H)``; the decoder weight is read from the backbone at every call, so the tie holds through
    copies, device moves and loading.
    """

    def __init__(
        self, hidden_size: int, vocab_size: int, activation: str, layer_norm_eps: float
    ) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = ACT2FN[activation]
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def reset_parameters(self, std: float) -> None:
        nn.init.normal_(self.dense.weight, std=std)
        nn.init.zeros_(self.dense.bias)
        nn.init.ones_(self.layer_norm.weight)
        nn.init.zeros_(self.layer_norm.bias)
        nn.init.zeros_(self.bias)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.activation(self.dense(hidden)))  # (B, L, H)

    def decode(self, transformed: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(transformed, embeddings, self.bias)  # (B, L, V)


class MaxPooledDecode(torch.autograd.Function):
    """``max_{i in M} (t_i · E^T + bias)``: the max over real tokens of the MLM logits, ``(B, V)``.

    Forward decodes a few tokens at a time (``chunk``) and keeps a running max and its argmax,
    so no ``(B, L, V)`` tensor is held, let alone saved for backward. The gradient of a max reaches
    only the token that attains it: for each entry ``(b, j)`` with a non-zero upstream gradient
    ``g``, ``dt[b, i*] += g * E[j]`` and ``dE[j] += g * t[b, i*]`` (``i* = argmax``), which costs
    ``O(pairs * H)`` instead of the dense ``O(B * L * V * H)``; after ``log(1 + relu(.))`` only
    positive maxima have a gradient, so the sparser the vectors, the cheaper the backward.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        transformed: torch.Tensor,
        embeddings: torch.Tensor,
        bias: torch.Tensor,
        mask: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:
        best, where = running_max_logits(
            transformed, embeddings, bias, mask, chunk, keep_argmax=True
        )
        ctx.save_for_backward(transformed, embeddings, where)
        ctx.bias_dtype = bias.dtype
        return best

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        transformed, embeddings, where = ctx.saved_tensors
        batch, length, hidden = transformed.shape
        grad = grad.float()  # (B, V)
        pairs = grad.nonzero()  # (P, 2): (text, term) entries with a gradient
        flat_t = transformed.reshape(batch * length, hidden)  # (B*L, H)
        grad_t = torch.zeros(batch * length, hidden, device=grad.device)  # (B*L, H) fp32
        grad_e = torch.zeros(embeddings.shape, device=grad.device)  # (V, H) fp32
        step = max(1, BACKWARD_BUDGET // hidden)
        for start in range(0, pairs.shape[0], step):
            texts, terms = pairs[start : start + step].unbind(1)  # (p,) each
            tokens = texts * length + where[texts, terms]  # (p,) rows of flat_t
            g = grad[texts, terms].unsqueeze(1)  # (p, 1)
            grad_t.index_add_(0, tokens, g * embeddings[terms].float())  # (p, H) into (B*L, H)
            grad_e.index_add_(0, terms, g * flat_t[tokens].float())  # (p, H) into (V, H)
        return (
            grad_t.view(batch, length, hidden).to(transformed.dtype),
            grad_e.to(embeddings.dtype),
            grad.sum(0).to(ctx.bias_dtype),
            None,
            None,
        )


def running_max_logits(
    transformed: torch.Tensor,
    embeddings: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor,
    chunk: int,
    keep_argmax: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The max over real tokens of the MLM logits, ``(B, L, H) -> (B, V)``, decoded ``chunk``
    tokens at a time, and the token attaining each max ``(B, V)`` (ties: the earlier token) when
    ``keep_argmax`` (:class:`MaxPooledDecode`'s forward); else no argmax is tracked (encoding for
    an index) and the second tensor is empty."""
    best: torch.Tensor | None = None
    where = torch.empty(0, dtype=torch.long, device=transformed.device)
    for start in range(0, transformed.shape[1], chunk):
        logits = F.linear(transformed[:, start : start + chunk], embeddings, bias)  # (B, c, V)
        logits.masked_fill_(~mask[:, start : start + chunk, None], torch.finfo(logits.dtype).min)
        if not keep_argmax:
            part = logits.amax(dim=1)  # (B, V)
            best = part if best is None else torch.maximum(best, part)
            continue
        values, positions = logits.max(dim=1)  # (B, V) each
        if best is None:
            best, where = values, positions
        else:
            better = values > best  # (B, V); ties keep the earlier token
            best = torch.where(better, values, best)
            where = torch.where(better, positions + start, where)
    assert best is not None
    return best, where


def splade_activation(logits: torch.Tensor) -> torch.Tensor:
    """``log(1 + relu(x))``: non-negative, 0 wherever the logit is not positive."""
    return torch.log1p(torch.relu(logits))


class SpladeEncoder(TextEncoder):
    """SPLADE: ``v_j = pool_i log(1 + relu(w_ij))`` over the MLM logits; see
    :class:`~lossbench.models.SpladeConfig`.

    Max pooling uses that ``log(1 + relu(.))`` is non-decreasing: ``max_i f(w_ij) = f(max_i w_ij)``,
    the same values and the same gradients (zero where the max logit is not positive). The max of
    the logits is taken by :class:`MaxPooledDecode`, a few tokens at a time, so memory stays bounded
    by :data:`DECODE_BUDGET` elements, not ``B * L * V``, in training as in indexing.
    """

    def __init__(self, backbone: PreTrainedModel, config: SpladeConfig) -> None:
        super().__init__(backbone, config)
        backbone_config = backbone.config
        activation = getattr(backbone_config, "hidden_act", None) or getattr(
            backbone_config, "activation", "gelu"
        )
        self.head = MlmHead(
            hidden_size=int(backbone_config.hidden_size),
            vocab_size=int(self.embedding_matrix().shape[0]),
            activation=str(activation),
            layer_norm_eps=float(getattr(backbone_config, "layer_norm_eps", 1e-12)),
        )
        self.head.reset_parameters(float(getattr(backbone_config, "initializer_range", 0.02)))
        self.normalize = config.similarity == "cosine"

    @property
    def vocab_size(self) -> int:
        return int(self.head.bias.shape[0])

    def token_logits(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        """The MLM logits of every token ``(B, L, V)`` (for tests and inspection)."""
        transformed = self.head.transform(self.hidden_states(encoding))  # (B, L, H)
        return self.head.decode(transformed, self.embedding_matrix())

    def forward(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = encoding["attention_mask"].bool()  # (B, L)
        transformed = self.head.transform(self.hidden_states(encoding))  # (B, L, H)
        embeddings = self.embedding_matrix()  # (V, H)
        pooling = self.config.pooling
        if pooling == "first":
            logits = self.head.decode(transformed[:, 0], embeddings)  # (B, V)
            vectors = splade_activation(logits)  # (B, V)
        elif pooling == "mean":
            weights = splade_activation(self.head.decode(transformed, embeddings))  # (B, L, V)
            vectors = pool(weights, mask, "mean")  # (B, V)
        else:
            batch, length = mask.shape
            chunk = max(1, min(length, DECODE_BUDGET // max(batch * self.vocab_size, 1)))
            if torch.is_grad_enabled() and transformed.requires_grad:
                best = MaxPooledDecode.apply(transformed, embeddings, self.head.bias, mask, chunk)
            else:  # encoding for an index: a running max, no argmax to keep
                best, _ = running_max_logits(
                    transformed, embeddings, self.head.bias, mask, chunk, keep_argmax=False
                )
            vectors = splade_activation(best)  # (B, V)
        if self.normalize:
            vectors = F.normalize(vectors, dim=-1)  # (B, V)
        return vectors

    def load_pretrained_head(self, model_name_or_path: str) -> bool:
        """Copy the checkpoint's MLM head into :attr:`head`; False (head left fresh) if it has none."""
        state = load_mlm_head_state(model_name_or_path)
        if state is None:
            return False
        own = self.head.state_dict()
        mismatched = [k for k, v in state.items() if own[k].shape != v.shape]
        if mismatched:
            raise ValueError(
                f"the MLM head of {model_name_or_path} does not fit the backbone: {mismatched}"
            )
        self.head.load_state_dict(state, strict=True)
        return True


def build_encoder(
    model_name_or_path: str,
    config: BiEncoderConfig,
    saved_folder: Path | None = None,
    tokenizer: Any = None,
) -> TextEncoder:
    """The encoder for ``config``: from ``saved_folder`` (written by :meth:`TextEncoder.save`) when
    given, else from ``model_name_or_path`` (pretrained, or random with ``config.random_init``).
    ``tokenizer``: the model's (loaded from the source when None and the encoder needs one)."""
    source = str(saved_folder) if saved_folder is not None else model_name_or_path
    backbone = load_backbone(source, config)
    encoder: TextEncoder
    if isinstance(config, ColConfig):
        from lossbench.models.backbone import load_tokenizer
        from lossbench.models.colbert import ColEncoder

        encoder = ColEncoder(backbone, config, tokenizer or load_tokenizer(source))
    elif isinstance(config, SpladeConfig):
        encoder = SpladeEncoder(backbone, config)
        fresh = saved_folder is None and not config.random_init
        if fresh and not encoder.load_pretrained_head(model_name_or_path):
            log.warning(
                "%s has no pretrained MLM head: the SPLADE head (dense, LayerNorm, vocabulary "
                "bias; decoder tied to the input embeddings) starts from a fresh random init",
                model_name_or_path,
            )
    elif isinstance(config, DprConfig) or type(config) is BiEncoderConfig:
        encoder = DenseEncoder(backbone, _as_dpr(config))
    else:
        raise TypeError(
            f"no encoder for {type(config).__name__}; use DprConfig, SpladeConfig or ColConfig"
        )
    if saved_folder is not None:
        encoder.load_head(saved_folder)
    return encoder


def _as_dpr(config: BiEncoderConfig) -> DprConfig:
    if isinstance(config, DprConfig):
        return config
    values: dict[str, Any] = {k: v for k, v in config.to_dict().items() if k != "class"}
    return DprConfig(**values)
