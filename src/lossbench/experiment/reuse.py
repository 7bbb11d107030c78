"""What a run takes from earlier runs instead of computing it again, and says so.

* :func:`attach_corpus_tokens`: the corpus's token ids on disk (:mod:`lossbench.data.token_store`),
  shared by every run over the same corpus and tokenizer: the encoding passes skip the tokenizer.
  Tag ``corpus_tokens`` = ``reused`` or ``built``.
* :func:`evaluate_untrained`: the untrained model's test metrics, run file and step-0 validation
  (:mod:`lossbench.experiment.base_eval_cache`), computed once per model, data and evaluation
  settings (a cross-encoder's: also per first-stage candidates). Tag ``base_eval`` = ``reused``
  (with ``base_eval_source``, the run that computed it) or ``computed``; ``eval.reuse_base=false``
  always computes and stores nothing.

Both live under ``paths.cache`` and print a line when they reuse.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lossbench.experiment.base_eval_cache import (
    BaseEvaluation,
    base_eval_key,
    look_up,
    with_tag,
    write_entry,
)


@contextmanager
def random_state_kept() -> Iterator[None]:
    """Leave the random generators (Python's, numpy's, torch's on the CPU and GPUs) as they were:
    computing the untrained evaluation draws from torch's (each DataLoader pass draws a seed), and
    training must start from the same state whether it was computed or reused."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def data_fingerprints(experiment: Any) -> dict[str, str]:
    """The corpus's, the test split's and the validation split's fingerprints (computed once)."""
    from lossbench.data.fingerprint import corpus_fingerprint, split_fingerprint

    found: dict[str, str] | None = getattr(experiment, "_data_fingerprints", None)
    if found is None:
        collection, val_split = experiment.collection, experiment.cfg.eval.val_split
        found = {
            "corpus": corpus_fingerprint(collection.docs),
            "test": split_fingerprint(collection, "test"),
            f"val:{val_split}": split_fingerprint(collection, val_split),
        }
        experiment._data_fingerprints = found
    return found


def attach_corpus_tokens(experiment: Any) -> None:
    """Give a bi-encoder the on-disk token ids of its corpus at its doc length (built now when
    missing, stale or corrupt); ``data.token_store=false`` leaves the tokenizer to every pass."""
    from lossbench.data.token_store import open_corpus_tokens

    cfg, module = experiment.cfg, experiment.module
    if experiment.reranks or not cfg.data.get("token_store", True):
        return
    with experiment.watch.stage("corpus_tokens"):
        store, reused = open_corpus_tokens(
            Path(cfg.paths.cache) / "tokens",
            module.tokenizer,
            module.config.doc_length,
            experiment.collection.docs,
            data_fingerprints(experiment)["corpus"],
        )
    module.corpus_tokens = store
    if reused:
        print(f"tokenized corpus reused from {store.path}", flush=True)
    experiment.tracked.set_tags({"corpus_tokens": "reused" if reused else "built"})


def compute_untrained(experiment: Any) -> BaseEvaluation:
    """Index the corpus with the untrained model, search and evaluate the test queries (the run
    file in the run's folder), and validate in the same index (step 0)."""
    from lossbench.experiment.ui import BASE_RUN_FILE

    cfg, module = experiment.cfg, experiment.module
    base = experiment.retrieval.evaluate(module, experiment.collection, "test", cfg.eval.metrics)
    run_file = experiment.write_run(base.evaluation.ranking, BASE_RUN_FILE)
    val = experiment.validation.evaluate_start(module, base.index)
    return BaseEvaluation(base.evaluation.means, val, run_file, experiment.tracked.run_id)


def reused_untrained(experiment: Any, found: BaseEvaluation) -> BaseEvaluation:
    """A stored evaluation as this run's: its run file with this run's tag, its step-0
    validation in the validation's history."""
    from lossbench.experiment.ui import BASE_RUN_FILE

    run_file = with_tag(found.run_file, experiment.run_tag, experiment.folder / BASE_RUN_FILE)
    experiment.validation.history.append((0, found.val))
    print(
        f"untrained evaluation reused from {found.folder} (computed by run {found.source})",
        flush=True,
    )
    return BaseEvaluation(found.test, found.val, run_file, found.source, found.folder)


def evaluate_untrained(experiment: Any) -> None:
    """``test/base_*``, ``test_base.run.txt`` and the step-0 ``val/*`` of the untrained model:
    read from the cache when an entry for this model, data and evaluation exists and is whole,
    else computed (and stored, unless ``eval.reuse_base=false``)."""
    from lossbench.evaluation import mlflow_metric_name

    cfg, tracked, retrieval = experiment.cfg, experiment.tracked, experiment.retrieval

    def make_key() -> str:
        return base_eval_key(
            cfg,
            experiment.module,
            data_fingerprints(experiment),
            {"validation": experiment.validation.identity(), "test": retrieval.identity()},
            (retrieval.device.type, retrieval.batch_size),
        )

    with experiment.watch.stage("base_eval"), random_state_kept():
        found, key, folder = look_up(cfg, make_key, list(cfg.eval.val_metrics))
        if found is not None:
            result = reused_untrained(experiment, found)
        else:
            result = compute_untrained(experiment)
            if folder is not None:
                write_entry(folder, key, result)
    experiment.base = result.test
    tracked.log_metrics({f"test/base_{mlflow_metric_name(m)}": v for m, v in result.test.items()})
    tracked.log_artifact(result.run_file)
    tracked.log_metrics({mlflow_metric_name(m, "val"): v for m, v in result.val.items()}, step=0)
    tags = {"base_eval": "reused" if found is not None else "computed"}
    if found is not None:
        tags["base_eval_source"] = found.source
    tracked.set_tags({**tags, **({"base_eval_key": key} if key else {})})
