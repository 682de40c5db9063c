"""Reports in a real browser: headless Chromium opens each page from file:// with the network off, every plot
is drawn, no JavaScript error is logged, clicking a point shows its architecture, and injected markup stays text.

Needs Debian's chromium and chromium-driver (installed by .ci/setup) and selenium. Also a screenshot tool:
  .venv/bin/python tests/test_report_browser.py REPORT.html OUT.png [--select RUN:TRIAL] [--height PX]
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.report.fixtures import make_ablation_run, make_search_run, poison_names

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
XSS = "<script>alert(1)</script>"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--hide-scrollbars",
         "--enable-unsafe-swiftshader",            # software WebGL for the parallel-coordinates plot
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>")   # any network fetch fails


def start_driver(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium driven by chromedriver, logging the browser console, with a fresh profile."""
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    os.environ.setdefault("SE_OFFLINE", "true")   # never let Selenium Manager look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='archlab-chromium-')}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def open_report(driver: Any, path: Path) -> list[dict[str, Any]]:
    """Load a report and wait until plotly has drawn every plot div; returns the console log."""
    driver.get(path.resolve().as_uri())
    deadline = time.time() + 30
    while time.time() < deadline:
        drawn = driver.execute_script(
            "var d = document.querySelectorAll('.plot');"
            "return d.length > 0 && Array.prototype.every.call(d, function (x) {"
            "  return x.querySelector('.main-svg') !== null; });")
        if drawn:
            break
        time.sleep(0.2)
    time.sleep(0.5)   # let plotly's deferred layout passes finish
    return driver.get_log("browser")


def errors(log: list[dict[str, Any]]) -> list[str]:
    """Console entries that are JavaScript errors (uncaught exceptions, console.error, failed loads)."""
    return [e["message"] for e in log if e.get("level") == "SEVERE"]


def screenshot(report: Path, out: Path, *, select: tuple[int, int] | None = None, width: int = 1400,
               height: int | None = None) -> Path:
    """PNG of a report (the whole page, or its top `height` pixels; optionally one trial selected)."""
    driver = start_driver(width)
    try:
        open_report(driver, report)
        if select is not None:
            driver.execute_script("window.archlabSelect(arguments[0], arguments[1], false);", *select)
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, height or min(int(full) + 40, 20000))
        time.sleep(1.5)   # responsive plots re-lay out to the new window
        driver.execute_script("window.scrollTo(0, 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    return out


needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver; "
           ".ci/setup installs them)")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from archlab.report.writer import write_report
    base = tmp_path_factory.mktemp("browser")
    nsga = make_search_run(base / "nsga2", sampler="nsga2", seed=0, n_trials=14)
    rand = make_search_run(base / "random", sampler="random", seed=1, n_trials=14)
    ablation = make_ablation_run(base / "ablation", seeds=(0, 1))
    evil_search = base / "evil_search"
    shutil.copytree(nsga, evil_search)
    poison_names(evil_search, XSS)
    evil_ablation = base / "evil_ablation"
    shutil.copytree(ablation, evil_ablation)
    poison_names(evil_ablation, XSS)
    return {"search": write_report([nsga, rand], base / "search.html"),
            "ablation": write_report([ablation], base / "ablation.html"),
            "evil_search": write_report([evil_search], base / "evil_search.html"),
            "evil_ablation": write_report([evil_ablation], base / "evil_ablation.html")}


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("headless Chromium and chromedriver are needed (Debian: apt-get install chromium "
                    "chromium-driver)")
    pytest.importorskip("selenium", reason="selenium drives the browser (pip install -c constraints.txt selenium)")
    d = start_driver()
    yield d
    d.quit()


def assert_all_drawn(driver: Any, minimum: int) -> None:
    """Every plot div holds plotly's SVG and at least one drawn trace."""
    counts = driver.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('.plot'), function (d) {"
        "  return [d.id, d.querySelectorAll('.main-svg').length,"
        "          d.querySelectorAll('.trace, .bars, .parcoords .y-axis').length]; });")
    assert len(counts) >= minimum
    for fig_id, svgs, traces in counts:
        assert svgs > 0, f"{fig_id} was not drawn"
        assert traces > 0, f"{fig_id} has no traces"


@needs_browser
def test_search_report_draws_and_responds(driver: Any, reports: dict[str, Path]) -> None:
    """One page load: every plot drawn, no console error; click a point; sort, filter and click the table."""
    from selenium.webdriver.common.action_chains import ActionChains
    assert errors(open_report(driver, reports["search"])) == []
    assert_all_drawn(driver, 7)      # 3 fronts, hypervolume, importance, 2 parallel-coordinate plots

    # clicking a point of the front selects that trial: stage table and a spec download
    before = driver.find_element("id", "detail").get_attribute("data-selected")
    points = driver.find_elements("css selector", "#fig-front .scatterlayer .trace .points path")
    assert points
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", points[0])
    ActionChains(driver).move_to_element(points[0]).pause(0.3).click().perform()
    time.sleep(0.5)
    after = driver.find_element("id", "detail").get_attribute("data-selected")
    assert after and after != before
    number = int(after.split(":")[1])
    detail = driver.find_element("id", "detail").text
    assert f"trial {number}" in detail and "Download spec.yaml" in detail
    link = driver.find_element("css selector", "#detail a.download")
    assert link.get_attribute("href").startswith("data:application/x-yaml")
    assert link.get_attribute("download").endswith(f"-trial-{number}-spec.yaml")
    arch = driver.find_element("id", "detail-arch").text
    assert f"Architecture of trial {number}" in arch and "stage 1" in arch

    # the trial table: sort by latency, show failed trials only, click one for its reason
    table = driver.find_element("id", "trials-table")
    headers = table.find_elements("css selector", "thead th")
    latency_col = [h.text for h in headers].index("latency ms")
    driver.execute_script("arguments[0].click();", headers[latency_col])
    values = driver.execute_script(
        "var col = arguments[1]; return Array.prototype.map.call(arguments[0].tBodies[0].rows, function (r) {"
        "  return r.cells[col].getAttribute('data-v'); });", table, latency_col)
    numbers = [float(v) for v in values if v != ""]
    assert numbers == sorted(numbers) and len(numbers) == 28
    failed = driver.find_element("css selector", ".toolbar button[data-state='failed']")
    driver.execute_script("arguments[0].click();", failed)
    shown = driver.execute_script(
        "return Array.prototype.filter.call(arguments[0].tBodies[0].rows, function (r) {"
        "  return r.style.display !== 'none'; }).map(function (r) { return r.getAttribute('data-state'); });", table)
    assert shown == ["failed"] * 4
    row = table.find_element("css selector", "tbody tr[data-state='failed']")
    driver.execute_script("arguments[0].click();", row)
    detail = driver.find_element("id", "detail").text
    assert "reason:" in detail and "trial " + row.get_attribute("data-number") in detail
    assert errors(driver.get_log("browser")) == []


@needs_browser
def test_ablation_report_draws(driver: Any, reports: dict[str, Path]) -> None:
    assert errors(open_report(driver, reports["ablation"])) == []
    assert_all_drawn(driver, 5)      # ladder, GMACs, latency, agreement scatter, deltas
    branches = driver.execute_script(
        "return document.getElementById('fig-top1').data.filter(function (t) {"
        "  return t.name.indexOf('side branches') >= 0; }).length;")
    assert branches == 2             # proxy and paper branches drawn off their parents


@needs_browser
@pytest.mark.parametrize("name", ["evil_search", "evil_ablation"])
def test_injected_markup_is_shown_as_text(driver: Any, reports: dict[str, Path], name: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    assert errors(open_report(driver, reports[name])) == []
    assert_all_drawn(driver, 5)
    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text  # raises when no alert() ran: the injected script stayed inert
    assert XSS in driver.find_element("css selector", "header h1").text
    assert driver.execute_script("return document.querySelectorAll('script').length") == 3  # plotly, data, page
    if name == "evil_search":
        driver.execute_script("window.archlabSelect(0, 3, false);")     # a failed trial: its error is XSS
        assert XSS in driver.find_element("id", "detail").text
        ticks = driver.execute_script(
            "return Array.prototype.map.call(document.querySelectorAll('#fig-parallel-0 .tick text'),"
            " function (t) { return t.textContent; });")
        assert XSS in ticks                 # a categorical parameter value, drawn by plotly as plain text
    else:
        ticks = driver.execute_script(
            "return Array.prototype.map.call(document.querySelectorAll('#fig-top1 .xtick text'),"
            " function (t) { return t.textContent; });")
        assert XSS + "-step" in ticks       # a step name on the ladder's axis


@needs_browser
def test_static_export_with_kaleido(reports: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("kaleido", reason="static export needs kaleido (pip install -c constraints.txt kaleido)")
    from archlab.report.data import load_ablation_run
    from archlab.report.plots import ablation_latency_figure
    from archlab.report.writer import Figures, export_static
    figures = Figures()
    figures.add("fig-latency", ablation_latency_figure(load_ablation_run(reports["ablation"].parent / "ablation")),
                "latency per step")
    notes: list[str] = []
    files = export_static(figures, tmp_path / "figs", log=notes.append)
    assert notes == [] and [f.name for f in files] == ["latency.png", "latency.svg"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in files[1].read_text()[:500] and "latency per step" in files[1].read_text()


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="Full-page screenshot of an archlab report")
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--select", default=None, metavar="RUN:TRIAL", help="select this trial first")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=None, help="only the top of the page (default: all of it)")
    a = parser.parse_args()
    sel = tuple(int(x) for x in a.select.split(":")) if a.select else None
    print(screenshot(a.report, a.out, select=sel, width=a.width, height=a.height))  # type: ignore[arg-type]
