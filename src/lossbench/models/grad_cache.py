"""GradCache: an in-batch loss over a batch of any size, in the memory of one chunk.

An in-batch loss couples every query with every doc of the batch, so its gradient cannot be split
into independent sub-batches: plain training keeps the activations of the whole batch. GradCache
(Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup", RepL4NLP 2021) splits the step in three:

1. encode the batch chunk by chunk without a graph, and keep each chunk's random state;
2. compute the losses on those embeddings, made leaves that require a gradient, and backpropagate
   to the embeddings only: ``g = d loss / d embeddings`` (the graph of the scores is small);
3. re-encode chunk by chunk with a graph, each under the random state of its first pass (the same
   dropout masks), and backpropagate ``g``'s rows of the chunk into the parameters
   (``torch.autograd.backward(embeddings, g)``), freeing the chunk's activations before the next.

The parameters' gradient is then exactly the gradient of the losses on the batch encoded chunk by
chunk; without dropout (or with a chunk as large as the batch) it is the plain step's gradient. Each
text is encoded twice (step 1 has no backward pass), and the peak memory is one chunk's
activations plus the batch's embeddings.

Written here rather than taken from the ``grad-cache`` package: that package wraps the model call
and the optimizer step itself, while Lightning owns the step here (precision, clipping, schedulers,
gradient accumulation, DDP), so only steps 1 and 3 are needed, as two functions on the module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch

Encode = Callable[[dict[str, torch.Tensor], str], torch.Tensor]
"""``encode(encoding, kind) -> embeddings``: the module's encoder call (``kind``: query or doc)."""


@dataclass
class _Chunk:
    start: int
    stop: int
    cpu_state: torch.Tensor
    cuda_state: torch.Tensor | None


@dataclass
class _Embedded:
    kind: str
    encoding: dict[str, torch.Tensor]
    leaf: torch.Tensor  # the batch's embeddings, detached, requiring a gradient
    chunks: list[_Chunk] = field(default_factory=list)


def check_chunk_size(chunk_size: int | None) -> int | None:
    """Return ``chunk_size`` (None: GradCache off), raising a ``ValueError`` unless it is >= 1."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(
            f"grad_cache.chunk_size must be null (off) or an integer >= 1, got {chunk_size!r}"
        )
    return chunk_size


def _rows(encoding: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    return {key: value[start:stop] for key, value in encoding.items()}


def _batch_size(encoding: dict[str, torch.Tensor]) -> int:
    return int(next(iter(encoding.values())).shape[0])


class GradCache:
    """One training step's cache: :meth:`embed` (steps 1 and 2's leaves), :meth:`backward` (step 3).

    Args:
        chunk_size: texts encoded at once (queries and docs alike).
        encode: the encoder call, the same in both passes.

    Example (``module.encode(encoding, kind)``, a loss on the embeddings)::

        cache = GradCache(4, module.encode)
        queries = cache.embed(query_encoding, "query")  # (Q, dim), no graph
        docs = cache.embed(doc_encoding, "doc")  # (N, dim)
        loss_of(queries, docs).backward()  # gradients on the embeddings only
        cache.backward()  # ... and now on the parameters
    """

    def __init__(self, chunk_size: int, encode: Encode) -> None:
        self.chunk_size = int(chunk_size)
        self.encode = encode
        self._embedded: list[_Embedded] = []

    def embed(self, encoding: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        """Encode ``encoding`` ``(B, L)`` chunk by chunk without a graph; return the embeddings
        ``(B, *E)`` as a leaf that requires a gradient, and remember each chunk's random state."""
        embedded: list[torch.Tensor] = []
        chunks: list[_Chunk] = []
        size = _batch_size(encoding)
        for start in range(0, size, self.chunk_size):
            stop = min(start + self.chunk_size, size)
            device = next(iter(encoding.values())).device
            cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
            chunks.append(_Chunk(start, stop, torch.get_rng_state(), cuda_state))
            with torch.no_grad():
                embedded.append(self.encode(_rows(encoding, start, stop), kind))
        leaf = torch.cat(embedded).requires_grad_()  # (B, *E)
        self._embedded.append(_Embedded(kind, encoding, leaf, chunks))
        return leaf

    def backward(self, context: Callable[[], AbstractContextManager[object]] = nullcontext) -> None:
        """Re-encode every chunk with a graph under its first pass's random state and push the
        embeddings' cached gradient into the parameters; ``context()`` wraps each re-encoding (the
        first pass's autocast). The global random state is left as it was."""
        for embedded in self._embedded:
            gradient = embedded.leaf.grad
            if gradient is None:  # no loss used these embeddings
                continue
            for chunk, encoding in self._chunks(embedded):
                devices = [] if chunk.cuda_state is None else [gradient.device]
                with torch.random.fork_rng(devices=devices):
                    torch.set_rng_state(chunk.cpu_state)
                    if chunk.cuda_state is not None:
                        torch.cuda.set_rng_state(chunk.cuda_state, gradient.device)
                    with context():
                        output = self.encode(encoding, embedded.kind)  # (c, *E)
                torch.autograd.backward(output, gradient[chunk.start : chunk.stop])
        self._embedded.clear()

    @staticmethod
    def _chunks(embedded: _Embedded) -> Iterator[tuple[_Chunk, dict[str, torch.Tensor]]]:
        for chunk in embedded.chunks:
            yield chunk, _rows(embedded.encoding, chunk.start, chunk.stop)


def all_reduce_gradients(parameters: Iterator[torch.nn.Parameter]) -> None:
    """Average every parameter's gradient over the ranks, as DDP does, in one all-reduce (a
    parameter without a gradient counts as zeros, so every rank sends the same layout)."""
    import torch.distributed as dist

    trainable = [p for p in parameters if p.requires_grad]
    if not trainable:
        return
    world_size = dist.get_world_size()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in trainable]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for parameter, grad in zip(trainable, grads, strict=True):
        size = grad.numel()
        parameter.grad = flat[offset : offset + size].view_as(grad).clone()
        offset += size
