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

Cross-validation folds (tag ``fold``): the in-domain table pools each seed's folds (the union of
their test queries, :mod:`lossbench.experiment.pooling`), and so does every in-domain reference
row: a reference run's or an untrained evaluation's files are the union over one run per fold, and
the computed BM25 is computed on each fold's test queries (its dataset config with that fold, cached
per fold) and pooled the same way. On another collection every fold tested the same queries, so its
rows are one fold's.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from lossbench.data.collection import Qrels, ScoredRun
from lossbench.data.sources.formats import read_qrels, read_trec_run, write_trec_run
from lossbench.evaluation import evaluate_run
from lossbench.experiment.pooling import Fold, describe_folds, fold_order, run_fold, union_folds
from lossbench.experiment.ui import BASE_RUN_FILE, QRELS_FILE, RUN_FILE

log = logging.getLogger("lossbench")

REFERENCE_ROLE = "reference"
"""The ``lossbench_role`` tag of a reference run (:mod:`lossbench.experiment.reference_run`)."""
CACHE_FOLDER = "bm25_reference"
"""The folder under ``paths.cache`` holding computed reference runs, one TREC file per key."""
CACHED_IN = ", cached in "


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
        sample_runs: one compared run per fold (``{None: run}`` without folds): their
            ``config.yaml`` says the collections and ``eval.k``, their qrels the in-domain test set.
        retriever: the compare config's ``reference`` node (``name``, ``retriever``), or None: no
            computed row.
        cache: ``paths.cache`` of the compare config (None: nothing kept).
        folder: a scratch folder for downloads.
        starting_runs: label -> one run per fold of each untrained model the compared runs started
            from (:func:`starting_runs`): their ``test_base.run.txt`` is the row.
    """

    client: Any
    reference_runs: list[Any]
    sample_runs: dict[Fold, Any]
    retriever: Any
    cache: Path | None
    folder: Path
    starting_runs: dict[str, dict[Fold, Any]] = field(default_factory=dict)
    _configs: dict[str, DictConfig] = field(default_factory=dict)
    _qrels: dict[tuple[str, str], Qrels] = field(default_factory=dict)

    @property
    def sample_run(self) -> Any:
        """The sample run of the first fold."""
        return self.sample_runs[min(self.sample_runs, key=fold_order)]

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
            _, qrels = self.pooled(self.sample_runs, prefix, None)
        except Exception as error:  # noqa: BLE001 -- a report without a reference row still stands
            found.notes.append(f"reference rows {where}: the compared runs' qrels: {error}")
            return found
        table = _Table(found, where, prefix, qrels, metrics)
        for runs in self.latest_per_system():
            label = reference_label(str(_first(runs).data.tags.get("model", "reference")))
            self.add_run_file(table, label, runs, RUN_FILE)
        if not found.means and self.retriever is not None:
            self.add_computed(table, collection)
        evaluated = f"test/{collection}/base_" if collection else "test/base_"
        for label, runs in self.starting_runs.items():
            if all(
                any(key.startswith(evaluated) for key in run.data.metrics) for run in runs.values()
            ):
                self.add_run_file(table, reference_label(label), runs, BASE_RUN_FILE)
        return found

    def pooled(
        self, runs: dict[Fold, Any], prefix: str, name: str | None
    ) -> tuple[ScoredRun, Qrels]:
        """The runs' file ``name`` (None: no file, an empty run) in the folder ``prefix`` and their
        qrels: in-domain (``prefix`` empty) the union over the runs' folds; on another collection,
        which every fold tested whole, the first fold's."""
        if prefix:
            runs = {None: _first(runs)}
        parts = {
            fold: (
                read_trec_run(self.download(run, prefix + name)) if name else {},
                self.download_qrels(run, prefix),
            )
            for fold, run in runs.items()
        }
        return union_folds(parts, "reference rows")

    def add_run_file(self, table: _Table, label: str, runs: dict[Fold, Any], name: str) -> None:
        """The row ``label``: the ``runs``' file ``name`` (in the table's folder; in-domain the
        union over their folds) evaluated on the table's qrels; a note instead when a run has no
        such file or the runs other qrels."""
        found, where = table.found, table.where
        ids = "s" * (len(runs) > 1) + " " + ", ".join(run.info.run_id for run in runs.values())
        try:
            run, qrels = self.pooled(runs, table.prefix, name)
            if qrels != table.qrels:
                found.notes.append(f"{label} {where}: run{ids} has other qrels")
                return
        except Exception as error:  # noqa: BLE001 -- e.g. a run without this collection
            found.notes.append(f"{label} {where}: run{ids}: {error}")
            return
        found.means[label] = evaluate_run(table.qrels, run, table.metrics).means
        folds = [f for f in runs if f is not None] if not table.prefix else []
        described = f"folds {describe_folds(folds)}, " if len(folds) > 1 else ""
        found.notes.append(f"{label} {where}: run{ids} ({described}{table.prefix}{name})")

    def add_computed(self, table: _Table, collection: str | None) -> None:
        """The row of the compare config's retriever (BM25), read from the cache or computed; in
        -domain with folds, on each fold's test queries (its own cache entry), pooled."""
        label = reference_label(str(self.retriever.name))
        samples: dict[Fold, Any] = dict(self.sample_runs)
        if collection is not None:  # every fold tested that collection whole: one is enough
            samples = {None: self.sample_run}
        try:
            parts, origins = {}, {}
            for fold, sample in sorted(samples.items(), key=lambda item: fold_order(item[0])):
                qrels = table.qrels if len(samples) == 1 else self.download_qrels(sample, "")
                run, origins[fold] = self.computed_run(qrels, collection, sample)
                parts[fold] = (run, qrels)
            run, qrels = union_folds(parts, label)
            if qrels != table.qrels:
                raise ValueError("the folds' qrels together differ from the compared runs'")
        except Exception as error:  # noqa: BLE001 -- no corpus reachable: say so, keep the report
            note = f"{label} {table.where}: not computed: {type(error).__name__}: {error}"
            table.found.notes.append(note)
            log.warning("%s %s: not computed: %s", label, table.where, error)
            return
        table.found.means[label] = evaluate_run(table.qrels, run, table.metrics).means
        folds = [f for f in samples if f is not None]
        pooled = f"pooled over folds {describe_folds(folds)}: " if len(folds) > 1 else ""
        table.found.notes.append(f"{label} {table.where}: {pooled}{fold_origins(origins)}")

    def latest_per_system(self) -> list[dict[Fold, Any]]:
        """The newest reference run of each reference system (``system_hash``) and fold, by fold."""
        latest: dict[str, dict[Fold, Any]] = {}
        for run in sorted(self.reference_runs, key=lambda r: r.info.start_time or 0):
            system = str(run.data.tags.get("system_hash", run.info.run_id))
            latest.setdefault(system, {})[run_fold(run)] = run
        return list(latest.values())

    def download(self, run: Any, name: str) -> Path:
        target = self.folder / "reference" / run.info.run_id
        target.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run.info.run_id, name, str(target)))

    def download_qrels(self, run: Any, prefix: str) -> Qrels:
        """``run``'s qrels in the folder ``prefix``, downloaded once (the compared runs' are read
        for the table and again for the computed row, fold by fold)."""
        from lossbench.experiment.comparison import download_run_file

        key = (run.info.run_id, prefix)
        if key not in self._qrels:
            target = self.folder / "reference-qrels" / run.info.run_id / prefix
            target.mkdir(parents=True, exist_ok=True)
            path = download_run_file(self.client, run.info.run_id, prefix + QRELS_FILE, target)
            self._qrels[key] = read_qrels(path)
        return self._qrels[key]

    def config(self, run: Any = None) -> DictConfig:
        """The resolved config (its ``config.yaml``) of ``run``, by default the sample run."""
        run = self.sample_run if run is None else run
        if run.info.run_id not in self._configs:
            loaded = OmegaConf.load(self.download(run, "config.yaml"))
            assert isinstance(loaded, DictConfig)
            self._configs[run.info.run_id] = loaded
        return self._configs[run.info.run_id]

    def dataset_node(self, collection: str | None, run: Any = None) -> DictConfig:
        """The dataset config of the in-domain collection, or of ``eval.collections``' ``collection``
        (``run``'s config; by default the sample run's)."""
        from lossbench.experiment.zero_shot import eval_collections

        cfg = self.config(run)
        if collection is None:
            return cfg.dataset
        for entry in eval_collections(cfg):
            if entry.label == collection:
                return entry.dataset
        raise ValueError(f"run {self.sample_run.info.run_id} lists no collection {collection!r}")

    def computed_run(
        self, qrels: Qrels, collection: str | None, sample: Any = None
    ) -> tuple[ScoredRun, str]:
        """The reference run on a collection as the compared run ``sample`` (by default the sample
        run) was tested on it: from the cache, else computed (and cached)."""
        from lossbench.experiment.config import instantiate_unwrapped
        from lossbench.experiment.identity import digest, portable_config

        cfg, node = self.config(sample), self.dataset_node(collection, sample)
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
            return read_trec_run(path), f"computed ({described}, top {k}){CACHED_IN}{path}"
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
        return run, f"{origin}{CACHED_IN}{path}"


def fold_origins(origins: Mapping[Fold, str]) -> str:
    """Where a computed reference run comes from, per fold: its settings once and each fold's cache
    file when the folds share them (``computed (k1=0.9, ...), cached in <folder>: a.run.txt, ...``),
    else each fold's own note."""
    cached = [origin.partition(CACHED_IN) for origin in origins.values()]
    paths = [Path(path) for _, separator, path in cached if separator]
    if len(origins) > 1 and len(paths) == len(origins):
        settings = {how for how, _, _ in cached}
        folders = {path.parent for path in paths}
        if len(settings) == 1 and len(folders) == 1:
            names = ", ".join(path.name for path in paths)
            return (
                f"{settings.pop()} on each fold's test queries{CACHED_IN}{folders.pop()}: {names}"
            )
    return "; ".join(o if f is None else f"fold {f}: {o}" for f, o in origins.items())


def starting_runs(systems: dict[str, Any]) -> dict[str, dict[Fold, Any]]:
    """One run per fold (``{None: run}`` without folds) of each untrained model the systems started
    from, labelled ``<model> untrained``; the runs of a system's first seed.

    Runs share an untrained evaluation when their ``base_eval_key`` tags match (the same model,
    data and evaluation settings), or, without the tag (``eval.reuse_base=false``), when their
    ``test/base_*`` metrics are equal; systems share one when every fold's does (a fold's key
    differs from another's: its test split does). Two starting points of one model (say, a sweep
    over ``model.config.doc_length``) are told apart by the first system that started from each:
    ``dpr_minilm untrained, as ranknet``."""
    chosen: dict[str, tuple[str, dict[Fold, Any]]] = {}
    for label, system in sorted(systems.items()):
        runs = system.first_seed()
        keys = []
        for fold in sorted(runs, key=fold_order):
            metrics = runs[fold].data.metrics
            base = sorted((k, v) for k, v in metrics.items() if k.startswith("test/base_"))
            keys.append((fold, str(runs[fold].data.tags.get("base_eval_key") or base)))
            if not base:
                break  # eval.base=false: it never evaluated its untrained model
        else:
            chosen.setdefault(str(keys), (label, runs))
    models = [str(_first(runs).data.tags.get("model", "model")) for _, runs in chosen.values()]
    named: dict[str, dict[Fold, Any]] = {}
    for (system, runs), model in zip(chosen.values(), models, strict=True):
        label = f"{model} untrained"
        named[label if models.count(model) == 1 else f"{label}, as {system}"] = runs
    return named


def _first(runs: dict[Fold, Any]) -> Any:
    """The run of the first fold."""
    return runs[min(runs, key=fold_order)]


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
