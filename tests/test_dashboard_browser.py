"""The dashboard in a real browser (Playwright driving Debian's Chromium): the home page lists a
finished run and a study, a run started during the test appears and its chart gains epochs
while the test watches, compare overlays two runs, the study page draws its parameter plots,
and markup stored in a run or a study shows as text (no script runs) under the page's CSP.

Screenshots go to test-artifacts/dashboard/ (and to docs/img/ with TRAINLAB_DOCS_IMG=1).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading
import time
from pathlib import Path

import optuna
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("no Chromium: apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

from test_dashboard_api import write_run  # noqa: E402

from trainlab import train  # noqa: E402
from trainlab.cli import main  # noqa: E402
from trainlab.config import known_path  # noqa: E402
from trainlab.dashboard.server import Dashboard  # noqa: E402
from trainlab.engine import Callback  # noqa: E402
from trainlab.search import study as studies  # noqa: E402
from trainlab.search.space import parse_space  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
DOCS_IMG = REPO / "docs" / "img"


class Slow(Callback):
    """Spaces the epochs out so the test can watch them arrive."""

    def on_epoch_end(self, trainer, record):  # noqa: ANN001, ANN201
        time.sleep(0.6)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
    if os.environ.get("TRAINLAB_DOCS_IMG") == "1":
        page.screenshot(path=str(DOCS_IMG / f"dashboard-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "runs"
    spirals = str(REPO / "examples" / "spirals-mlp.yaml")
    args = ["train", spirals, "--set", "train.epochs=3", "--set", "optim.lr=3e-3"]
    assert main([*args, "--out", str(root / "done")]) == 0
    search = str(REPO / "examples" / "spirals-search.yaml")
    args = ["search", search, "--trials", "4", "--set", "train.epochs=2"]
    args += ["--storage", f"sqlite:///{root}/trainlab.db", "--out", str(root / "search" / "spi")]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main([*args, "--study", "spi"]) == 0
    assert f"trainlab dashboard {root}" in err.getvalue()  # search says where to look
    server = Dashboard(root, port=0).start()
    yield server, root
    server.stop()


@pytest.fixture(scope="module")
def page(board):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # Playwright's wait_for_function evaluates strings, which the dashboard's CSP forbids;
        # test_stored_markup_shows_as_text loads the pages under their CSP
        pg = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        browser.close()
        assert errors == []


def points(page, selector: str) -> int:
    return int(page.get_attribute(selector, "data-points") or 0)


def test_home_lists_the_finished_run_and_the_study(board, page):
    server, _ = board
    page.goto(server.url)
    page.wait_for_selector('a[href="/run/done"]', timeout=10_000)
    page.wait_for_selector('a[href="/study/spi"]', timeout=10_000)
    assert "completed" in page.inner_text("#runs")
    page.fill("#filter", "spi")
    page.wait_for_function("!document.querySelector('a[href=\"/run/done\"]')", timeout=5000)
    assert page.is_visible('a[href="/study/spi"]')
    page.fill("#filter", "")
    shot(page, "home")


def test_a_run_started_now_appears_and_its_chart_gains_epochs(board, page):
    server, root = board
    spirals = REPO / "examples" / "spirals-mlp.yaml"
    result: dict = {}

    def run() -> None:
        result["r"] = train(
            spirals, out=root / "live", overrides=["train.epochs=8"], callbacks=[Slow()]
        )

    thread = threading.Thread(target=run)
    thread.start()
    try:
        page.goto(server.url)
        page.wait_for_selector('a[href="/run/live"]', timeout=15_000)
        page.click('a[href="/run/live"]')
        page.wait_for_function(
            "Number(document.querySelector('#acc-chart')?.dataset.points || 0) >= 1",
            timeout=15_000,
        )
        assert "running" in page.inner_text("#status")
        first = points(page, "#acc-chart")
        assert thread.is_alive() and first < 8
        t0 = time.monotonic()
        page.wait_for_function(
            f"Number(document.querySelector('#acc-chart').dataset.points) > {first}",
            timeout=5_000,
        )
        assert time.monotonic() - t0 < 4.0  # an epoch every ~0.7 s, shown within 2 s
        shot(page, "run")
    finally:
        thread.join()
    page.wait_for_function(
        "Number(document.querySelector('#acc-chart').dataset.points) == 8", timeout=10_000
    )
    page.wait_for_selector(".badge.completed", timeout=10_000)


def test_compare_overlays_two_runs_and_lists_config_differences(board, page):
    server, _ = board
    page.goto(server.url + "compare?runs=done,live")
    page.wait_for_selector("#diff-table", timeout=10_000)
    legend = page.inner_text("#compare-val")
    assert "done" in legend and "live" in legend
    assert points(page, "#compare-val") == 8  # epochs 1..8 joined over both runs
    assert page.get_attribute("#compare-val", "data-series") == "2"  # both curves drawn
    diffs = page.inner_text("#diff-table")
    assert "train.epochs" in diffs and "optim.lr" in diffs and "data.name" not in diffs
    shot(page, "compare")


def test_study_page_draws_every_curve_and_the_parameter_plots(board, page):
    server, _ = board
    page.goto(server.url + "study/spi")
    page.wait_for_selector("#params canvas", timeout=10_000)
    canvases = page.query_selector_all("#params canvas")
    assert len(canvases) == 5  # one per searched parameter of spirals-search.yaml
    lr_points = int(canvases[0].get_attribute("data-points"))
    assert 1 <= lr_points <= 4
    assert points(page, "#caviar") >= 1
    assert int(page.get_attribute("#pc svg", "data-lines")) >= 1
    assert "best trial" in page.inner_text("#best")
    shot(page, "study")


EVIL = "<img src=x onerror=window.__pwned=1>"


def test_stored_markup_shows_as_text_and_runs_no_script(page, tmp_path):
    """An ensemble whose metrics hold markup where the epoch goes, and a study whose choice is
    markup: the run, compare and study pages show it as text, under the page's CSP (no
    violation) and without it (the rendering alone)."""
    root = tmp_path / "runs"
    for run in (root / "ens", root / "ens" / "members" / "0"):
        write_run(run, epochs=1, steps=3)
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": EVIL, "val_accuracy": 0.5}) + "\n")
    searched = {"model.activation": f'choice(["{EVIL}", relu])'}
    dists = parse_space(searched, known_path).distributions()
    study = optuna.create_study(study_name="evil", storage=f"sqlite:///{root}/trainlab.db")
    study.set_user_attr(studies.SIGNATURE_ATTR, {"space": searched})
    params = {"model.activation": EVIL}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=0.5))
    server = Dashboard(root, port=0).start()
    strict = page.context.browser.new_page()  # the dashboard's own CSP in force
    violations: list[str] = []
    strict.on(
        "console", lambda m: "Content Security Policy" in m.text and violations.append(m.text)
    )
    try:
        for pg in (page, strict):
            for url, where in [
                ("run/ens", "#members td"),
                ("compare?runs=ens,ens/members/0", "#results td"),
                ("study/evil", "#board td"),
            ]:
                pg.goto(server.url + url)
                pg.wait_for_selector(where, timeout=10_000)
                assert EVIL in pg.inner_text(where.split()[0]), url
                assert pg.query_selector("img[src=x]") is None
                assert pg.evaluate("window.__pwned") is None
    finally:
        strict.close()
        server.stop()
    assert violations == []
