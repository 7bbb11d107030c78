"""Which validation a bi-encoder gets: the whole corpus indexed at every validation (the default for
small collections), or, when the corpus holds more than ``eval.val_candidates_above`` docs, a fixed
pool of the dev queries' candidates (the ``first_stage`` group's top ``eval.val_candidates_depth``
per query, BM25 by default), so that validating costs the same whatever the corpus size
(:class:`~lossbench.training.validation.CandidateValidation`). Tag ``validation`` says which."""

from __future__ import annotations

from typing import Any

from lossbench.data.collection import Collection, ScoredRun
from lossbench.experiment.config import instantiate_unwrapped


def validates_on_candidates(cfg: Any, collection: Collection) -> bool:
    """True when the corpus is larger than ``eval.val_candidates_above`` (null: never)."""
    above = cfg.eval.get("val_candidates_above")
    return above is not None and len(collection.docs) > above


def validation_candidates(cfg: Any, collection: Collection) -> ScoredRun:
    """The first stage's top ``eval.val_candidates_depth`` docs of each judged query of the
    validation split, with a line saying what the validation will index instead of the corpus."""
    split, depth = cfg.eval.val_split, cfg.eval.val_candidates_depth
    first_stage = instantiate_unwrapped(cfg.first_stage.retriever)
    run: ScoredRun = first_stage.search(collection, collection.split_queries(split), depth)
    pooled = len({doc_id for docs in run.values() for doc_id in docs})
    print(
        f"validation indexes {pooled:,} candidate docs (the top {depth} of {first_stage.describe()} "
        f"for each of the {len(run):,} {split} queries) instead of the {len(collection.docs):,} docs "
        f"of the corpus (more than eval.val_candidates_above={cfg.eval.val_candidates_above:,})",
        flush=True,
    )
    return run
