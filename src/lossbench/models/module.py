"""BiEncoderModule: a bi-encoder with its losses, optimizer and LR schedule, trained by Lightning."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lossbench.data.batches import TrainBatch, TrainCollator
from lossbench.data.token_cache import TokenCache
from lossbench.loss.base import (
    InBatchLossFunction,
    LossFunction,
    Needs,
    RegularizationLossFunction,
    ScoringLossFunction,
)
from lossbench.models.backbone import load_tokenizer
from lossbench.models.config import BiEncoderConfig, DprConfig, config_from_dict
from lossbench.models.encoders import TextEncoder, build_encoder
from lossbench.models.grad_cache import GradCache, all_reduce_gradients, check_chunk_size
from lossbench.models.ranking_module import LossSpec, RankingModule
from lossbench.models.saved import read_saved_json
from lossbench.models.scoring import Scoring, scaled
from lossbench.training.distributed import InBatchScores, distributed_position, in_batch_inputs

SAVED_CONFIG = "lossbench_config.json"
"""The file that marks a folder written by :meth:`BiEncoderModule.save_pretrained`."""
SAVED_FORMAT = 1


def read_saved_config(folder: str | Path) -> BiEncoderConfig | None:
    """The config saved in ``folder`` by :meth:`BiEncoderModule.save_pretrained`, or None."""
    saved = read_saved_json(Path(folder) / SAVED_CONFIG, SAVED_FORMAT)
    return None if saved is None else config_from_dict(saved["config"])


def check_losses_fit(config: BiEncoderConfig, losses: Sequence[LossFunction]) -> None:
    """Raise a ``ValueError`` for losses the model cannot feed: the regularizers take one vector
    per text (``Needs.EMBEDDINGS``, ``Needs.SPARSE``), which a multi-vector model does not make
    (its config's ``provides`` lacks ``Needs.EMBEDDINGS``)."""
    if Needs.EMBEDDINGS in config.provides:
        return
    single = Needs.EMBEDDINGS | Needs.SPARSE
    refused = [type(loss).__name__ for loss in losses if loss.needs & single]
    if refused:
        raise ValueError(
            f"{', '.join(refused)} regularizes one vector per text, but {type(config).__name__} "
            "makes a vector per token (a ColBERT model); train it without a regularizer "
            "(regularizer=none): its scoring and in-batch losses all apply"
        )


class BiEncoderModule(RankingModule):
    """A bi-encoder (queries and docs encoded separately, scored by similarity) and its training.

    Args:
        model_name_or_path: a local model folder (or, with internet, a hub id) for weights and tokenizer,
            or a folder written by :meth:`save_pretrained` (its trained weights; its config unless
            ``config`` is given).
        config: a :class:`DprConfig` (the default), :class:`SpladeConfig` or :class:`ColConfig`.
        loss_functions: losses as instances, classes, class paths, or ``(loss, weight)`` pairs; the total
            loss is ``sum_k weight_k * loss_k``. ``module.loss_functions[k]`` is the k-th loss itself, so
            a scheduler key ``loss_functions.1.query_weight`` names the second loss's attribute.
    """

    def __init__(
        self,
        model_name_or_path: str,
        config: BiEncoderConfig | None = None,
        loss_functions: Sequence[LossSpec] | None = None,
    ) -> None:
        super().__init__(loss_functions)
        saved = read_saved_config(model_name_or_path)
        self.config = config or saved or DprConfig()
        check_losses_fit(self.config, self.loss_functions)
        self.model_name_or_path = model_name_or_path
        self.tokenizer = load_tokenizer(model_name_or_path)
        self.encoder, self.separate_doc_encoder = self._build_encoders(saved is not None)
        self.train()  # Hugging Face loads weights in eval mode; training wants dropout on
        # token ids of the texts encoded so far: a corpus's later encoding passes skip the tokenizer
        self.token_cache = TokenCache()
        self.grad_cache_chunk_size: int | None = None  # set_grad_cache
        self._pending_cache: GradCache | None = None  # this step's, until its backward pass
        self._all_reduce_gradients = False  # under DDP with GradCache (see on_train_start)

    def _build_encoders(self, from_saved: bool) -> tuple[TextEncoder, TextEncoder | None]:
        """The query encoder (shared with docs) and, with ``shared_encoder=False``, the doc encoder."""
        config, path, tokenizer = self.config, self.model_name_or_path, self.tokenizer
        if not from_saved:
            encoder = build_encoder(path, config, tokenizer=tokenizer)
            # the doc encoder starts as an exact copy: same architecture, same initialization
            return encoder, None if config.shared_encoder else copy.deepcopy(encoder)
        if config.random_init or config.backbone_overrides:
            raise ValueError(
                f"{path} holds a trained model: load it without random_init/backbone_overrides "
                "(BiEncoderModule.from_pretrained(folder) uses the config it was saved with)"
            )
        if config.shared_encoder:
            return build_encoder(path, config, Path(path), tokenizer), None
        for part in ("query_encoder", "doc_encoder"):
            if not (Path(path) / part).is_dir():
                raise ValueError(
                    f"{path} has no {part}/ folder: it was saved with shared_encoder=true; "
                    "load it without config=... (or with shared_encoder=true)"
                )
        return (
            build_encoder(path, config, Path(path) / "query_encoder", tokenizer),
            build_encoder(path, config, Path(path) / "doc_encoder", tokenizer),
        )

    @property
    def query_encoder(self) -> TextEncoder:
        return self.encoder

    @property
    def doc_encoder(self) -> TextEncoder:
        return self.separate_doc_encoder if self.separate_doc_encoder is not None else self.encoder

    @property
    def scoring(self) -> Scoring:
        """How a query's embedding and a doc's are compared for the losses: the encoder's (dot
        product, MaxSim), times the config's ``score_scale``."""
        return scaled(self.encoder.scoring, self.config.score_scale)

    @property
    def backbone(self) -> nn.Module:
        """The (query) encoder's transformer."""
        return self.encoder.backbone

    # ---- saving and loading -------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the trained model to ``folder``: Hugging Face folder(s) and ``lossbench_config.json``.

        The backbone is a standard Hugging Face folder (``config.json``, ``model.safetensors``, the
        tokenizer); the layers after it (projection, MLM head) go to ``lossbench_head.safetensors``.
        With ``shared_encoder=False`` the two encoders go to ``query_encoder/`` and ``doc_encoder/``.
        Load it back with :meth:`from_pretrained`; the losses are not saved.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.separate_doc_encoder is None:
            self.encoder.save(folder)
        else:
            self.encoder.save(folder / "query_encoder")
            self.separate_doc_encoder.save(folder / "doc_encoder")
        self.tokenizer.save_pretrained(folder)
        config = self.config.to_dict()
        config.update(random_init=False, backbone_overrides={})  # baked into the saved weights
        saved = {"format": SAVED_FORMAT, "config": config, "trained_from": self.model_name_or_path}
        (folder / SAVED_CONFIG).write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
        return folder

    @staticmethod
    def read_own_saved_config(folder: str | Path) -> BiEncoderConfig | None:
        return read_saved_config(folder)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        loss_functions: Sequence[LossSpec] | None = None,
        config: BiEncoderConfig | None = None,
        tracking_uri: str | None = None,
    ) -> BiEncoderModule:
        """Load a model written by :meth:`save_pretrained` (to search with, or to train further)
        from its folder or from the MLflow URI a run logged it under (``runs:/<run id>/model``,
        ``models:/<model id>``; ``tracking_uri``: the store, else MLflow's default)."""
        folder = cls.saved_model_folder(folder, tracking_uri)
        return cls(model_name_or_path=str(folder), config=config, loss_functions=loss_functions)

    # ---- encoding -----------------------------------------------------------------------------
    def encode(self, encoding: dict[str, torch.Tensor], kind: str = "query") -> torch.Tensor:
        """Texts' token ids ``(B, L)`` to embeddings: ``(B, dim)`` (``dim`` = vocabulary for SPLADE),
        or ``(B, L', dim)`` for a multi-vector model (a vector per token, zero where none counts)."""
        if kind not in ("query", "doc"):
            raise ValueError(f"kind={kind!r}; valid: query, doc")
        encoder = self.query_encoder if kind == "query" else self.doc_encoder
        return encoder.encode(encoding, kind)  # (B, *E)

    def encode_queries(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(encoding, "query")

    def encode_docs(self, encoding: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(encoding, "doc")

    # ---- GradCache ----------------------------------------------------------------------------
    def set_grad_cache(self, chunk_size: int | None) -> None:
        """Train with GradCache (:mod:`lossbench.models.grad_cache`): encode ``chunk_size`` texts
        at a time, twice, so that an in-batch loss's batch needs one chunk's activations. ``None``
        turns it off. Every loss must be an in-batch loss or a regularizer (a scoring loss has no
        batch-wide coupling to cache), and the step cannot be compiled."""
        chunk_size = check_chunk_size(chunk_size)
        if chunk_size is not None:
            check_grad_cache_losses(self.loss_functions)
            if self.compiled:
                raise ValueError(
                    "GradCache encodes in chunks outside the compiled step; set compile=false or "
                    "grad_cache.chunk_size=null"
                )
        self.grad_cache_chunk_size = chunk_size

    def on_train_start(self) -> None:
        """Under DDP with GradCache, DDP's own gradient sync is off (it allows one backward pass
        per forward pass; GradCache makes one per chunk): :meth:`backward` averages the gradients
        over the ranks itself once the last chunk is done."""
        from torch.nn.parallel import DistributedDataParallel

        model = self.trainer.strategy.model
        if self.grad_cache_chunk_size is not None and isinstance(model, DistributedDataParallel):
            model.require_backward_grad_sync = False
            self._all_reduce_gradients = True

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """Lightning's backward pass; with GradCache, the loss's gradient reaches the embeddings
        only, and the chunks' re-encoding carries it on into the parameters."""
        super().backward(loss, *args, **kwargs)
        cache, self._pending_cache = self._pending_cache, None
        if cache is None:
            return
        cache.backward(self._forward_context)
        if self._all_reduce_gradients:
            all_reduce_gradients(self.parameters())

    def _forward_context(self) -> AbstractContextManager[object]:
        """What the training step runs under (the trainer's autocast), for the re-encoding."""
        trainer = self._trainer
        if trainer is None:
            return nullcontext()
        return trainer.precision_plugin.forward_context()  # type: ignore[no-any-return]

    def _embed_batch(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The queries' ``(Q, *E)`` and real docs' ``(N, *E)`` embeddings: with a graph, or, with
        GradCache while training, as leaves whose gradient :meth:`backward` carries on."""
        if self.grad_cache_chunk_size is None or not torch.is_grad_enabled():
            return self.encode_queries(batch.query_encoding), self.encode_docs(batch.doc_encoding)
        cache = GradCache(self.grad_cache_chunk_size, self.encode)
        queries = cache.embed(batch.query_encoding, "query")  # (Q, *E)
        real_docs = cache.embed(batch.doc_encoding, "doc")  # (N, *E)
        self._pending_cache = cache
        return queries, real_docs

    # ---- training -----------------------------------------------------------------------------
    def train_collator(self, fixed_length: bool = False) -> TrainCollator:
        """Tokenizes each batch's queries and docs separately, to ``query_length`` / ``doc_length``."""
        config = self.config
        return TrainCollator(self.tokenizer, config.query_length, config.doc_length, fixed_length)

    def _losses_of_batch(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Encode the batch, score each query against its own docs, and compute every loss."""
        queries, real_docs = self._embed_batch(batch)  # (Q, *E), (N, *E)
        docs = docs_per_query(real_docs, batch.doc_mask)  # (Q, D, *E)
        scores = self.scoring.per_query(queries, docs)  # (Q, D)
        values = self._loss_values(batch, scores, queries, docs, real_docs)
        values["loss"] = self.weighted_total(values)
        if self.config.sparse:  # average non-zeros per vector: how sparse the index will be
            values["query_nnz"] = (queries.detach() != 0).sum(-1).float().mean()
            values["doc_nnz"] = (real_docs.detach() != 0).sum(-1).float().mean()
        return values

    def _loss_values(
        self,
        batch: TrainBatch,
        scores: torch.Tensor,
        queries: torch.Tensor,
        docs: torch.Tensor,
        real_docs: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Each loss by its log name, dispatched on its contract: scoring losses take ``scores``
        ``(Q, D)``, in-batch losses every query against the batch's docs ``(Q, D, *E)`` (or every
        device's), regularizers the embeddings of the queries and of the real docs."""
        in_batch: dict[bool, InBatchScores] = {}  # local, and gathered across devices
        values: dict[str, torch.Tensor] = {}
        for name, loss in zip(self.loss_names, self.loss_functions, strict=True):
            if isinstance(loss, ScoringLossFunction):
                values[name] = loss(scores, batch.targets, batch.doc_mask)
            elif isinstance(loss, InBatchLossFunction):
                gather = loss.gather_across_devices and distributed_position()[1] > 1
                if gather not in in_batch:
                    in_batch[gather] = in_batch_inputs(
                        queries, docs, batch.doc_mask, batch.targets, gather, self.scoring
                    )
                values[name] = in_batch[gather].apply(loss)
                dropped = loss.false_negatives_dropped()
                if dropped is not None:  # logged as train/false_negatives_dropped
                    total = values.get("false_negatives_dropped", 0.0)
                    values["false_negatives_dropped"] = total + dropped.float()
            elif isinstance(loss, RegularizationLossFunction):
                values[name] = loss(queries, real_docs)
            else:  # pragma: no cover - normalize_losses admits LossFunction subclasses only
                raise TypeError(f"{type(loss).__name__} follows none of the loss contracts")
        return values


def check_grad_cache_losses(losses: Sequence[LossFunction]) -> None:
    """Raise a ``ValueError`` unless GradCache fits the losses: at least one in-batch loss, and
    besides it only regularizers (both see the batch's embeddings, which GradCache caches)."""
    in_batch = [loss for loss in losses if isinstance(loss, InBatchLossFunction)]
    others = [
        type(loss).__name__
        for loss in losses
        if not isinstance(loss, InBatchLossFunction | RegularizationLossFunction)
    ]
    if in_batch and not others:
        return
    from lossbench.loss import LOSSES

    names = ", ".join(others) or "no in-batch loss"
    fitting = [f"loss={n}" for n, cls in LOSSES.items() if issubclass(cls, InBatchLossFunction)]
    raise ValueError(
        f"GradCache (grad_cache.chunk_size) caches the gradient of an in-batch loss, but the losses "
        f"have {names}: a loss over each query's own candidates needs no cache (lower "
        f"data.train_batch_size instead); choose an in-batch loss ({', '.join(fitting)}) or set "
        "grad_cache.chunk_size=null"
    )


def docs_per_query(real_docs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The real docs' embeddings ``(N, *E)``, in row-major order of ``mask`` ``(Q, D)``, placed in
    their ``(Q, D, *E)`` slots; padding slots hold zeros (masked out of every loss)."""
    num_queries, num_docs = mask.shape
    if real_docs.shape[0] == num_queries * num_docs:  # every query has D docs: no padding
        return real_docs.view(num_queries, num_docs, *real_docs.shape[1:])
    positions = mask.flatten().nonzero().squeeze(1)  # (N,)
    docs = real_docs.new_zeros(num_queries * num_docs, *real_docs.shape[1:])
    docs = docs.index_copy(0, positions, real_docs)  # (Q*D, *E)
    return docs.view(num_queries, num_docs, *real_docs.shape[1:])
