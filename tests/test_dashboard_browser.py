"""The dashboard in a real browser (Playwright driving Debian's Chromium): the home page lists a
finished run and a study, a run started during the test appears and its chart gains epochs
while the test watches (its loss chart with the epochs' losses, a log toggle and ticks labelled
as numbers), compare overlays two runs, a `trainlab compare` folder shows as its comparison,
the study page draws its parameter plots, a study being searched shows its trials with hover,
legend and importances, and markup stored in a run or a study shows as text (no script runs)
under the page's CSP.

Screenshots of every page type go to test-artifacts/dashboard/ (and to docs/img/, shrunk, with
TRAINLAB_DOCS_IMG=1).
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


def shot(page, name: str, height: int = 1400) -> None:
    """The page (its first `height` pixels) as test-artifacts/dashboard/dashboard-NAME.png, and
    with TRAINLAB_DOCS_IMG=1 as docs/img/dashboard-NAME.png in 64 colours (small files, as
    docs/img/shrink.py makes them)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    tall = page.evaluate("document.documentElement.scrollHeight")
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(height, tall)}
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True, clip=clip)
    if os.environ.get("TRAINLAB_DOCS_IMG") == "1":
        from PIL import Image

        image = Image.open(path).convert("RGB")
        small = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        small.save(DOCS_IMG / path.name, optimize=True)


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
    configs = root.parent / "configs"
    configs.mkdir()
    for name, optim in [("adam", "{name: adam, lr: 1e-2}"), ("sgd", "{name: sgd, lr: 1e-1}")]:
        text = (REPO / "examples" / "spirals-mlp.yaml").read_text()
        configs.joinpath(f"{name}.yaml").write_text(text.replace("{name: adam, lr: 1e-2}", optim))
    args = ["compare", str(configs / "adam.yaml"), str(configs / "sgd.yaml"), "--seeds", "2"]
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--set", "train.epochs=2", "--out", str(root / "cmp")]) == 0
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
    finally:
        thread.join()
    page.wait_for_function(
        "Number(document.querySelector('#acc-chart').dataset.points) == 8", timeout=10_000
    )
    page.wait_for_selector(".badge.completed", timeout=10_000)
    shot(page, "run")
    # the loss chart: per-step loss raw and smoothed, the epochs' train and validation loss
    assert page.get_attribute("#loss-chart", "data-series") == "4"
    log = page.get_attribute("#loss-chart", "data-log")
    page.click("#loss-log")
    assert page.get_attribute("#loss-chart", "data-log") != log
    page.fill("#smoothing", "0.5")
    assert page.inner_text("#smoothing-value") == "0.500"
    # ticks: 5e-5 is not "0"; steps of 1, 2 or 5 (never 3.75 epochs nor 1.020)
    assert page.evaluate("[fmtTick(5e-5), fmtTick(0.000562), fmtTick(1.02), fmtTick(3)]") == [
        "5e-5",
        "5.62e-4",
        "1.02",
        "3",
    ]
    assert page.evaluate("[wantsLog([[2.3, 0.05]]), wantsLog([[2.3, 0.5]])]") == [True, False]
    assert page.evaluate("niceTicks(1, 8, 4, true)") == [2, 4, 6, 8]
    assert page.evaluate("niceTicks(0.41, 0.99, 4)") == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert page.evaluate("logTicks(-4, 0).map(v => Math.round(10 ** v * 1e6) / 1e6)") == [
        0.0001,
        0.001,
        0.01,
        0.1,
        1,
    ]


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
    shot(page, "compare", height=1000)


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
    assert "of 4 trials" in page.inner_text("#board") or "all 4 trials" in page.inner_text("#board")
    page.goto(server.url + "run/search/spi/trials/0001")  # a trial keeps no per-step loss
    note = "document.querySelector('#loss-chart .note')?.textContent"
    page.wait_for_function(note, timeout=10_000)
    assert "steps are not kept for search trials" in page.inner_text("#loss-chart .note")


def test_a_compare_folder_shows_its_verdict_picture_and_runs(board, page):
    server, _ = board
    page.goto(server.url)
    page.wait_for_selector('a[href="/run/cmp"]', timeout=10_000)
    assert page.query_selector('a[href="/run/cmp/adam"]') is None  # a config, not a run
    page.goto(server.url + "run/cmp")
    page.wait_for_selector("#verdict-table", timeout=10_000)
    assert "seeds" in page.inner_text("#verdict-table")  # the verdict in words
    assert page.query_selector('#compare-picture img[src^="/files/cmp/compare.png"]')
    page.wait_for_selector('#seed-runs a[href="/run/cmp/sgd/seed-1"]')
    assert page.query_selector("#loss-chart") is None  # no empty run charts
    shot(page, "compare-folder")


def test_a_study_being_searched_shows_hover_legend_and_importances(board, page):
    """A search runs while the page watches: its trials arrive, states have a legend, hovering
    a line names the trial with its params and value, and the importances appear."""
    server, root = board
    search = str(REPO / "examples" / "spirals-search.yaml")
    args = ["search", search, "--trials", "24", "--set", "train.epochs=4", "--study", "live"]
    args += ["--storage", f"sqlite:///{root}/trainlab.db", "--out", str(root / "search" / "live")]
    done: list[int] = []

    def run() -> None:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            done.append(main(args))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        page.goto(server.url + "study/live")
        page.wait_for_function(
            "Number(document.querySelector('#caviar')?.dataset.lines || 0) >= 3", timeout=60_000
        )
        page.wait_for_selector("#importances table.bars", timeout=60_000)
        live = page.inner_text("#status")
        assert "complete" in page.inner_text("#caviar .legend")
        page.dispatch_event("#pc svg path", "mouseenter")
        tip = page.inner_text("#tip")
        assert tip.startswith("trial ") and "optim.lr = " in tip and "val accuracy" in tip
        shot(page, "study")
    finally:
        thread.join()
    assert done == [0] and ("running" in live or "finished" in live)


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
