"""Several test collections in one run (``eval.collections``): each logged as
``test/<collection>/<metric>`` with its own files, and compared per collection and on average."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench.evaluation import evaluate_run
from lossbench.experiment.checks import ConfigurationError
from tests.helpers import FAST_RUN, compose_config

OTHER_SYNTHETIC = (
    "{dataset: synthetic, name: synthetic_b, collection: {seed: 7, num_docs: 120, "
    "num_train_queries: 8, num_dev_queries: 4, num_test_queries: 12}}"
)
COLLECTIONS = f"eval.collections=[cranfield,{OTHER_SYNTHETIC}]"


def test_a_run_with_two_collections_logs_both_and_compare_reports_both_and_their_mean(
    ir_datasets_home: Path, tmp_path: Path, data_cache: Path
) -> None:
    from lossbench.data.sources.formats import read_qrels, read_trec_run
    from pipeline.run import run

    overrides = [*FAST_RUN, "trainer.max_steps=2", "eval.base=false", "save_model=false"]
    for loss in ("ranknet", "in_batch_ce"):
        run(compose_config(tmp_path, data_cache, *overrides, COLLECTIONS, f"loss={loss}"))
    cfg = compose_config(tmp_path, data_cache)
    client = MlflowClient(str(cfg.tracking.uri))
    experiment = client.get_experiment_by_name(str(cfg.tracking.experiment))
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for mlflow_run in runs:
        metrics, run_id = mlflow_run.data.metrics, mlflow_run.info.run_id
        assert "test/ndcg_at_10" in metrics  # the in-domain test stays
        for label in ("cranfield", "synthetic_b"):
            # the logged values are ranx's on the logged run file and qrels
            folder = tmp_path / "files" / run_id / label
            folder.mkdir(parents=True)
            run_file = client.download_artifacts(
                run_id, f"collections/{label}/test.run.txt", str(folder)
            )
            qrels = client.download_artifacts(
                run_id, f"collections/{label}/test.qrels.txt", str(folder)
            )
            means = evaluate_run(read_qrels(Path(qrels)), read_trec_run(Path(run_file))).means
            for metric, value in means.items():
                key = f"test/{label}/{metric.replace('@', '_at_')}"
                assert metrics[key] == pytest.approx(value, abs=1e-6), key
        assert len(read_qrels(Path(qrels))) == 12  # synthetic_b's own settings were used

    from lossbench.experiment.comparison import run_comparison
    from lossbench.experiment.report import comparison_metrics

    comparison, files, _, _ = run_comparison(
        client, str(cfg.tracking.experiment), ["ndcg@10", "map@100"], tmp_path / "report"
    )
    assert sorted(comparison.collections) == ["cranfield", "synthetic_b"]
    for label, compared in comparison.collections.items():
        assert set(compared.means) == {"ranknet", "in_batch_ce"}
        others = set(compared.means) - {compared.baseline}
        assert others and set(compared.p_values) == others  # significance per collection
        for system in compared.means:  # one seed: its mean is the run's logged value
            (logged,) = [r for r in runs if r.data.tags["loss"] == system]
            assert compared.means[system]["ndcg@10"] == pytest.approx(
                logged.data.metrics[f"test/{label}/ndcg_at_10"], abs=1e-6
            )
    mean = comparison.collection_means["ranknet"]["ndcg@10"]
    assert mean == pytest.approx(
        sum(c.means["ranknet"]["ndcg@10"] for c in comparison.collections.values()) / 2
    )
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Zero-shot on cranfield" in report and "## Zero-shot on synthetic_b" in report
    assert "## Mean over 2 collections (cranfield, synthetic_b)" in report
    assert f"{mean:.4f}" in report
    logged = comparison_metrics(comparison)
    assert logged["mean_over_collections/ranknet/ndcg_at_10"] == pytest.approx(mean)
    (other,) = set(comparison.means) - {comparison.baseline}
    assert f"cranfield/p_value/{other}/ndcg_at_10" in logged


def test_an_unknown_collection_fails_before_anything_runs(tmp_path: Path, data_cache: Path) -> None:
    from pipeline.run import run

    cfg = compose_config(tmp_path, data_cache, *FAST_RUN, "eval.collections=[cranfeld]")
    with pytest.raises(
        ConfigurationError, match="no dataset option 'cranfeld'; valid: .*cranfield"
    ):
        run(cfg)
    assert not (tmp_path / "mlflow.db").exists()  # failed before the store was opened


def test_the_untrained_model_is_evaluated_on_each_collection_once_and_is_a_report_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each run logs the untrained model on the other collection (``test/<label>/base_*``, ranx's
    values on its ``test_base.run.txt``), the second run reads it from the cache, and the report
    has the untrained model as a reference row in-domain, on the collection and in their mean."""
    from lossbench.data.sources.formats import read_qrels, read_trec_run
    from lossbench.experiment.comparison import run_comparison
    from lossbench.experiment.report import markdown_table
    from pipeline.run import run

    cache = tmp_path / "cache"  # this test's own: it counts the entries of the base evaluations
    overrides = [*FAST_RUN, "trainer.max_steps=2", "save_model=false"]
    for loss in ("ranknet", "in_batch_ce"):
        run(
            compose_config(
                tmp_path,
                cache,
                *overrides,
                f"eval.collections=[{OTHER_SYNTHETIC}]",
                f"loss={loss}",
            )
        )
    assert "(untrained 0." in capsys.readouterr().out  # printed beside the trained model's
    cfg = compose_config(tmp_path, cache)
    client = MlflowClient(str(cfg.tracking.uri))
    experiment = client.get_experiment_by_name(str(cfg.tracking.experiment))
    runs = client.search_runs([experiment.experiment_id])
    for mlflow_run in runs:
        run_id, metrics = mlflow_run.info.run_id, mlflow_run.data.metrics
        folder = tmp_path / "files" / run_id
        folder.mkdir(parents=True)
        files = {
            name: Path(
                client.download_artifacts(run_id, f"collections/synthetic_b/{name}", str(folder))
            )
            for name in ("test_base.run.txt", "test.qrels.txt")
        }
        means = evaluate_run(
            read_qrels(files["test.qrels.txt"]), read_trec_run(files["test_base.run.txt"])
        ).means
        for metric, value in means.items():
            key = f"test/synthetic_b/base_{metric.replace('@', '_at_')}"
            assert metrics[key] == pytest.approx(value, abs=1e-6), key
        description = mlflow_run.data.tags["mlflow.note.content"]  # the run's page in the UI
        zero_shot = description.split("**Zero-shot on synthetic_b**")[1]
        trained = metrics["test/synthetic_b/ndcg_at_10"]
        untrained = metrics["test/synthetic_b/base_ndcg_at_10"]
        assert (
            f"| ndcg@10 | {trained:.4f} | {untrained:.4f} | {trained - untrained:+.4f} |"
            in zero_shot
        )
    first, second = (r.data.metrics["test/synthetic_b/base_ndcg_at_10"] for r in runs)
    assert first == second  # one untrained model (seed 0's init) ...
    assert len(list((cache / "base_eval").iterdir())) == 2  # ... evaluated once per collection

    comparison, _, _, _ = run_comparison(
        client, str(cfg.tracking.experiment), ["ndcg@10", "map@100"], tmp_path / "report"
    )
    label = "tiny untrained (reference)"
    logged = runs[0].data.metrics
    in_domain = comparison.references.means[label]["ndcg@10"]
    assert in_domain == pytest.approx(logged["test/base_ndcg_at_10"], abs=1e-6)
    other = comparison.collections["synthetic_b"].references.means[label]["ndcg@10"]
    assert other == pytest.approx(first, abs=1e-6)
    assert label not in comparison.p_values  # a reference row, outside the tests
    table = markdown_table(comparison, "lossbench")
    assert table.count(f"| {label} |") == 2  # in-domain and the collection's table:
    assert "Mean over" not in table  # the mean of one collection would repeat its table


def test_two_starting_points_of_one_model_are_two_rows_named_by_a_system() -> None:
    from types import SimpleNamespace

    from lossbench.experiment.pooling import SystemRuns
    from lossbench.experiment.reference import starting_runs

    def job(
        key: str | None, model: str = "dpr_minilm", base: float | None = 0.3
    ) -> SimpleNamespace:
        tags = {"model": model, **({"base_eval_key": key} if key else {})}
        metrics = {"test/base_ndcg_at_10": base} if base is not None else {}
        return SimpleNamespace(data=SimpleNamespace(tags=tags, metrics=metrics))

    systems = {
        "ranknet": SystemRuns("ranknet", {0: {None: job("a")}, 1: {None: job("a")}}),
        "in_batch_ce": SystemRuns("in_batch_ce", {0: {None: job("a")}}),
        "bce": SystemRuns("bce", {0: {None: job("b")}}),
        "listnet": SystemRuns("listnet", {0: {None: job("c", model="tiny")}}),
        "pearson": SystemRuns("pearson", {0: {None: job(None, base=None)}}),  # eval.base=false
    }
    chosen = starting_runs(systems)
    assert sorted(chosen) == [
        "dpr_minilm untrained, as bce",
        "dpr_minilm untrained, as in_batch_ce",
        "tiny untrained",
    ]
    assert (
        chosen["dpr_minilm untrained, as in_batch_ce"][None] is systems["in_batch_ce"].runs[0][None]
    )
    # eval.reuse_base=false (no key): one row per distinct untrained evaluation, by its metrics
    unkeyed = {
        "ranknet": SystemRuns("ranknet", {0: {None: job(None)}}),
        "in_batch_ce": SystemRuns("in_batch_ce", {0: {None: job(None)}}),
        "bce": SystemRuns("bce", {0: {None: job(None, base=0.25)}}),
    }
    assert sorted(starting_runs(unkeyed)) == [
        "dpr_minilm untrained, as bce",
        "dpr_minilm untrained, as in_batch_ce",
    ]
    same = {name: unkeyed[name] for name in ("ranknet", "in_batch_ce")}
    assert list(starting_runs(same)) == ["dpr_minilm untrained"]
