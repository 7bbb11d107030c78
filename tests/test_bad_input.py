"""Bad input gets a clear error before work starts: one test per message, and no run left RUNNING.

Three kinds of error, by when they are raised:

* at composition (Hydra + :mod:`lossbench.experiment.schema`): wrong types, unknown keys, unknown choices;
* in ``pipeline.run.run`` before the MLflow run is opened: impossible combinations, settings that
  composition lets through, missing or malformed data files, an unusable tracking store;
* during the run (a malformed line deep in a streamed triples file): the run ends FAILED.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, InstantiationException, MissingConfigException
from mlflow.tracking import MlflowClient

from lossbench.data.sources.formats import DataFormatError
from lossbench.experiment.checks import ConfigurationError
from lossbench.experiment.tracking import TrackingError
from tests.helpers import FAST_RUN, all_runs, cli, free_port, write_trec

FAST_RUN_HERE = [*FAST_RUN, "eval.base=false"]


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its tables created (MLflow's migrations take seconds)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def store_with_tables(empty_store: Path, tmp_path: Path) -> None:
    """Each test's store (``mlflow_uri``, where ``compose`` points runs) starts as a copy of it."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")


def cause_chain(error: BaseException) -> str:
    """The messages of an error and of every error it was raised from (Hydra wraps OmegaConf's)."""
    messages = []
    current: BaseException | None = error
    while current is not None:
        messages.append(str(current))
        current = current.__cause__ or current.__context__
    return "\n".join(messages)


# --- at composition: the schema and Hydra's groups --------------------------------------------


def test_a_wrong_type_names_the_key_and_the_expected_type(compose) -> None:
    with pytest.raises(ConfigCompositionException, match=r"data\.train_batch_size=abc") as info:
        compose("data.train_batch_size=abc")
    details = cause_chain(info.value)
    assert "'abc' of type 'str' could not be converted to Integer" in details
    assert "full_key: data.train_batch_size" in details


def test_a_wrong_type_in_a_group_node_is_refused_too(compose) -> None:
    with pytest.raises(ConfigCompositionException, match=r"dataset\.teacher_scores=maybe") as info:
        compose("dataset.teacher_scores=maybe")
    assert "Value 'maybe' is not a valid bool" in cause_chain(info.value)


def test_an_unknown_key_names_the_key(compose) -> None:
    with pytest.raises(
        ConfigCompositionException, match=r"Could not override 'data\.batchsize'"
    ) as info:
        compose("data.batchsize=8")
    assert "Key 'batchsize' not in 'DataConf'" in cause_chain(info.value)


def test_an_unknown_key_in_a_yaml_file_names_the_file_and_key(compose, tmp_path: Path) -> None:
    """A typo in a preset used to add a key nobody reads; the schema refuses it."""
    presets = tmp_path / "extra" / "experiment"
    presets.mkdir(parents=True)
    (presets / "typo.yaml").write_text("# @package _global_\ndata:\n  batchsize: 8\n")
    with pytest.raises(
        ConfigCompositionException,
        match=r"(?s)In 'experiment/typo'.*Key 'batchsize' not in 'DataConf'.*full_key: data\.batchsize",
    ):
        compose(f"hydra.searchpath=[file://{tmp_path / 'extra'}]", "experiment=typo")


def test_an_unknown_choice_lists_the_valid_ones(compose) -> None:
    with pytest.raises(
        MissingConfigException,
        match=r"(?s)Could not find 'loss/ranknett'.*Available options in 'loss'.*infonce.*ranknet",
    ):
        compose("loss=ranknett")


@pytest.mark.parametrize(
    ("override", "valid"),
    [
        ("loss.train_source=pairs", "[triples, run]"),
        (
            "dataset.run_sampling.sampling_strategy=best",
            "[top, random, log_random, top_and_random, single_relevant]",
        ),
        ("dataset.run_sampling.targets=grade", "[relevance, rank, score]"),
    ],
)
def test_an_unknown_value_of_a_closed_setting_lists_the_valid_ones(
    compose, override: str, valid: str
) -> None:
    with pytest.raises(ConfigCompositionException, match=re.escape(override)) as info:
        compose(override)
    assert f"expected one of {valid}" in cause_chain(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.train_batch_size=abc", "full_key: data.train_batch_size"),
        ("data.batchsize=8", "Key 'batchsize' not in 'DataConf'"),
        ("loss=ranknett", "Available options in 'loss'"),
    ],
)
def test_the_cli_prints_a_composition_error_without_a_traceback(
    override: str, message: str, tmp_path: Path
) -> None:
    root = tmp_path / "cli"
    result = cli(override, root=root)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "mlflow.db").exists()  # no store was even opened


@pytest.mark.slow
def test_the_cli_prints_a_check_error_without_a_traceback(tmp_path: Path) -> None:
    """The check's message names the problem and the fix; HYDRA_FULL_ERROR=1 shows the frames."""
    result = cli("loss=kl_divergence", "dataset=cranfield", "model=tiny", root=tmp_path)
    assert result.returncode == 1
    message = "Error: KLDivergence needs teacher scores, but dataset=cranfield has none"
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    full = cli(
        "loss=kl_divergence", "dataset=cranfield", "model=tiny", root=tmp_path, full_error=True
    )
    assert full.returncode == 1 and "Traceback" in full.stderr and "check_plan" in full.stderr


@pytest.mark.slow  # a subprocess that imports Hydra and MLflow: ~6-10 s
def test_compare_where_no_runs_were_made_says_so_in_one_line_and_writes_no_store(
    tmp_path: Path,
) -> None:
    root = tmp_path / "no_runs_here"  # tmp_path holds this module's copy of an empty store
    root.mkdir()
    result = cli("sweep=lossbench", root=root, command="pipeline.compare")
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: no MLflow store at {root / 'mlflow.db'}")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (root / "mlflow.db").exists()


# --- in run(), before the MLflow run is opened ---------------------------------------------------


@dataclass
class BadRun:
    """Overrides (``{folder}``: a valid local collection, after ``corrupt`` edits it) and the error."""

    overrides: list[str]
    error: type[BaseException]
    match: str
    corrupt: Callable[[Path], None] | None = None
    small: bool = True
    uses_the_store: bool = True  # False: the error is about the store itself


def replace_line(name: str, number: int, text: str) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        path = folder / name
        lines = path.read_text().splitlines(keepends=True)
        lines[number - 1] = text + "\n"
        path.write_text("".join(lines))

    return corrupt


def remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def local(*overrides: str) -> list[str]:
    return ["dataset=local", "dataset.path={folder}", *overrides]


def malformed_line(name: str, number: int, text: str, match: str) -> BadRun:
    """A full-size local collection whose file ``name`` has ``text`` as line ``number``."""
    corrupt = replace_line(name, number, text)
    return BadRun(local(), DataFormatError, match, corrupt=corrupt, small=False)


BAD_RUNS = {
    "teacher loss, dataset without teacher scores": BadRun(
        ["loss=kl_divergence", "dataset=cranfield"],
        ConfigurationError,
        r"KLDivergence needs teacher scores, but dataset=cranfield has none; "
        r"choose dataset=msmarco_distill, dataset=synthetic, or a loss that trains on triples",
        small=False,
    ),
    "teacher run on a dataset without one": BadRun(
        ["loss.train_source=run", "dataset=cranfield"],
        ConfigurationError,
        r"loss\.train_source=run needs a teacher run, but dataset=cranfield has none",
        small=False,
    ),
    "regularizer schedule without a regularizer": BadRun(
        ["regularizer_schedule=constant_warmup"],
        ConfigurationError,
        r"regularizer_schedule=constant_warmup schedules .* add a regularizer",
    ),
    "key added with +": BadRun(
        ["+data.batchsize=8"],
        ConfigurationError,
        r"data\.batchsize is not a setting: data takes train_batch_size, inference_batch_size, "
        r"num_workers",
    ),
    "unknown trainer argument": BadRun(
        ["+trainer.max_step=5"],
        ConfigurationError,
        r"trainer\.max_step is not a lightning\.Trainer argument; did you mean trainer\.max_steps\?",
    ),
    "trainer argument the pipeline sets": BadRun(
        ["+trainer.default_root_dir=/tmp"],
        ConfigurationError,
        r"trainer\.default_root_dir is set by pipeline\.run",
    ),
    "GradCache chunk larger than the batch": BadRun(
        ["loss=in_batch_ce", "data.train_batch_size=8", "grad_cache.chunk_size=32"],
        ConfigurationError,
        r"grad_cache\.chunk_size=32 is larger than the batch \(data\.train_batch_size=8\): .*"
        r"set grad_cache\.chunk_size to at most 8, or raise data\.train_batch_size",
    ),
    "GradCache chunk of no text": BadRun(
        ["loss=in_batch_ce", "grad_cache.chunk_size=0"],
        ConfigurationError,
        r"grad_cache\.chunk_size must be null \(off\) or an integer >= 1, got 0",
    ),
    "GradCache with a loss that is not in-batch": BadRun(
        ["loss=ranknet", "grad_cache.chunk_size=2"],
        ConfigurationError,
        r"GradCache \(grad_cache\.chunk_size\) caches the gradient of an in-batch loss, but the "
        r"losses have RankNet: .* choose an in-batch loss \(loss=in_batch_ce, "
        r"loss=score_based_in_batch_ce\) or set grad_cache\.chunk_size=null",
    ),
    "GradCache with a compiled step": BadRun(
        ["loss=in_batch_ce", "grad_cache.chunk_size=2", "compile=true"],
        ConfigurationError,
        r"compile=true with grad_cache\.chunk_size: .* set compile=false or "
        r"grad_cache\.chunk_size=null",
    ),
    "negative false-negative margin": BadRun(
        ["loss=in_batch_ce", "loss.function.false_negative_margin=-0.1"],
        InstantiationException,  # Hydra's, naming the key: loss.function
        r"false_negative_margin must be a finite number >= 0, got -0\.1",
    ),
    "unknown false-negative margin type": BadRun(
        ["loss=in_batch_ce", "loss.function.false_negative_margin_type=percent"],
        InstantiationException,
        r"false_negative_margin_type must be 'absolute' or 'relative', got 'percent'",
    ),
    "a loss argument out of range": BadRun(
        ["loss.function.temperature=-1.0"],
        Exception,  # Hydra's InstantiationException, naming the loss and the key
        r"RankNet':\nValueError\('temperature must be a positive finite number, got -1\.0'\)\n"
        r"full_key: loss\.function",
    ),
    "unknown metric": BadRun(
        ["eval.metrics=[ndcg@10,ndgc@5]"],
        ConfigurationError,
        r"eval\.metrics: 'ndgc@5' is not a ranx metric",
    ),
    "objective not computed": BadRun(
        ["eval.objective=precision@5"],
        ConfigurationError,
        r"eval\.objective='precision@5' is not computed on the test split: eval\.metrics is "
        r"\[ndcg@10, mrr@10, recall@100, map@100\]",
    ),
    "objective on an unknown split": BadRun(
        ["eval.objective_split=train"],
        ConfigurationError,
        r"eval\.objective_split='train'; valid: test, dev",
    ),
    "negative candidate-validation threshold": BadRun(
        ["eval.val_candidates_above=-5"],
        ConfigurationError,
        r"eval\.val_candidates_above=-5: a number of docs \(>= 0\), or null to always validate "
        r"on the whole corpus",
    ),
    "no validation candidates per query": BadRun(
        ["eval.val_candidates_depth=0"],
        ConfigurationError,
        r"eval\.val_candidates_depth=0: the candidates per validation query, at least 1",
    ),
    "local dataset without a path": BadRun(
        ["dataset=local"],
        ValueError,
        r"dataset=local needs the collection's folder: add dataset\.path=DIR",
        small=False,
    ),
    "local folder that does not exist": BadRun(
        ["dataset=local", "dataset.path={folder}/nope"],
        FileNotFoundError,
        r"nope: not a folder; dataset\.path must name a collection folder",
        small=False,
    ),
    "local folder without a corpus": BadRun(
        local(),
        FileNotFoundError,
        r"no corpus file; expected one of corpus\.jsonl, corpus\.tsv",
        corrupt=remove("corpus.tsv"),
        small=False,
    ),
    "malformed corpus line": malformed_line(
        "corpus.tsv", 7, "d6 no tab", r"corpus\.tsv:7: expected 'id<TAB>text', got 'd6 no tab'"
    ),
    "malformed qrels line": malformed_line(
        "qrels/test.txt",
        5,
        "q21 d5",
        r"qrels/test\.txt:5: expected 'qid iteration docid grade' \(TREC\) or 'qid<TAB>docid<TAB>grade' \(BEIR\)",
    ),
    "malformed TREC run line": malformed_line(
        "teacher.run",
        9,
        "q1 Q0 d5 1 high teacher",
        r"teacher\.run:9: expected an integer rank and a numeric score, got 'q1 Q0 d5 1 high teacher'",
    ),
    "malformed triples line near the top": malformed_line(
        "triples.tsv", 3, "q0\td1", r"triples\.tsv:3: expected 'qid<TAB>pos_docid<TAB>neg_docid'"
    ),
    "a model URI that does not exist": BadRun(
        ["model.model_name_or_path=runs:/0123456789abcdef0123456789abcdef/model"],
        ConfigurationError,
        r"model\.model_name_or_path='runs:/0123456789abcdef0123456789abcdef/model': model .* is "
        r"not in the MLflow store sqlite:///.*; check the run id",
    ),
    "a test collection without test queries": BadRun(
        ["eval.collections=[{{dataset: local, path: '{folder}', name: notest}}]"],
        ConfigurationError,
        r"eval\.collections: 'notest' has no judged test queries to evaluate; give it a test split",
        corrupt=remove("qrels/test.txt"),
    ),
    "an unknown test collection": BadRun(
        ["eval.collections=[cranfeld]"],
        ConfigurationError,
        r"eval\.collections: no dataset option 'cranfeld'; valid: .*cranfield",
    ),
    "unreachable tracking server": BadRun(
        ["tracking.uri=http://127.0.0.1:{port}"],
        TrackingError,
        r"the MLflow tracking server at http://127\.0\.0\.1:\d+ does not answer .* "
        r"set tracking\.fallback_uri=",
        uses_the_store=False,
    ),
    "sqlite store under a file": BadRun(
        ["tracking.uri=sqlite:///{folder}/corpus.tsv/mlflow.db"],
        TrackingError,
        r"corpus\.tsv/mlflow\.db': cannot create the folder .*corpus\.tsv",
        uses_the_store=False,
    ),
    "sqlite store that is a folder": BadRun(
        ["tracking.uri=sqlite:///{folder}"],
        TrackingError,
        r"names a folder, not a database file; point tracking\.uri at a writable file",
        uses_the_store=False,
    ),
    "sqlite store that is not a database": BadRun(
        ["tracking.uri=sqlite:///{folder}/corpus.tsv"],
        TrackingError,
        r"corpus\.tsv \(file is not a database\); point tracking\.uri at a writable file",
        uses_the_store=False,
    ),
}


def bad_config(case: BadRun, compose, tmp_path: Path):  # noqa: ANN201
    folder = write_trec(tmp_path / "collection")
    if case.corrupt:
        case.corrupt(folder)
    port = free_port()
    overrides = [o.format(folder=folder, port=port) for o in case.overrides]
    return compose(*FAST_RUN_HERE, *overrides, small=case.small)


@pytest.mark.parametrize("case", list(BAD_RUNS.values()), ids=list(BAD_RUNS))
def test_each_bad_run_fails_with_its_message(case: BadRun, compose, tmp_path: Path) -> None:
    from pipeline.run import run

    cfg = bad_config(case, compose, tmp_path)
    with pytest.raises(case.error, match=case.match):
        run(cfg)


@pytest.mark.parametrize(
    "case",
    [case for case in BAD_RUNS.values() if case.uses_the_store],
    ids=[name for name, case in BAD_RUNS.items() if case.uses_the_store],
)
def test_an_error_before_the_run_opens_leaves_no_run(
    case: BadRun, compose, tmp_path: Path, mlflow_uri: str
) -> None:
    from pipeline.run import run

    with pytest.raises(case.error):
        run(bad_config(case, compose, tmp_path))
    assert all_runs(mlflow_uri) == []


def test_an_unwritable_sqlite_store_fails_at_once(tmp_path: Path, monkeypatch) -> None:
    """Root may write anywhere, so the permission is simulated; sqlite would open the file read-only."""
    from lossbench.experiment.tracking import connect

    real_access = os.access
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != store and real_access(path, mode)
    )
    with pytest.raises(TrackingError, match=r"store is not writable; point tracking\.uri at"):
        connect(f"sqlite:///{store / 'mlflow.db'}")


# --- combinations that run, with a warning -----------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model=tiny_splade", "index=exact"],
            "model=tiny_splade makes sparse vocabulary-sized vectors (SPLADE), but "
            "ExactDenseIndex is built for dense vectors (DPR); choose index=sparse",
        ),
        (
            ["model=tiny", "index=sparse"],
            "model=tiny makes dense vectors (DPR), but SparseIndex is built for sparse "
            "vocabulary-sized vectors (SPLADE); choose index=exact or index=faiss_flat or "
            "index=faiss_ivf",
        ),
    ],
)
def test_an_index_that_does_not_fit_names_the_one_that_does(
    compose, mlflow_uri: str, overrides: list[str], message: str
) -> None:
    """No option picks another group's option behind the user's back: a check names the one that fits."""
    from pipeline.run import run

    with pytest.raises(ConfigurationError) as raised:
        run(compose(*FAST_RUN_HERE, *overrides))
    assert message in str(raised.value)
    assert all_runs(mlflow_uri) == []


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        (["model=tiny", "regularizer=flops"], "FLOPSRegularization is meant for sparse (SPLADE)"),
        (
            ["model=tiny", "loss=splade_flops"],
            "loss=splade_flops is meant to train with regularizer=flops, but regularizer=none; "
            "add regularizer=flops",
        ),
    ],
)
def test_a_sparse_dense_mismatch_is_warned_about_before_tracking(
    compose, caplog, overrides: list[str], warning: str
) -> None:
    """These run (a user may mean them), so they warn rather than fail; the warning comes first."""
    from pipeline.run import run

    cfg = compose(*FAST_RUN_HERE, *overrides, f"tracking.uri=http://127.0.0.1:{free_port()}")
    with caplog.at_level("WARNING", logger="lossbench"), pytest.raises(TrackingError):
        run(cfg)  # stopped by the unreachable store, after the checks
    assert warning in caplog.text


def test_a_model_uri_that_is_not_a_lossbench_model_is_refused(
    compose, tmp_path: Path, mlflow_uri: str
) -> None:
    """A run's ``model/`` that holds a plain Hugging Face model: a clear error, before any run."""
    from lossbench.models.backbone import write_tiny_model
    from pipeline.evaluate import evaluate
    from pipeline.run import run

    client = MlflowClient(mlflow_uri)
    # the test's own artifact folder (MLflow's default, ./mlruns, is the working directory's)
    experiment = client.create_experiment("other", (tmp_path / "artifacts").as_uri())
    source = client.create_run(experiment).info.run_id
    client.log_artifacts(source, write_tiny_model(tmp_path / "plain"), "model")
    uri = f"runs:/{source}/model"
    for entry_point in (run, evaluate):
        with pytest.raises(
            ConfigurationError, match=rf"'{uri}' is not a lossbench model: .* has no "
        ):
            entry_point(compose(*FAST_RUN_HERE, f"model.model_name_or_path={uri}"))
    assert [r.info.run_id for r in all_runs(mlflow_uri)] == [source]


def test_evaluating_a_folder_that_holds_no_saved_model_is_refused(compose, tmp_path: Path) -> None:
    from pipeline.evaluate import evaluate

    folder = write_trec(tmp_path / "collection")
    with pytest.raises(
        ConfigurationError, match="is not a lossbench model: .* has no lossbench_config"
    ):
        evaluate(compose(*FAST_RUN_HERE, f"model.model_name_or_path={folder}"))
    with pytest.raises(ConfigurationError, match="nope': no such folder; give the folder"):
        evaluate(compose(*FAST_RUN_HERE, f"model.model_name_or_path={folder}/nope"))


def test_qrels_naming_docs_missing_from_the_corpus_are_counted_in_a_warning(
    compose, caplog, tmp_path: Path
) -> None:
    folder = write_trec(tmp_path / "collection")
    with (folder / "qrels" / "test.txt").open("a") as handle:
        handle.write("q20 0 gone1 1\nq21 0 gone2 2\n")
    from lossbench.experiment.stages import Experiment

    cfg = compose(*FAST_RUN_HERE, *[o.format(folder=folder) for o in local()], small=False)
    experiment = Experiment(cfg)
    experiment.prepare()
    with caplog.at_level("WARNING", logger="lossbench"):
        experiment.load_data()  # the data stage, before the MLflow run opens
    assert (
        "collection 'local': 2 judgement(s) of its 'test' qrels name docs missing from the corpus"
        in caplog.text
    )


# --- during the run ------------------------------------------------------------------------------


def test_a_malformed_line_deep_in_a_streamed_file_ends_the_run_failed(
    compose, tmp_path: Path, mlflow_uri: str, monkeypatch
) -> None:
    """Only the head of a streamed triples file is parsed up front; a bad line further down fails
    when training reaches it, naming the file and line, and the run ends FAILED, not RUNNING."""
    monkeypatch.setattr("lossbench.experiment.data_checks.PEEKED_TUPLES", 10)
    folder = write_trec(tmp_path / "collection")
    replace_line("triples.tsv", 40, "q13\td1")(folder)
    from pipeline.run import run

    cfg = compose(*FAST_RUN_HERE, "dataset=local", f"dataset.path={folder}", small=False)
    with pytest.raises(DataFormatError, match=r"triples\.tsv:40: expected"):
        run(cfg)
    (failed,) = all_runs(mlflow_uri)
    assert failed.info.status == "FAILED"
    assert "triples.tsv:40" in failed.data.tags["error"]


@pytest.mark.slow  # a subprocess that imports Hydra and MLflow: ~6-10 s
def test_a_sweep_whose_job_does_not_compose_leaves_no_run_running(tmp_path: Path) -> None:
    """Hydra composes each job's config after the sweep's parent run exists; a bad value in the
    sweep list stops it there: the parent ends FAILED (it used to stay RUNNING), the job that does
    not compose is a FAILED child with the error, and the command exits 1."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("loss=ranknett,ranknet", "model=tiny", root=tmp_path, multirun=True)
    assert result.returncode == 1
    assert "Could not find 'loss/ranknett'" in result.stderr
    runs = {run.data.tags.get("lossbench_role", "job"): run for run in all_runs(uri)}
    assert {role: run.info.status for role, run in runs.items()} == {
        "sweep": "FAILED",
        "job": "FAILED",
    }
    assert runs["job"].data.tags["sweep_job"] == "loss=ranknett model=tiny"
    assert "Could not find 'loss/ranknett'" in runs["job"].data.tags["error"]
    assert runs["sweep"].data.tags["missing_jobs"] == "1"


# ---- pipeline.compare ---------------------------------------------------------------------------
def test_comparing_where_no_store_exists_names_the_fix_and_creates_none(tmp_path: Path) -> None:
    from pipeline.compare import compare
    from tests.helpers import compare_config

    missing = tmp_path / "elsewhere" / "mlflow.db"
    missing.parent.mkdir()
    cfg = compare_config(
        "sweep=lossbench", f"tracking.uri=sqlite:///{missing}", f"output={tmp_path}"
    )
    with pytest.raises(TrackingError, match=r"no MLflow store at .*elsewhere.* tracking\.uri="):
        compare(cfg)
    assert not missing.exists()  # not an empty store left behind


def test_comparing_a_sweep_that_does_not_exist_lists_the_experiments(
    tmp_path: Path, mlflow_uri: str
) -> None:
    from pipeline.compare import compare
    from tests.helpers import compare_config

    cfg = compare_config("sweep=lossbenhc", f"tracking.uri={mlflow_uri}", f"output={tmp_path}")
    with pytest.raises(
        ConfigurationError, match="neither a run id nor an experiment; experiments: Default"
    ):
        compare(cfg)


@pytest.mark.parametrize(
    "error", [ConfigurationError("loss=x: valid: ranknet"), TrackingError("no store: give one")]
)
def test_the_commands_end_an_error_that_names_its_fix_in_one_line(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lossbench.experiment.command_errors import errors_in_one_line

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as ended, errors_in_one_line():
        raise error
    assert str(ended.value) == f"Error: {error}"  # exit status 1, the message alone
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(type(error)), errors_in_one_line():  # the frames, when asked for
        raise error
    with pytest.raises(KeyError), errors_in_one_line():  # any other error: untouched
        raise KeyError("a bug")
