"""The reference row of every comparison report: BM25 on each collection the compared runs were
tested on (the in-domain test split and each of ``eval.collections``), as comparison papers show it
beside the learned models.

Where a row comes from, first that applies:

1. a reference run among the compared runs (``python -m pipeline.run model=bm25`` in the same
   sweep or experiment: tag ``lossbench_role=reference``, :mod:`lossbench.experiment.reference_run`)
   evaluated on the same qrels: its own run file, so the row is that run's record;
2. else BM25 computed once per collection with the compare config's ``reference`` settings
   (``conf/first_stage/bm25.yaml``'s, by default) and kept in ``<paths.cache>/bm25_reference/``,
   under a key of the collection (its dataset config as the runs logged it, machine paths made
   portable, and its test qrels), the settings and the search depth ``eval.k``: every later
   report of that collection reads the file instead of indexing again;
3. else (no corpus reachable: a dataset folder gone, Cranfield without its ``IR_DATASETS_HOME``)
   no row, and the report says why.

Beside BM25, each report has a row for the model the compared runs started from (``<model>
untrained``): the ``test_base.run.txt`` that a run logs when it evaluates its untrained model
(``test/base_*``), one row per distinct untrained evaluation (tag ``base_eval_key``), so a reader
sees whether training helped at all (runs with ``eval.base=false`` have none). Another test
collection has the row when the runs evaluated their untrained model there too
(``test/<label>/base_*``, ``collections/<label>/test_base.run.txt``).

A reference is **not** part of the significance tests. The tests answer the report's question,
which loss trains the better ranker: the losses are tested against the baseline loss with a
correction over that family, and adding a system that no loss trained would change every loss's
corrected p-value. BM25 is deterministic (the same ranking for every seed) and is read as the bar
a trained model should clear, as BEIR-style tables show it: its mean, beside the systems' means.
Its metrics are ranx's evaluation of its run against the same qrels as the systems'.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from lossbench.data.collection import Qrels, ScoredRun
from lossbench.data.sources.formats import read_qrels, read_trec_run, write_trec_run
from lossbench.evaluation import evaluate_run
from lossbench.experiment.ui import BASE_RUN_FILE, QRELS_FILE, RUN_FILE

log = logging.getLogger("lossbench")

REFERENCE_ROLE = "reference"
"""The ``lossbench_role`` tag of a reference run (:mod:`lossbench.experiment.reference_run`)."""
CACHE_FOLDER = "bm25_reference"
"""The folder under ``paths.cache`` holding computed reference runs, one TREC file per key."""


@dataclass
class References:
    """The reference rows of one table: label -> metric -> value, and where each came from (or
    why a row is missing)."""

    means: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class _Table(NamedTuple):
    """One table's reference rows being filled: where it is, its artifact folder and qrels."""

    found: References
    where: str  # "in-domain" or "on <collection>"
    prefix: str  # the artifact folder of its run files ("" or "collections/<label>/")
    qrels: Qrels
    metrics: Sequence[str]


def split_references(runs: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``(reference runs, other runs)``: reference runs are FINISHED runs tagged
    ``lossbench_role=reference``."""
    references = [
        run
        for run in runs
        if run.data.tags.get("lossbench_role") == REFERENCE_ROLE and run.info.status == "FINISHED"
    ]
    kept = [run for run in runs if run.data.tags.get("lossbench_role") != REFERENCE_ROLE]
    return references, kept


def reference_label(name: str) -> str:
    """``bm25 (reference)``: how a reference row is named in the report."""
    return f"{name} (reference)"


@dataclass
class ReferenceSource:
    """What the reference rows of one report are computed from.

    Args:
        client: the MLflow client of the compared runs.
        reference_runs: the reference runs among them (newest last).
        sample_run: one compared run: its ``config.yaml`` says the collections and ``eval.k``.
        retriever: the compare config's ``reference`` node (``name``, ``retriever``), or None: no
            computed row.
        cache: ``paths.cache`` of the compare config (None: nothing kept).
        folder: a scratch folder for downloads.
        starting_runs: label -> one run of each untrained model the compared runs started from
            (:func:`starting_runs`): its ``test_base.run.txt`` is the row.
    """

    client: Any
    reference_runs: list[Any]
    sample_run: Any
    retriever: Any
    cache: Path | None
    folder: Path
    starting_runs: dict[str, Any] = field(default_factory=dict)
    _config: DictConfig | None = None

    def add_to(self, comparison: Any) -> None:
        """Set the reference rows of ``comparison`` (a
        :class:`~lossbench.experiment.comparison.Comparison`) and of each of its collections."""
        comparison.references = self.rows(comparison.metrics)
        for label, compared in comparison.collections.items():
            compared.references = self.rows(comparison.metrics, label)

    def rows(self, metrics: Sequence[str], collection: str | None = None) -> References:
        """The reference rows of the in-domain test (``collection=None``) or of the collection
        labelled ``collection`` (``eval.collections``); never raises."""
        from lossbench.experiment.zero_shot import COLLECTIONS_FOLDER

        prefix = f"{COLLECTIONS_FOLDER}/{collection}/" if collection else ""
        where = f"on {collection}" if collection else "in-domain"
        found = References()
        try:
            qrels = self.download_qrels(self.sample_run, prefix)
        except Exception as error:  # noqa: BLE001 -- a report without a reference row still stands
            found.notes.append(f"reference rows {where}: the compared runs' qrels: {error}")
            return found
        table = _Table(found, where, prefix, qrels, metrics)
        for run in self.latest_per_system():
            label = reference_label(str(run.data.tags.get("model", "reference")))
            self.add_run_file(table, label, run, RUN_FILE)
        if not found.means and self.retriever is not None:
            self.add_computed(table, collection)
        evaluated = f"test/{collection}/base_" if collection else "test/base_"
        for label, run in self.starting_runs.items():
            if any(key.startswith(evaluated) for key in run.data.metrics):
                self.add_run_file(table, reference_label(label), run, BASE_RUN_FILE)
        return found

    def add_run_file(self, table: _Table, label: str, run: Any, name: str) -> None:
        """The row ``label``: ``run``'s file ``name`` (in the table's folder) evaluated on the
        table's qrels; a note instead when the run has no such file or other qrels."""
        found, where = table.found, table.where
        try:
            if self.download_qrels(run, table.prefix) != table.qrels:
                found.notes.append(f"{label} {where}: run {run.info.run_id} has other qrels")
                return
            path = self.download(run, table.prefix + name)
        except Exception as error:  # noqa: BLE001 -- e.g. a run without this collection
            found.notes.append(f"{label} {where}: run {run.info.run_id}: {error}")
            return
        found.means[label] = evaluate_run(table.qrels, read_trec_run(path), table.metrics).means
        found.notes.append(f"{label} {where}: run {run.info.run_id} ({table.prefix}{name})")

    def add_computed(self, table: _Table, collection: str | None) -> None:
        """The row of the compare config's retriever (BM25), read from the cache or computed."""
        label = reference_label(str(self.retriever.name))
        try:
            run, origin = self.computed_run(table.qrels, collection)
        except Exception as error:  # noqa: BLE001 -- no corpus reachable: say so, keep the report
            note = f"{label} {table.where}: not computed: {type(error).__name__}: {error}"
            table.found.notes.append(note)
            log.warning("%s %s: not computed: %s", label, table.where, error)
            return
        table.found.means[label] = evaluate_run(table.qrels, run, table.metrics).means
        table.found.notes.append(f"{label} {table.where}: {origin}")

    def latest_per_system(self) -> list[Any]:
        """The newest reference run of each reference system (``system_hash``)."""
        latest: dict[str, Any] = {}
        for run in sorted(self.reference_runs, key=lambda r: r.info.start_time or 0):
            latest[str(run.data.tags.get("system_hash", run.info.run_id))] = run
        return list(latest.values())

    def download(self, run: Any, name: str) -> Path:
        target = self.folder / "reference" / run.info.run_id
        target.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run.info.run_id, name, str(target)))

    def download_qrels(self, run: Any, prefix: str) -> Qrels:
        from lossbench.experiment.comparison import download_run_file

        target = self.folder / "reference-qrels" / run.info.run_id / prefix
        target.mkdir(parents=True, exist_ok=True)
        return read_qrels(
            download_run_file(self.client, run.info.run_id, prefix + QRELS_FILE, target)
        )

    def config(self) -> DictConfig:
        """The sample run's resolved config (its ``config.yaml``)."""
        if self._config is None:
            loaded = OmegaConf.load(self.download(self.sample_run, "config.yaml"))
            assert isinstance(loaded, DictConfig)
            self._config = loaded
        return self._config

    def dataset_node(self, collection: str | None) -> DictConfig:
        """The dataset config of the in-domain collection, or of ``eval.collections``' ``collection``."""
        from lossbench.experiment.zero_shot import eval_collections

        cfg = self.config()
        if collection is None:
            return cfg.dataset
        for entry in eval_collections(cfg):
            if entry.label == collection:
                return entry.dataset
        raise ValueError(f"run {self.sample_run.info.run_id} lists no collection {collection!r}")

    def computed_run(self, qrels: Qrels, collection: str | None) -> tuple[ScoredRun, str]:
        """The reference run on a collection: from the cache, else computed (and cached)."""
        from lossbench.experiment.config import instantiate_unwrapped
        from lossbench.experiment.identity import digest, portable_config

        cfg, node = self.config(), self.dataset_node(collection)
        k = int(cfg.eval.k)
        scope = OmegaConf.create({"paths": cfg.get("paths") or {}, "dataset": node})
        settings = OmegaConf.to_container(self.retriever.retriever, resolve=True)
        key = digest(
            {
                "dataset": portable_config(scope)["dataset"],
                "qrels": {q: sorted(d.items()) for q, d in sorted(qrels.items())},
                "retriever": settings,
                "k": k,
            }
        )
        path = self.cache / CACHE_FOLDER / f"{key}.run.txt" if self.cache else None
        if path is not None and path.is_file():  # say with what, as when it was computed
            assert isinstance(settings, dict)
            named = {str(n): v for n, v in settings.items()}
            described = ", ".join(f"{n}={v}" for n, v in named.items() if n != "_target_")
            return read_trec_run(path), f"computed ({described}, top {k}), cached in {path}"
        loaded = instantiate_unwrapped(node.collection)
        retriever = instantiate_unwrapped(self.retriever.retriever)
        run = retriever.search(loaded, loaded.split_queries("test"), k)
        described = ", ".join(f"{n}={v}" for n, v in dict(retriever.settings).items())
        origin = f"computed ({described}, top {k})"
        if path is None:
            return run, origin
        with tempfile.NamedTemporaryFile(dir=_folder(path), delete=False, suffix=".tmp") as tmp:
            written = write_trec_run(run, Path(tmp.name), tag=f"lossbench-{self.retriever.name}")
        written.replace(path)  # whole or absent: a report never reads half a file
        return run, f"{origin}, cached in {path}"


def starting_runs(systems: dict[str, Any]) -> dict[str, Any]:
    """One run per untrained model the systems started from, labelled ``<model> untrained``.

    Runs share an untrained evaluation when their ``base_eval_key`` tags match (the same model,
    data and evaluation settings), or, without the tag (``eval.reuse_base=false``), when their
    ``test/base_*`` metrics are equal. Two starting points of one model (say, a sweep over
    ``model.config.doc_length``) are told apart by the first system that started from each:
    ``dpr_minilm untrained, as ranknet``."""
    chosen: dict[str, tuple[str, Any]] = {}
    for label, system in sorted(systems.items()):
        run = next(iter(system.runs.values()))
        base = sorted((k, v) for k, v in run.data.metrics.items() if k.startswith("test/base_"))
        if not base:
            continue  # eval.base=false: it never evaluated its untrained model
        chosen.setdefault(str(run.data.tags.get("base_eval_key") or base), (label, run))
    models = [str(run.data.tags.get("model", "model")) for _, run in chosen.values()]
    named: dict[str, Any] = {}
    for (system, run), model in zip(chosen.values(), models, strict=True):
        label = f"{model} untrained"
        named[label if models.count(model) == 1 else f"{label}, as {system}"] = run
    return named


# ---- what the report asks of them ---------------------------------------------------------------
def reference_means_over_collections(comparison: Any) -> dict[str, dict[str, float]]:
    """Each reference row's mean over the other collections, for the rows every collection has."""
    tables = [compared.references.means for compared in comparison.collections.values()]
    if not tables:
        return {}
    shared = set.intersection(*(set(table) for table in tables))
    return {
        label: {m: sum(t[label][m] for t in tables) / len(tables) for m in comparison.metrics}
        for label in sorted(shared)
    }


def has_references(comparison: Any) -> bool:
    """Whether any table of the report has a reference row."""
    tables = [comparison, *comparison.collections.values()]
    return any(table.references.means for table in tables)


def reference_notes(comparison: Any) -> list[str]:
    """Where each reference row of the report comes from, or why one is missing."""
    tables = [comparison, *comparison.collections.values()]
    return [note for table in tables for note in table.references.notes]


def _folder(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent
