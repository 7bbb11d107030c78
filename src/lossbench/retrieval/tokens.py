"""Docs' token vectors, packed: what the MaxSim indexes store and read back chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lossbench.models.scoring import token_mask


class TokenStore:
    """The tokens that count of every doc, packed doc after doc into one ``(T, dim)`` matrix.

    A doc ``d`` is the rows ``offsets[d] : offsets[d] + lengths[d]``; no padding is stored.
    :meth:`padded` reads docs back as ``(n, L, dim)``, each doc padded by repeating its last token,
    which leaves the max over its tokens (MaxSim's) unchanged, so no mask is needed. A doc without
    any token that counts keeps one zero vector (it scores 0 against every query).

    Args:
        dtype: the stored vectors' type (``float16``: half the bytes of float32; a normalized
            token vector loses about 3 decimal digits, far below what separates docs).
    """

    def __init__(self, dtype: torch.dtype = torch.float16) -> None:
        self.dtype = dtype
        self.dim: int | None = None
        self._blocks: list[torch.Tensor] = []  # (T_b, dim) each
        self._block_lengths: list[torch.Tensor] = []  # (n_b,) each
        self._packed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def add(self, embeddings: torch.Tensor) -> None:
        """Add docs' token vectors ``(n, L, dim)``, zero vectors where a token does not count."""
        if embeddings.dim() != 3:
            raise ValueError(
                f"token vectors must be (docs, tokens, dim), got {tuple(embeddings.shape)}: "
                "a MaxSim index takes a multi-vector (ColBERT) model's vectors"
            )
        if self.dim is not None and embeddings.shape[2] != self.dim:
            raise ValueError(
                f"embeddings have {embeddings.shape[2]} dimensions; the index has {self.dim}"
            )
        self.dim = int(embeddings.shape[2])
        embeddings = embeddings.detach()
        counts = token_mask(embeddings)  # (n, L)
        counts[:, 0] |= ~counts.any(dim=1)  # a doc with no token keeps one zero vector
        self._blocks.append(embeddings[counts].to(self.dtype))  # (T_b, dim), doc after doc
        self._block_lengths.append(counts.sum(dim=1))
        self._packed = None

    def _pack(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(vectors (T, dim), lengths (N,), offsets (N,))``, concatenated once after the adds."""
        if self._packed is None:
            if not self._blocks:
                raise ValueError("the index is empty: add docs before searching")
            vectors, lengths = torch.cat(self._blocks), torch.cat(self._block_lengths)
            offsets = torch.cumsum(lengths, 0) - lengths
            self._blocks, self._block_lengths = [vectors], [lengths]
            self._packed = (vectors, lengths, offsets)
        return self._packed

    @property
    def vectors(self) -> torch.Tensor:
        """Every stored token vector ``(T, dim)``."""
        return self._pack()[0]

    @property
    def lengths(self) -> torch.Tensor:
        """Tokens stored per doc ``(N,)``."""
        return self._pack()[1]

    def __len__(self) -> int:
        return sum(int(block.shape[0]) for block in self._block_lengths)

    def nbytes(self) -> int:
        """Bytes held: the vectors, the lengths and the offsets."""
        return sum(tensor.numel() * tensor.element_size() for tensor in self._pack())

    def padded(self, positions: torch.Tensor) -> torch.Tensor:
        """The docs at ``positions`` ``(n,)`` as ``(n, L, dim)``, ``L`` their largest length, each
        padded by repeating its last token."""
        vectors, lengths, offsets = self._pack()
        chosen = lengths[positions]  # (n,)
        width = int(chosen.max()) if chosen.numel() else 0
        steps = torch.arange(width, device=vectors.device)
        rows = offsets[positions, None] + torch.minimum(steps[None], chosen[:, None] - 1)  # (n, L)
        return vectors.index_select(0, rows.flatten()).view(len(positions), width, -1)

    def by_length(self, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``positions`` (None: every doc) sorted by length, longest first: neighbours pad alike."""
        lengths = self.lengths
        if positions is None:
            return torch.argsort(lengths, descending=True, stable=True)
        return positions[torch.argsort(lengths[positions], descending=True, stable=True)]

    def chunks(self, positions: torch.Tensor, chunk_tokens: int) -> Iterator[tuple[int, int]]:
        """``[start, end)`` slices of length-sorted ``positions`` whose padded size (docs x the
        first doc's length) stays within ``chunk_tokens`` (at least one doc each)."""
        lengths = self.lengths[positions].tolist()
        start = 0
        while start < len(lengths):
            end = min(len(lengths), start + max(1, chunk_tokens // max(lengths[start], 1)))
            yield start, end
            start = end
