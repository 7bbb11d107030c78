"""Checks of what a model can give its losses (a model config's ``provides``) and, for a
re-ranker, of its settings and of the candidates its first stage returns: before anything is
trained or logged."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import get_class

from lossbench.data.collection import ScoredRun
from lossbench.experiment.checks import ConfigurationError
from lossbench.experiment.jobs import group_options
from lossbench.loss.base import LossFunction, Needs

MODEL_NEEDS = {
    Needs.IN_BATCH: "in-batch scores (every query against every doc of the batch)",
    Needs.EMBEDDINGS: "the query and doc embeddings",
}
"""What a loss may need from the model itself (a config's ``provides`` says which it gives)."""


def missing_model_needs(loss_class: type[LossFunction], model_config: Any) -> list[str]:
    """What ``loss_class`` needs from the model that ``model_config`` does not provide."""
    return [
        what
        for need, what in MODEL_NEEDS.items()
        if need in loss_class.needs and need not in model_config.provides
    ]


def fitting_options(group: str, model_config: Any) -> list[str]:
    """The options of a loss group (``loss``, ``regularizer``) whose loss the model can train with."""
    fitting = []
    for name, option in group_options(group).items():
        function = option.get("function")
        target = function.get("_target_") if function is not None else None
        if target is None or not missing_model_needs(get_class(str(target)), model_config):
            fitting.append(f"{group}={name}")
    return fitting


def check_model_losses(cfg: Any, losses: Sequence[LossFunction], model_config: Any) -> None:
    """Fail unless the model gives every loss what it needs (a cross-encoder computes each query's
    own scores only), naming the options that fit."""
    for group, loss in zip(("loss", "regularizer"), losses, strict=False):
        missing = missing_model_needs(type(loss), model_config)
        if not missing:
            continue
        model = f"model={cfg.model.name} ({type(model_config).__name__})"
        fit = ", ".join(fitting_options(group, model_config))
        raise ConfigurationError(
            f"{group}={cfg[group].name} ({type(loss).__name__}) needs {' and '.join(missing)}, "
            f"which {model} does not compute: it scores each query's own candidates only. "
            f"Options that fit: {fit}"
        )


def check_reranker_settings(cfg: Any, model_config: Any) -> None:
    """A re-ranker builds no index: an ``index`` set on the command line or by a preset is refused;
    a bi-encoder searches its own index, so a ``first_stage`` set for it (which then only chooses
    the validation candidates of a large corpus) is warned about."""
    from lossbench.experiment.jobs import explicit_choice

    if model_config.reranks:
        chosen = explicit_choice("index")
        if chosen:
            raise ConfigurationError(
                f"{chosen} configures an index for vectors, but model={cfg.model.name} is a "
                "cross-encoder: it builds no index, it re-ranks a first stage's top eval.k. "
                f"Drop {chosen}; choose the candidates with first_stage=bm25|run_file|model"
            )
        if cfg.eval.get("collections"):
            raise ConfigurationError(
                f"eval.collections is not supported for a cross-encoder yet (model={cfg.model.name}): "
                "each collection would need its own first stage. Evaluate the saved re-ranker on "
                "each collection instead: python -m pipeline.evaluate "
                "model.model_name_or_path=runs:/<run id>/model dataset=<collection>"
            )
    else:
        chosen = explicit_choice("first_stage")
        if chosen:
            logging.getLogger("lossbench").warning(
                "%s only chooses the validation candidates on a corpus of more than "
                "eval.val_candidates_above docs: model=%s is a bi-encoder, it searches its own "
                "index (first_stage re-ranks for cross-encoders, e.g. model=cross_minilm)",
                chosen,
                cfg.model.name,
            )


def check_candidates(
    run: ScoredRun,
    queries: Mapping[str, str],
    docs: Mapping[str, str],
    split: str,
    k: int,
    source: str,
    source_query_ids: Sequence[str] = (),
) -> tuple[ScoredRun, list[str]]:
    """A first stage's run for the judged ``queries`` of ``split``, kept to those queries and to the
    collection's docs, and warnings: queries without candidates, fewer candidates than ``k``, doc
    ids not in the collection. Fails when no judged query has a candidate (a run of another
    collection, or of other queries; ``source_query_ids``, the ids the source has, are shown)."""
    warnings = []
    unknown = sorted({d for ranked in run.values() for d in ranked if d not in docs})
    if unknown:
        warnings.append(
            f"{source}: {len(unknown)} candidate doc id(s) of the {split} run are not in the "
            f"collection (e.g. {unknown[0]!r}); they are dropped"
        )
    kept = {
        qid: {d: score for d, score in run[qid].items() if d not in unknown}
        for qid in queries
        if run.get(qid)
    }
    kept = {qid: ranked for qid, ranked in kept.items() if ranked}
    if not kept:
        theirs = [qid for qid in [*run, *source_query_ids] if qid not in queries][:3]
        ours = list(queries)[:3]
        raise ConfigurationError(
            f"{source} gives none of the {len(queries)} judged {split} queries a candidate"
            + (
                f": its query ids ({', '.join(theirs)}, ...) are not the collection's "
                f"({', '.join(ours)}, ...); is it a run of another collection?"
                if theirs
                else ""
            )
        )
    if len(kept) < len(queries):
        warnings.append(
            f"{source} gives {len(queries) - len(kept)} of the {len(queries)} judged {split} "
            "queries no candidate: they score 0 on every metric"
        )
    longest = max(len(ranked) for ranked in kept.values())
    if longest < k:
        warnings.append(
            f"eval.k={k}, but {source} returns at most {longest} candidates per {split} query: "
            f"those are re-ranked (recall@{k} stays the first stage's)"
        )
    return kept, warnings
