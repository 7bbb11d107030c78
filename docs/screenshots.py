"""Retake the README's MLflow screenshots from a running MLflow server, in headless Chromium.

    mlflow server --backend-store-uri sqlite:////tmp/ui-root/mlflow.db --port 5000 --workers 1 &
    python docs/screenshots.py --url http://127.0.0.1:5000 --experiment-id 1 --comparison <run id>

Takes ``docs/mlflow-grouped-charts.png`` (the job runs grouped by the ``loss`` param, chart view,
charts filtered to ``ndcg``: trained, untrained, validation) and ``docs/mlflow-comparison-report.png`` (the comparison run's
``report.html`` in the artifact viewer). Needs selenium and Chromium with its driver (Debian:
``apt-get install chromium chromium-driver``). The clicks follow MLflow 3.17's UI.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

DOCS = Path(__file__).resolve().parent
ONLY_JOBS = "params.loss LIKE '%'"
"""The runs that have a ``loss`` param: the jobs, not the sweep's parent or the comparison run."""
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")


def browser(width: int, height: int, page_load_timeout: float = 300):  # noqa: ANN201
    """Headless Chromium with a ``width`` x ``height`` window and a fresh profile (also used by
    ``tests/test_report.py``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tempfile.mkdtemp(prefix='lossbench-chromium-')}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    # the system's chromedriver: without a path, selenium would try to download one
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_load_timeout)
    return driver


def wait_for(driver, text: str, timeout: float = 180) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    end = time.time() + timeout
    while text not in driver.find_element(By.TAG_NAME, "body").text:
        if time.time() > end:
            raise TimeoutError(f"the page never showed {text!r}")
        time.sleep(1)


def close_assistant(driver) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label=Close]"):
        button.click()
        time.sleep(1)


def grouped_charts(driver, url: str, experiment_id: str, search: str, out: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    link = f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    driver.get(f"{link}&searchFilter={quote(ONLY_JOBS)}")
    wait_for(driver, "matching runs")
    close_assistant(driver)
    group_by = next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text == "Group by")
    group_by.click()
    time.sleep(2)
    driver.find_element(By.CSS_SELECTOR, "input[placeholder=Search]").send_keys("loss")
    time.sleep(2)
    items = driver.find_elements(By.CSS_SELECTOR, "[role=menuitemcheckbox]")
    params = [i for i in items if i.text == "loss"]
    params[-1].click()  # the tags come first, then the params
    time.sleep(2)
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    time.sleep(1)
    chart_view = driver.find_elements(By.CSS_SELECTOR, "[role=radio], [role=radiogroup] label")
    chart_view[1].click()
    time.sleep(5)
    box = next(
        i
        for i in driver.find_elements(By.TAG_NAME, "input")
        if "chart" in (i.get_attribute("placeholder") or "").lower()
    )
    box.send_keys(search)
    time.sleep(8)
    driver.save_screenshot(str(out))


def comparison_report(driver, url: str, experiment_id: str, run_id: str, out: Path) -> None:  # noqa: ANN001
    driver.get(
        f"{url}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/report.html"
        "?workflowType=machine_learning"
    )
    wait_for(driver, "report.html")
    close_assistant(driver)
    time.sleep(8)
    driver.save_screenshot(str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--experiment-id", required=True)
    parser.add_argument("--comparison", required=True, help="the comparison run's id")
    parser.add_argument("--chart-search", default="ndcg", help="typed into the chart search")
    args = parser.parse_args()
    driver = browser(1400, 860)
    try:
        grouped_charts(
            driver,
            args.url,
            args.experiment_id,
            args.chart_search,
            DOCS / "mlflow-grouped-charts.png",
        )
        comparison_report(
            driver,
            args.url,
            args.experiment_id,
            args.comparison,
            DOCS / "mlflow-comparison-report.png",
        )
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
