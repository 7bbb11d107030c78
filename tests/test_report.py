"""The comparison report: a self-contained ``report.html`` that a real browser renders with every
image loaded, plots sized for MLflow's artifact pane, one loss panel per scale."""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import pytest

from docs.screenshots import CHROMEDRIVER, CHROMIUM, browser
from lossbench.experiment.comparison import Comparison

SYSTEMS = ("ranknet", "infonce", "in_batch_ce")
METRICS = ["ndcg@10", "mrr@10", "recall@100", "map@100"]


def a_comparison() -> Comparison:
    """Three systems over two seeds, numbers made up (the layout is what is tested)."""
    per_seed = {
        s: {m: [0.30 + 0.05 * i + 0.01 * j, 0.32 + 0.05 * i] for j, m in enumerate(METRICS)}
        for i, s in enumerate(SYSTEMS)
    }
    return Comparison(
        metrics=METRICS,
        baseline="ranknet",
        seeds=[0, 1],
        means={
            s: {m: sum(v) / 2 for m, v in by_metric.items()} for s, by_metric in per_seed.items()
        },
        stds={s: {m: 0.01 for m in METRICS} for s in SYSTEMS},
        per_seed=per_seed,
        p_values={s: {m: 0.01 for m in METRICS} for s in SYSTEMS[1:]},
        win_tie_loss={s: {m: (10, 5, 1) for m in METRICS} for s in SYSTEMS[1:]},
        excluded=[],
    )


CURVES = {  # training losses of different scales: RankNet near 0.7, InfoNCE near 0.02
    "ranknet": {step: 0.7 - 0.01 * step for step in range(10)},
    "infonce": {step: 0.02 - 0.001 * step for step in range(10)},
    "in_batch_ce": {step: 0.03 - 0.001 * step for step in range(10)},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``report.html`` written beside its plots, then moved alone to a folder of its own."""
    from lossbench.experiment.report import write_html
    from lossbench.experiment.report_plots import plot_curves, plot_metric_bars

    folder = tmp_path_factory.mktemp("report")
    comparison = a_comparison()
    plots = [
        plot_metric_bars(comparison, folder / "metrics.png"),
        plot_curves(CURVES, "validation", "nDCG@10", folder / "val_ndcg.png"),
        plot_curves(CURVES, "training loss", "loss", folder / "train_loss.png", split_scales=True),
    ]
    write_html(comparison, plots, folder / "report.html", "a sweep")
    alone = tmp_path_factory.mktemp("alone") / "report.html"
    shutil.move(folder / "report.html", alone)
    return alone


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_the_html_loads_no_other_file(report: Path) -> None:
    sources = re.findall(r'src="([^"]*)"', report.read_text())
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in report.read_text().replace("http-equiv", "")


def test_plots_fit_the_artifact_pane(report: Path) -> None:
    from lossbench.experiment.report_plots import DPI, PANE_WIDTH_INCHES

    folder = next(report.parent.parent.glob("report*"))
    for name in ("metrics.png", "val_ndcg.png", "train_loss.png"):
        width, _ = png_size(folder / name)
        assert width <= PANE_WIDTH_INCHES * DPI + 1, name


def test_losses_of_different_scales_get_a_panel_each() -> None:
    from lossbench.experiment.report_plots import scale_groups

    assert scale_groups(CURVES) == [["infonce", "in_batch_ce"], ["ranknet"]]
    same = {k: CURVES[k] for k in ("infonce", "in_batch_ce")}
    assert scale_groups(same) == [["infonce", "in_batch_ce"]]


def test_the_comparison_run_metrics_name_every_system_and_metric() -> None:
    from lossbench.experiment.report import comparison_metrics, comparison_name

    comparison = a_comparison()
    comparison.means["ranknet+flops [abc123]"] = comparison.means["ranknet"]
    comparison.stds["ranknet+flops [abc123]"] = comparison.stds["ranknet"]
    metrics = comparison_metrics(comparison)
    assert metrics["mean/ranknet/ndcg_at_10"] == comparison.means["ranknet"]["ndcg@10"]
    assert metrics["diff_vs_baseline/infonce/mrr_at_10"] == pytest.approx(
        comparison.means["infonce"]["mrr@10"] - comparison.means["ranknet"]["mrr@10"]
    )
    assert metrics["p_value/in_batch_ce/map_at_100"] == 0.01
    assert "mean/ranknet_flops_abc123/ndcg_at_10" in metrics  # only characters MLflow accepts
    assert comparison_name(a_comparison()) == "compare in_batch_ce, infonce vs ranknet · seeds 0, 1"


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no Chromium and chromedriver installed (Debian: apt-get install chromium chromium-driver)",
)
def test_report_html_renders_every_image_in_a_real_browser(report: Path) -> None:
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    driver = browser(800, 1000, page_load_timeout=120)
    try:
        driver.get(report.as_uri())  # get() returns once the page and its images have loaded
        images = driver.execute_script(
            "return Array.from(document.images).map(i => "
            "[i.alt, i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
        )
        title = driver.title
    finally:
        driver.quit()
    assert title == "Loss comparison: in_batch_ce, infonce vs ranknet"
    assert [alt for alt, *_ in images] == ["metrics", "val_ndcg", "train_loss"]
    for alt, complete, natural_width, shown_width in images:
        assert complete and natural_width > 0, f"{alt} did not load"
        assert shown_width <= 800, f"{alt} is wider than the window"
