"""Real collections end to end: Cranfield through the real ir_datasets loader (offline, from
../shared/data), local folders through the pipeline, and the guide's distillation example."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lossbench.experiment.ui import RUN_FILE
from tests.helpers import CONF_DIR


def cranfield_config() -> dict:
    return OmegaConf.to_container(
        OmegaConf.load(CONF_DIR / "dataset" / "cranfield.yaml").collection
    )


@pytest.fixture(scope="module")
def cranfield(ir_datasets_home: Path):
    """The Cranfield collection exactly as ``dataset=cranfield`` builds it."""
    from hydra.utils import instantiate

    return instantiate(cranfield_config())


def raw_cranfield_qrels(ir_datasets_home: Path) -> dict[tuple[str, str], int]:
    import ir_datasets

    return {(q.query_id, q.doc_id): q.relevance for q in ir_datasets.load("cranfield").qrels_iter()}


def test_cranfield_grades_are_mapped_the_right_way_round(ir_datasets_home: Path, cranfield) -> None:
    raw = raw_cranfield_qrels(ir_datasets_home)
    mapped = {
        (qid, doc): grade
        for split in cranfield.qrels.values()
        for qid, docs in split.items()
        for doc, grade in docs.items()
    }
    assert mapped.keys() == raw.keys()  # every judgement is kept, in exactly one split
    expected = {1: 4, 2: 3, 3: 2, 4: 1, -1: 0}  # 1 = complete answer ... -1 = no interest
    for pair, grade in raw.items():
        assert mapped[pair] == expected[grade], pair
    # query 1 judges doc 184 as 2 (high relevance) and doc 12 as 3 (useful): 184 must rank higher
    assert raw[("1", "184")] == 2 and raw[("1", "12")] == 3
    assert mapped[("1", "184")] == 3 > mapped[("1", "12")] == 2


def test_cranfield_splits_and_mined_triples(cranfield) -> None:
    assert len(cranfield.docs) == 1400
    sizes = [len(cranfield.split_queries(s)) for s in ("train", "dev", "test")]
    assert sizes == [135, 45, 45]
    train = cranfield.qrels["train"]
    for qid, positive, negative in cranfield.triples:
        assert qid in train and train[qid][positive] > 0 and train[qid].get(negative, 0) <= 0
    assert cranfield.docs["1"].startswith("experimental investigation of the aerodynamics")


def test_a_cranfield_fold_tests_what_the_fold_before_validated_on(cranfield) -> None:
    from hydra.utils import instantiate

    fold_1 = instantiate({**cranfield_config(), "fold": 1})
    assert [len(fold_1.split_queries(s)) for s in ("train", "dev", "test")] == [135, 45, 45]
    assert fold_1.qrels["test"] == cranfield.qrels["dev"]  # fold 0's dev is fold 1's test
    assert not set(fold_1.qrels["test"]) & set(cranfield.qrels["test"])
    train = fold_1.qrels["train"]  # its triples are mined from its own train queries
    assert all(qid in train for qid, _, _ in fold_1.triples)


def test_cranfield_docs_are_a_lazy_picklable_mapping(cranfield) -> None:
    from lossbench.data.sources.irds import IrDatasetsDocs

    docs = cranfield.docs
    assert isinstance(docs, IrDatasetsDocs)
    copy = pickle.loads(pickle.dumps(docs))  # what a spawned DataLoader worker receives
    assert copy["5"] == docs["5"] and "5" in copy and "nope" not in copy
    ids = [doc_id for doc_id, _ in docs.items()]
    assert len(ids) == 1400 and ids[:3] == ["1", "2", "3"]


def test_msmarco_collection_logic_on_cranfield_ids(ir_datasets_home: Path, tmp_path: Path) -> None:
    """msmarco_collection's subset index, lazy train data and dev/test slices, run on Cranfield's
    ids (the MS MARCO files are not here)."""
    from lossbench.data import RunDataset, TupleDataset, msmarco_collection
    from lossbench.data.sources.resolve import LazyMapping, SubsetDocs

    triples = tmp_path / "triples.tsv"
    triples.write_text("1\t184\t12\n2\t12\t13\n")
    run = tmp_path / "teacher.run"
    run.write_text("1 Q0 184 1 3.0 t\n1 Q0 12 2 2.0 t\n1 Q0 700 3 1.0 t\n")
    collection = msmarco_collection(
        corpus="cranfield",
        train_queries="cranfield",
        triples=str(triples),
        teacher_run=str(run),
        run_depth=2,
        evaluation="cranfield",
        num_dev_queries=20,
        num_test_queries=30,
        num_other_docs=100,
    )
    assert [len(collection.split_queries(s)) for s in ("dev", "test")] == [20, 30]
    assert isinstance(collection.docs, SubsetDocs) and isinstance(
        collection.queries["train"], LazyMapping
    )
    judged = {d for split in ("dev", "test") for q in collection.qrels[split].values() for d in q}
    assert judged <= set(collection.docs) and len(collection.docs) <= len(judged) + 100
    assert dict(collection.docs.items()).keys() == set(collection.docs)
    assert (
        "1400" not in collection.docs or "1400" in judged
    )  # beyond the first 100, only judged docs
    assert collection.training_docs["1400"]  # training reads the whole corpus
    assert collection.teacher_run == {"1": {"184": 3.0, "12": 2.0}}
    sample = next(iter(TupleDataset(collection, shuffle=False)))
    assert (sample.query_id, sample.doc_ids) == ("1", ["184", "12"])
    assert RunDataset(collection, targets="score")[0].targets == [3.0, 2.0]


def test_msmarco_distill_names_the_missing_run_and_the_fix(compose) -> None:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = compose("dataset=msmarco_distill", small=False)
    with pytest.raises(
        (KeyError, InstantiationException), match=r"rank-distillm/set-encoder.*local run file"
    ):
        instantiate(cfg.dataset.collection)


def logged_run(cfg):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    (experiment,) = [e for e in client.search_experiments() if e.name == cfg.tracking.experiment]
    (run,) = client.search_runs([experiment.experiment_id])
    return run


FAST = ["model=tiny", "trainer.max_steps=5", "data.num_workers=0", "eval.base=false"]


@pytest.mark.slow
def test_pipeline_on_cranfield(ir_datasets_home: Path, compose, tmp_path: Path) -> None:
    from ranx import Qrels, Run, evaluate

    from lossbench.data.sources.formats import read_trec_run
    from pipeline.run import run

    cfg = compose("dataset=cranfield", *FAST, small=False)
    objective = run(cfg)
    logged = logged_run(cfg).data
    assert logged.metrics["test/ndcg_at_10"] == pytest.approx(objective)
    assert logged.params["data/test_queries"] == "45" and int(logged.params["data/triples"]) > 1000
    # the logged nDCG@10 is ranx's on the mapped grades (1 -> 4, ..., -1 -> 0)
    from hydra.utils import instantiate

    collection = instantiate(cranfield_config())
    test_run = read_trec_run(Path(cfg.paths.output) / RUN_FILE)
    expected = evaluate(
        Qrels(collection.qrels["test"]), Run(test_run), "ndcg@10", make_comparable=True
    )
    assert objective == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_runs_of_two_folds_are_pooled_by_compare_into_one_test_set(
    ir_datasets_home: Path, compose, tmp_path: Path
) -> None:
    """Each fold tests other queries: pipeline.compare pools the two folds' runs of a system into
    one test set of 90 queries, and computes BM25 on each fold's test queries."""
    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf
    from ranx import Qrels, Run, evaluate

    from lossbench.experiment.comparison import run_comparison
    from lossbench.experiment.report import markdown_table
    from pipeline.run import run
    from tests.helpers import all_runs

    for fold in (0, 1):
        cfg = compose(
            "dataset=cranfield",
            *FAST,
            "trainer.max_steps=1",
            f"dataset.collection.fold={fold}",
            "save_model=false",
            small=False,
        )
        run(cfg)
    runs = all_runs(str(cfg.tracking.uri))
    assert sorted(r.data.tags["fold"] for r in runs) == ["0", "1"]
    assert len({r.data.tags["system_hash"] for r in runs}) == 1  # the fold is not the system's
    client = MlflowClient(str(cfg.tracking.uri))
    bm25 = OmegaConf.load(CONF_DIR / "first_stage" / "bm25.yaml")
    comparison, *_ = run_comparison(
        client,
        "lossbench",
        ["ndcg@10"],
        tmp_path / "report",
        reference=OmegaConf.create({"name": "bm25", "retriever": bm25.retriever}),
        cache=tmp_path / "cache",
    )
    assert list(comparison.means) == ["ranknet"] and comparison.seeds == [0]
    run_lines, qrels_lines = [], []
    for mlflow_run in runs:  # the two folds' files, one after the other, read by ranx
        folder = tmp_path / "files" / mlflow_run.info.run_id
        for name, lines in ((RUN_FILE, run_lines), ("test.qrels.txt", qrels_lines)):
            path = client.download_artifacts(mlflow_run.info.run_id, name, str(folder))
            lines.append(Path(path).read_text())
    (tmp_path / "pooled.run.txt").write_text("".join(run_lines))
    (tmp_path / "pooled.qrels.txt").write_text("".join(qrels_lines))
    qrels = Qrels.from_file(str(tmp_path / "pooled.qrels.txt"))
    assert len(qrels.keys()) == 90  # 45 test queries per fold, none twice
    expected = evaluate(
        qrels, Run.from_file(str(tmp_path / "pooled.run.txt")), "ndcg@10", make_comparable=True
    )
    assert comparison.means["ranknet"]["ndcg@10"] == pytest.approx(expected, abs=1e-6)
    assert "bm25 (reference)" in comparison.references.means  # computed on both folds' queries
    assert len(list((tmp_path / "cache" / "bm25_reference").glob("*.run.txt"))) == 2
    table = markdown_table(comparison, "lossbench")
    assert "pooled over folds 0, 1 of cranfield: 90 test queries, each tested by the model" in table


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["beir", "trec"])
def test_pipeline_on_a_local_folder(layout: str, compose, tmp_path: Path) -> None:
    from pipeline.run import run
    from tests.helpers import BEIR_SPLITS, write_beir, write_trec

    folder = tmp_path / layout
    write_beir(folder, BEIR_SPLITS) if layout == "beir" else write_trec(folder)
    cfg = compose("dataset=local", f"dataset.path={folder}", *FAST, small=False)
    objective = run(cfg)
    logged = logged_run(cfg).data
    assert 0.0 <= objective <= 1.0 and logged.metrics["test/ndcg_at_10"] == pytest.approx(objective)
    assert logged.params["data/dev_queries"] == ("2" if layout == "beir" else "4")


@pytest.mark.slow
@pytest.mark.parametrize("source", ["run_file", "collection"])
def test_the_guides_distillation_example_on_the_synthetic_teacher_run(
    source: str, data_cache: Path
) -> None:
    """RunDataset(depth=50, sample_size=8, sampling_strategy="random", targets="score") + KLDivergence."""
    import torch

    from lossbench.data import LightningIRDataModule, RunDataset, synthetic_collection
    from lossbench.loss import KLDivergence
    from lossbench.models import BiEncoderModule, DprConfig
    from lossbench.models.backbone import TINY_BERT, minilm_path
    from lossbench.training.trainer import LightningIRTrainer

    collection = synthetic_collection(
        data_cache, num_docs=150, num_train_queries=48, num_dev_queries=10, num_test_queries=16
    )
    folder = data_cache / collection.source.removeprefix("synthetic:")
    if source == "run_file":
        dataset = RunDataset(
            run_path_or_id=str(folder / "teacher.run"),
            depth=50,
            sample_size=8,
            sampling_strategy="random",
            targets="score",
            docs=str(folder / "corpus.jsonl"),
            queries=str(folder / "queries.jsonl"),
        )
    else:
        dataset = RunDataset(
            run_path_or_id=collection,
            depth=50,
            sample_size=8,
            sampling_strategy="random",
            targets="score",
        )
    assert len(dataset) == 48 and len(dataset[0].doc_ids) == 8
    torch.manual_seed(0)
    config = DprConfig(
        query_length=16, doc_length=32, random_init=True, backbone_overrides=TINY_BERT
    )
    module = BiEncoderModule(
        model_name_or_path=minilm_path(), config=config, loss_functions=[KLDivergence()]
    )
    module.set_optimizer(torch.optim.AdamW, lr=1e-4)
    data_module = LightningIRDataModule(train_dataset=dataset, train_batch_size=4)
    trainer = LightningIRTrainer(max_steps=3, accelerator="cpu", enable_progress_bar=False)
    trainer.fit(module, data_module)
    assert trainer.global_step == 3
