"""What the tests share: paths, composed configs, run overrides, tiny collections on disk, MLflow and
DDP helpers. Fixtures live in ``conftest.py``; everything else a test imports comes from here, but
for the float64 loss oracles and their input cases (``tests/loss/oracles.py``)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"

# Small enough that a whole pipeline run on the tiny model takes seconds.
SMALL_SYNTHETIC = [
    "dataset.collection.num_docs=150",
    "dataset.collection.num_train_queries=48",
    "dataset.collection.num_dev_queries=10",
    "dataset.collection.num_test_queries=16",
]

FAST_RUN = [
    "model=tiny",
    "trainer.max_steps=3",
    "eval.val_every_n_steps=null",
    "data.num_workers=0",
]
"""A pipeline run of seconds: the tiny model, 3 steps, no extra validations, no worker processes
(a test adds its own overrides after these; the last value of a key wins)."""


def compose_config(  # noqa: ANN201
    root: Path, cache: Path, *overrides: str, small: bool = True, hydra_node: bool = False
):
    """Compose ``conf/`` like ``python -m pipeline.run`` would, with every path under ``root``
    (``hydra_node``: with the ``hydra`` node, for :func:`as_hydra_job`)."""
    from hydra import compose, initialize_config_dir

    from lossbench.experiment.config import register_resolvers

    register_resolvers()
    base = [
        f"paths.root={root}",
        f"paths.cache={cache}",
        f"paths.output={root / 'output'}",
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
        f"tracking.artifact_root={root / 'artifacts'}",
    ]
    if small:
        base += SMALL_SYNTHETIC
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[*base, *overrides],
            return_hydra_config=hydra_node,
        )


def compare_config(*overrides: str):  # noqa: ANN201
    """Compose ``conf/compare.yaml`` like ``python -m pipeline.compare`` would."""
    from hydra import compose, initialize_config_dir

    from lossbench.experiment.config import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="compare", overrides=list(overrides))


@contextmanager
def as_hydra_job(cfg: Any) -> Iterator[Any]:
    """Make ``cfg`` (composed with ``hydra_node=True``) Hydra's runtime config, as under
    ``@hydra.main``: the command line's overrides and the groups' choices can be asked."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    try:
        yield cfg
    finally:
        HydraConfig.instance().cfg = None  # type: ignore[assignment]


def free_port() -> int:
    """A local port nothing listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_pipeline(cfg: Any) -> tuple[Any, str]:
    """``python -m pipeline.run`` on a composed ``cfg``: its MLflow run (the experiment's latest)
    and what it printed."""
    import contextlib
    import io

    from mlflow.tracking import MlflowClient

    from pipeline.run import run

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run(cfg)
    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    latest = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )[0]
    return latest, printed.getvalue()


def all_runs(uri: str) -> list:
    """Every run of every experiment in the MLflow store at ``uri``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def log_finished_run(
    client: Any,
    experiment_id: str,
    tags: dict[str, str],
    files: dict[str, str],
    metrics: dict[str, float] | None = None,
    start: int = 0,
) -> Any:
    """A FINISHED MLflow run with ``tags``, ``metrics`` and ``files`` (artifact path -> text), as a
    job of ``pipeline.run`` would leave it for ``pipeline.compare``; returns the run as searched."""
    import tempfile

    run_id = client.create_run(experiment_id, start_time=start, tags=tags).info.run_id
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, value)
    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            path = Path(folder) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            parent = str(Path(name).parent)
            client.log_artifact(run_id, str(path), None if parent == "." else parent)
    client.set_terminated(run_id, "FINISHED")
    return client.get_run(run_id)


# ---- the reference tools on a run file ---------------------------------------------------------
TREC_EVAL_MEASURES = {
    "ndcg@10": "ndcg_cut_10",
    "recall@100": "recall_100",
    "map@100": "map_cut_100",
}
"""ranx metric -> trec_eval measure with the same definition (mrr@10: ``recip_rank`` on the top 10)."""


def reference_values(run_file: Path, qrels_file: Path) -> dict[str, dict[str, dict[str, float]]]:
    """What ranx and trec_eval compute from a TREC run file and qrels file, for every default metric:
    ``{"ranx" | "trec_eval": {metric: {query id | "mean": value}}}``.

    ranx reads both files (``Run.from_file``, ``Qrels.from_file``) and evaluates with
    ``make_comparable``; trec_eval (``pytrec_eval``) reads the run with its own parser. A judged
    query trec_eval leaves out (nothing retrieved) counts 0, as in ranx.
    """
    import pytrec_eval
    from ranx import Qrels, Run, evaluate

    metrics = ["ndcg@10", "mrr@10", "recall@100", "map@100"]
    qrels = Qrels.from_file(str(qrels_file), kind="trec")
    ranx_run = Run.from_file(str(run_file), kind="trec")
    evaluate(qrels, ranx_run, metrics, make_comparable=True)
    ranx_values = {
        m: {"mean": float(ranx_run.mean_scores[m]), **dict(ranx_run.scores[m])} for m in metrics
    }
    from lossbench.data.sources.formats import read_qrels

    judged = read_qrels(qrels_file)
    with run_file.open() as handle:
        trec_run = pytrec_eval.parse_run(handle)
    measures = set(TREC_EVAL_MEASURES.values()) | {"recip_rank"}
    by_query = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(trec_run)
    top_10 = {q: dict(sorted(d.items(), key=lambda i: -i[1])[:10]) for q, d in trec_run.items()}
    recip = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top_10)
    trec_values: dict[str, dict[str, float]] = {}
    for metric in metrics:
        source, name = (
            (recip, "recip_rank") if metric == "mrr@10" else (by_query, TREC_EVAL_MEASURES[metric])
        )
        values = {q: float(source.get(q, {}).get(name, 0.0)) for q in judged}
        trec_values[metric] = {"mean": sum(values.values()) / len(values), **values}
    return {"ranx": ranx_values, "trec_eval": trec_values}


def assert_logged_equals_references(
    logged: dict[str, float], run_file: Path, qrels_file: Path, per_query: dict | None = None
) -> None:
    """Each logged mean (and each per-query value, if given) equals ranx's and trec_eval's to 1e-6."""
    import pytest

    for tool, values in reference_values(run_file, qrels_file).items():
        for metric, expected in values.items():
            assert logged[metric] == pytest.approx(expected["mean"], abs=1e-6), (tool, metric)
            for qid, value in (per_query or {}).get(metric, {}).items():
                assert value == pytest.approx(expected[qid], abs=1e-6), (tool, metric, qid)


# ---- a tiny collection on disk (BEIR and TREC/TSV layouts) --------------------------------------
TOPICS = [
    ["wing", "lift", "airfoil", "flap", "stall"],
    ["heat", "conduction", "slab", "thermal", "flux"],
    ["shock", "wave", "supersonic", "mach", "nozzle"],
    ["boundary", "layer", "turbulent", "laminar", "skin"],
]


def tiny_collection(
    seed: int = 0,
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """40 docs and 24 queries on 4 topics; each query judges 3 docs of its topic."""
    rng = random.Random(seed)
    docs, queries, qrels = {}, {}, {}
    for i in range(40):
        words = TOPICS[i % 4]
        docs[f"d{i}"] = " ".join(rng.choice(words) for _ in range(8)) + " study results"
    for j in range(24):
        topic = j % 4
        queries[f"q{j}"] = " ".join(rng.sample(TOPICS[topic], 2))
        judged = [f"d{i}" for i in range(topic, 40, 4)]
        qrels[f"q{j}"] = {doc: 1 + (k == 0) for k, doc in enumerate(rng.sample(judged, 3))}
    return docs, queries, qrels


def folded_collection(fold: int = 0) -> Any:
    """:func:`tiny_collection` as a collection with cross-validation folds, the way ``dataset=
    cranfield`` splits its queries: 25% test, 25% dev (split_by_percent), 4 folds of 6 test queries."""
    from lossbench.data.collection import Collection
    from lossbench.data.splits import split_by_percent

    docs, queries, qrels = tiny_collection()
    splits = split_by_percent(list(qrels), 25, 25, fold)
    return Collection(
        name="folded",
        docs=docs,
        queries={split: {q: queries[q] for q in ids} for split, ids in splits.items()},
        qrels={split: {q: qrels[q] for q in ids} for split, ids in splits.items()},
    )


def bm25s_reference(docs: dict[str, str], queries: dict[str, str], k: int) -> dict[str, dict]:
    """bm25s's own pipeline on the texts: its tokenizer (English stop words, Porter2 stemming),
    Lucene's BM25 with k1=0.9, b=0.4, the top k with a positive score."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    doc_ids = list(docs)
    retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    retriever.index(
        bm25s.tokenize(
            [docs[d] for d in doc_ids], stopwords="en", stemmer=stemmer, show_progress=False
        ),
        show_progress=False,
    )
    query_ids = list(queries)
    tokens = bm25s.tokenize(
        [queries[q] for q in query_ids],
        stopwords="en",
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )
    positions, scores = retriever.retrieve(tokens, k=k, show_progress=False)
    return {
        q: {doc_ids[int(p)]: float(s) for p, s in zip(row_p, row_s, strict=True) if s > 0}
        for q, row_p, row_s in zip(query_ids, positions, scores, strict=True)
    }


def ranx_run_in_order_of_record(run: dict[str, dict[str, float]]) -> Any:
    """A ranx Run of ``run`` ranked by the documented order of record (decreasing float32 score,
    then increasing doc id), given to ranx as scores: BM25 ties often (docs of one topic share
    their words), and ranx would break ties its own way."""
    import numpy as np
    from ranx import Run

    ranked = {
        q: sorted(docs.items(), key=lambda item: (-np.float32(item[1]), item[0]))
        for q, docs in run.items()
    }
    return Run({q: {d: float(len(r) - i) for i, (d, _) in enumerate(r)} for q, r in ranked.items()})


def write_beir(folder: Path, splits: dict[str, list[str]]) -> Path:
    """BEIR layout: corpus.jsonl, queries.jsonl, qrels/{split}.tsv with a header."""
    docs, queries, qrels = tiny_collection()
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for doc_id, text in docs.items():
            handle.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as handle:
        for qid, text in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, qids in splits.items():
        lines = ["query-id\tcorpus-id\tscore\n"]
        lines += [f"{q}\t{d}\t{g}\n" for q in qids for d, g in qrels[q].items()]
        (folder / "qrels" / f"{split}.tsv").write_text("".join(lines))
    return folder


def write_trec(folder: Path) -> Path:
    """TREC/TSV layout: corpus.tsv, queries.tsv, TREC qrels per split, triples.tsv, teacher.run."""
    docs, queries, qrels = tiny_collection()
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in docs.items()))
    (folder / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()))
    splits = {"train": range(0, 16), "dev": range(16, 20), "test": range(20, 24)}
    for split, numbers in splits.items():
        lines = [f"q{j} 0 {d} {g}\n" for j in numbers for d, g in qrels[f"q{j}"].items()]
        (folder / "qrels" / f"{split}.txt").write_text("".join(lines))
    triples = []
    run = []
    for j in splits["train"]:
        positives = sorted(qrels[f"q{j}"])
        negative = f"d{(j % 4 + 1) % 4}"
        triples += [f"q{j}\t{p}\t{negative}\n" for p in positives]
        scored = [*positives, negative, f"d{(j % 4 + 2) % 4}"]
        run += [f"q{j} Q0 {d} {r} {10.0 - r:.1f} teacher\n" for r, d in enumerate(scored, 1)]
    (folder / "triples.tsv").write_text("".join(triples))
    (folder / "teacher.run").write_text("".join(run))
    return folder


BEIR_SPLITS = {"train": [f"q{j}" for j in range(18)], "test": [f"q{j}" for j in range(18, 24)]}


# ---- DDP on localhost: several CPU processes joined by gloo --------------------------------------
def _entry(
    rank: int, function: Callable[..., Any], world_size: int, port: int, args: tuple
) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # the test machine has few cores; the ranks share them
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        function(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


DDP_NUM_TRIPLES = 24
"""Training tuples of :func:`ddp_collection`: 12 per rank of 2, 6 per DataLoader worker."""
DDP_NUM_DOCS = 19
"""Docs of :func:`ddp_collection`: not a multiple of 2, so the index shards differ in size."""
DDP_QUERIES = {
    f"q{i}": f"query about topic {i} and words" * (1 + i % 3) for i in range(DDP_NUM_TRIPLES)
}
DDP_DOCS = {f"d{i}": f"document {i} " + "text " * (i % 5) for i in range(DDP_NUM_DOCS)}


def ddp_collection() -> Any:
    """The tiny collection the DDP tests train on: a triple per training query, 2 dev queries."""
    from lossbench.data.collection import Collection

    triples = [
        (f"q{i}", f"d{i % DDP_NUM_DOCS}", f"d{(i * 7 + 3) % DDP_NUM_DOCS}")
        for i in range(DDP_NUM_TRIPLES)
    ]
    dev = {"dq0": "document 3", "dq1": "topic 5"}
    return Collection(
        name="tiny",
        docs=DDP_DOCS,
        queries={"train": DDP_QUERIES, "dev": dev},
        qrels={"dev": {"dq0": {"d3": 1}, "dq1": {"d5": 1}}},
        triples=triples,
    )


def in_batch_losses() -> dict[str, Callable[[], Any]]:
    """Every in-batch loss in the settings that change its code path, by name: what the GradCache
    tests (one process and DDP) check each against the plain computation."""
    from lossbench.loss import InBatchCrossEntropy, ScoreBasedInBatchCrossEntropy

    return {
        "in_batch_ce": InBatchCrossEntropy,
        "in_batch_ce_non_first_t05": lambda: InBatchCrossEntropy(
            "first", "all_and_non_first", temperature=0.5
        ),
        "in_batch_ce_sampled": lambda: InBatchCrossEntropy(max_num_neg_samples=2),
        "in_batch_ce_false_negatives": lambda: InBatchCrossEntropy(false_negative_margin=0.5),
        "score_based": lambda: ScoreBasedInBatchCrossEntropy(0.5),
        "score_based_false_negatives_relative": lambda: ScoreBasedInBatchCrossEntropy(
            0.5, false_negative_margin=0.01, false_negative_margin_type="relative"
        ),
    }


def python_script(script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (dedented) in a new Python process that imports lossbench from this checkout
    and nothing else of this environment's settings; its output captured as text."""
    import textwrap

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src")},
        timeout=timeout,
    )


BM25_REFERENCE = {  # conf/first_stage/bm25.yaml, as pipeline.compare composes it under ``reference``
    "name": "bm25",
    "retriever": {
        "_target_": "lossbench.retrieval.first_stage.BM25FirstStage",
        "k1": 0.9,
        "b": 0.4,
        "stemmer": "english",
        "stopwords": "en",
    },
}


def subprocess_env() -> dict[str, str]:
    """This process's environment with the checkout's ``src`` and root first on ``PYTHONPATH``: what
    a subprocess running ``pipeline.*`` from this checkout needs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    return env


def cli(
    *overrides: str,
    root: Path,
    multirun: bool = False,
    full_error: bool = False,
    command: str = "pipeline.run",
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline.run`` (or another ``command``) in a subprocess, as a user runs it, with
    every path under ``root`` (``full_error``: with ``HYDRA_FULL_ERROR=1``, which shows every frame
    of an error)."""
    env = subprocess_env()
    env.pop("HYDRA_FULL_ERROR", None)
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    sweep_dir = f"hydra.sweep.dir={root / 'multirun'}"
    flags = ["-m"] if multirun else []
    line = [sys.executable, "-m", command, *flags, f"paths.root={root}", sweep_dir, *overrides]
    return subprocess.run(
        line, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def run_gloo(function: Callable[..., Any], *args: Any, world_size: int = 2) -> None:
    """Call ``function(rank, world_size, *args)`` in ``world_size`` spawned processes.

    ``function`` must be importable (defined at module level); it reports back through files
    (``args`` usually holds a temporary folder). An exception in any rank fails the call.
    """
    import torch.multiprocessing as mp

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    mp.spawn(_entry, args=(function, world_size, free_port(), args), nprocs=world_size, join=True)


def lightning_ddp_trainer(rank: int, world_size: int, **arguments: Any) -> Any:
    """A CPU ``Trainer(strategy="ddp")`` inside a :func:`run_gloo` rank: Lightning joins the process
    group that run_gloo started (as it would SLURM's or torchrun's); no logger, checkpoints,
    progress bar or model summary; ``arguments``: the test's own Trainer arguments."""
    import lightning as L

    os.environ.update(LOCAL_RANK=str(rank), NODE_RANK="0", WORLD_SIZE=str(world_size))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "1")  # unused: the group exists already
    return L.Trainer(
        accelerator="cpu",
        devices=world_size,
        strategy="ddp",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **arguments,
    )


def rank_mean(tensor: Any) -> Any:
    """The mean of ``tensor`` over the ranks of a :func:`run_gloo` group, as a new tensor: what DDP
    makes of the ranks' gradients (and, over equal shares, of their losses)."""
    import torch.distributed as dist

    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def gloo_rank_results(function: Callable[..., Any], folder: Path, world_size: int = 2) -> list[Any]:
    """:func:`run_gloo` of ``function(rank, world_size, folder)``, each rank saving what it found
    to ``folder/rank<rank>.pt``; returns those, by rank."""
    import torch

    run_gloo(function, folder, world_size=world_size)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


def tiny_bi_encoder(
    loss: Any = None, doc_length: int = 32, backbone_overrides: dict[str, Any] | None = None
) -> Any:
    """A tiny random-init bi-encoder (``TINY_BERT``, mean pooling, 16-token queries) with MiniLM's
    tokenizer (no download), seeded with 0; ``loss``: its one loss; ``backbone_overrides``: on top
    of ``TINY_BERT``."""
    import torch

    from lossbench.models import BiEncoderModule, DprConfig
    from lossbench.models.backbone import TINY_BERT, minilm_path

    torch.manual_seed(0)
    config = DprConfig(
        query_length=16,
        doc_length=doc_length,
        pooling="mean",
        random_init=True,
        backbone_overrides={**TINY_BERT, **(backbone_overrides or {})},
    )
    return BiEncoderModule(
        minilm_path(), config=config, loss_functions=None if loss is None else [loss]
    )


def ragged_samples(counts: list[int]) -> list[Any]:
    """Training samples ``q0, q1, ...`` with ``counts[i]`` docs each (teacher scores falling with
    the rank): padded blocks for the collator."""
    from lossbench.data.datasets import TrainSample

    samples = []
    for i, count in enumerate(counts):
        doc_ids = [f"d{i}_{j}" for j in range(count)]
        texts = [f"document {i} part {j} " + "word " * (i + j) for j in range(count)]
        targets = [float(count - j) + 0.25 * i for j in range(count)]
        samples.append(TrainSample(f"q{i}", f"query {i} " * (1 + i % 3), doc_ids, texts, targets))
    return samples


def nan_ranknet_at_call(monkeypatch: Any, call: int) -> None:
    """Make RankNet's loss NaN on its ``call``-th call (1-based: the ``call``-th training step's
    loss when the run validates without it)."""
    import torch

    from lossbench.loss import RankNet

    real = RankNet.__call__
    calls = {"n": 0}

    def nan_on_that_call(self, scores, targets, mask=None):  # noqa: ANN001, ANN202
        calls["n"] += 1
        value = real(self, scores, targets, mask)
        return value * torch.tensor(float("nan")) if calls["n"] == call else value

    monkeypatch.setattr(RankNet, "__call__", nan_on_that_call)


# ---- golden tests of the losses ------------------------------------------------------------------
Lists = list[tuple[list[float], list[float]]]  # per query: (real scores, real targets)


def real_lists(
    scores: list[list[float]], targets: list[list[float]], mask: list[list[bool]]
) -> Lists:
    """Per query, the real scores and targets in their original order (padding dropped)."""
    out = []
    for s_row, t_row, m_row in zip(scores, targets, mask, strict=True):
        out.append(
            (
                [s for s, m in zip(s_row, m_row, strict=True) if m],
                [t for t, m in zip(t_row, m_row, strict=True) if m],
            )
        )
    return out


def assert_matches_oracle(
    loss: Any,
    oracle: Callable[[Lists], float],
    scores: list[list[float]],
    targets: list[list[float]],
    mask: list[list[bool]],
) -> None:
    """``loss`` on the padded batch is a float32 scalar equal to the float64 ``oracle`` on its
    real lists."""
    import pytest
    import torch

    value = loss(torch.tensor(scores), torch.tensor(targets), torch.tensor(mask))
    expected = oracle(real_lists(scores, targets, mask))
    assert value.dim() == 0 and value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def assert_targets_reduce_by_max(loss: Any, oracle: Callable[[Lists], float]) -> None:
    """Targets of several columns ``(Q, D, T)`` count as their max: ``loss`` equals the
    ``oracle`` on the max column."""
    import pytest
    import torch

    scores = [[0.4, -0.3, 1.2]]
    columns = [[[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]]]  # (Q, D, T): max -> [1, 2, 0]
    value = loss(torch.tensor(scores), torch.tensor(columns))
    assert value.item() == pytest.approx(oracle([(scores[0], [1.0, 2.0, 0.0])]), rel=1e-5, abs=1e-6)
