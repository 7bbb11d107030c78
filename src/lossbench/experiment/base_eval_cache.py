"""The untrained model's evaluation, computed once and reused by every job and sweep it is valid for.

A sweep trains many losses on one model and dataset; the untrained model's test metrics
(``test/base_*``), its run file (``test_base.run.txt``) and the step-0 validation are the same for
all of them. An entry under ``<paths.cache>/base_eval/<key>/`` holds them, found by the hash of
what they depend on (:func:`base_eval_key`):

* the model: its config (pooling, lengths, similarity, ...), the fingerprint of its initial weights
  (a random-init model's depend on the seed, a pretrained one's do not, so the seed counts exactly
  where it matters) and of its tokenizer;
* the data: the corpus, the test split and the validation split (content fingerprints);
* how it is evaluated: the index config, ``eval.metrics``, ``eval.k``, the validation split and
  metrics, which validation (the whole corpus, or a fixed candidate pool and its candidates:
  :meth:`~lossbench.training.validation.ValidationSchedule.identity`), what the test searches (a
  cross-encoder: its first stage's test candidates), the device type and encoding batch size
  (both change the floats), and the versions of lossbench's code
  (:func:`~lossbench.experiment.identity.code_version`) and of the libraries that compute (torch,
  transformers, ranx, numpy).

An entry is ``entry.json`` (the key, the metrics, the run that computed it, the SHA-256 of the run
file) and ``test_base.run.txt``, written to a temporary folder and renamed into place. An entry
whose JSON does not parse, names another key, lacks a metric or whose run file's checksum differs
is not trusted: the evaluation is computed again and the entry replaced.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from lossbench.data.cache_files import file_digest, read_json, write_json_atomic
from lossbench.experiment.identity import code_version, digest

ENTRY_FILE = "entry.json"
RUN_FILE = "test_base.run.txt"
LIBRARIES = ("torch", "transformers", "ranx", "numpy")


@dataclass
class BaseEvaluation:
    """What the untrained model's evaluation logs: test means, step-0 validation means, run file."""

    test: dict[str, float]
    val: dict[str, float]
    run_file: Path  # a TREC run, its tag column written by the run that computed it
    source: str = ""  # the MLflow run that computed it
    folder: Path | None = None  # the cache entry it was read from


def base_eval_key(
    cfg: Any,
    module: Any,
    fingerprints: dict[str, str],
    evaluation: dict[str, Any],
    inference: tuple[str, int],
) -> str:
    """The hash of everything the untrained evaluation depends on (see the module docstring);
    ``fingerprints``: the corpus's and the splits' content fingerprints; ``evaluation``: the
    validation's and the test retrieval's identities; ``inference``: the device type and encoding
    batch size."""
    from lossbench.data.fingerprint import tokenizer_fingerprint, weights_fingerprint
    from lossbench.experiment.identity import portable_config

    config = portable_config(cfg)
    return digest(
        {
            "model": {k: v for k, v in config["model"].items() if k != "model_name_or_path"},
            "weights": weights_fingerprint(module),
            "tokenizer": tokenizer_fingerprint(module.tokenizer),
            "data": fingerprints,
            "index": config["index"],
            "eval": {key: config["eval"][key] for key in ("metrics", "k", "val_metrics")},
            "evaluation": evaluation,
            "inference": {"device": inference[0], "batch_size": inference[1]},
            "code": code_version(),
            "libraries": {name: version(name) for name in LIBRARIES},
        }
    )


def look_up(
    cfg: Any, make_key: Callable[[], str], val_metrics: list[str]
) -> tuple[BaseEvaluation | None, str, Path | None]:
    """``(entry, key, folder)``: the whole entry under ``<paths.cache>/base_eval/<key>`` (None when
    absent or broken), its key, and the folder a computed evaluation is stored in. With
    ``eval.reuse_base=false`` nothing is read or stored: ``(None, "", None)``, and ``make_key`` (a
    weights fingerprint: not free) is not called."""
    if not bool(cfg.eval.get("reuse_base", True)):
        return None, "", None
    key = make_key()
    folder = Path(cfg.paths.cache) / "base_eval" / key
    return read_entry(folder, key, list(cfg.eval.metrics), val_metrics), key, folder


def read_entry(folder: Path, key: str, metrics: list[str], val_metrics: list[str]) -> Any:
    """The entry in ``folder`` when it is whole and holds ``key``'s metrics; else None."""
    entry: Any = read_json(folder / ENTRY_FILE)
    run_file = folder / RUN_FILE
    try:
        if entry["key"] != key or not run_file.is_file():
            return None
        test = {m: float(entry["test"][m]) for m in metrics}
        val = {m: float(entry["val"][m]) for m in val_metrics}
        if file_digest(run_file) != entry["run_file_sha256"]:
            return None
        return BaseEvaluation(test, val, run_file, str(entry.get("source", "")), folder)
    except (TypeError, KeyError, ValueError):
        return None


def write_entry(folder: Path, key: str, evaluation: BaseEvaluation) -> None:
    """Store ``evaluation`` as ``folder`` (replacing a broken entry there), atomically: the files
    go to a temporary folder beside it, renamed into place; a concurrent writer's entry wins."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        shutil.copyfile(evaluation.run_file, staging / RUN_FILE)
        entry = {
            "key": key,
            "test": evaluation.test,
            "val": evaluation.val,
            "source": evaluation.source,
            "run_file_sha256": file_digest(staging / RUN_FILE),
        }
        write_json_atomic(staging / ENTRY_FILE, entry)
        if folder.exists():  # a broken entry (a whole one would have been read)
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # another job stored its entry first: same content
            staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def with_tag(run_file: Path, tag: str, path: Path) -> Path:
    """``run_file`` copied to ``path`` with its last column (the run tag) set to ``tag``: the file
    a run computing the same ranking writes itself (:func:`~lossbench.data.sources.formats.write_trec_run`)."""
    with run_file.open(encoding="utf-8") as source, path.open("w", encoding="utf-8") as target:
        for line in source:
            target.write(f"{line.rstrip(chr(10)).rsplit(' ', 1)[0]} {tag}\n")
    return path
