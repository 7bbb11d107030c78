"""A lexical retriever as a system of its own (``model=bm25``): the reference every comparison of
neural rankers shows beside them.

:class:`LexicalConfig` is a model config that says what it is with the same class attributes the
run's stages ask of every model config (:attr:`trainable`, :attr:`reranks`): it has nothing to
train, so a run of it skips the untrained/trained pair and the training stages
(:mod:`lossbench.experiment.reference_run`) and evaluates its retriever as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from lossbench.loss.base import Needs


@dataclass
class LexicalConfig:
    """A retriever that matches words, used as it is: no weights, no losses, no index of vectors.

    Args:
        name: what it is, in a word (``bm25``): the run's ``model`` tag and the report's row.
        retriever: the :class:`~lossbench.retrieval.first_stage.FirstStage` that searches the
            corpus (``conf/first_stage/bm25.yaml``'s ``BM25FirstStage``, with its settings).
    """

    trainable: ClassVar[bool] = False
    """Nothing to train: a run evaluates it on the test split without a training stage."""
    reranks: ClassVar[bool] = False
    """It searches the whole corpus itself (no first stage's candidates)."""
    provides: ClassVar[Needs] = Needs.NOTHING
    """No loss applies to it."""

    name: str
    retriever: Any

    def describe(self) -> str:
        """The retriever in a few words (``bm25``)."""
        return str(self.retriever.describe())
