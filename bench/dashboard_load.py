"""How fast the dashboard answers on large data: a study of 1,000 trials and a run of 200,000
steps (synthetic files and an Optuna SQLite study written as trainlab's driver writes them).

Measures each API response (cold: first request after start; warm: the next one, as a poll)
and the full page load in Chromium (Playwright): from navigation to the charts drawn. Target:
under 2 s each.

    python bench/dashboard_load.py [--trials 1000] [--steps 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from trainlab.dashboard.server import Dashboard
from trainlab.search import study as studies

TARGET_S = 2.0
SPACE = {
    "optim.lr": "loguniform(1e-5, 1)",
    "optim.betas.0": "beta(0.8, 0.999)",
    "optim.name": "choice([sgd, momentum, adam])",
}
DISTS = {
    "optim.lr": FloatDistribution(1e-5, 1.0, log=True),
    "1-optim.betas.0": FloatDistribution(0.001, 0.2, log=True),
    "optim.name": CategoricalDistribution(["sgd", "momentum", "adam"]),
}


def make_run(path: Path, steps: int, epochs: int = 100) -> None:
    rng = random.Random(0)
    path.mkdir(parents=True)
    path.joinpath("config.yaml").write_text("data: {name: spirals}\noptim: {name: adam}\n")
    per = steps // epochs
    with open(path / "steps.jsonl", "w") as f:
        for s in range(1, steps + 1):
            f.write(json.dumps({"step": s, "loss": 2.3 / math.sqrt(s) + rng.random() * 0.1}) + "\n")
    with open(path / "metrics.jsonl", "w") as f:
        for e in range(1, epochs + 1):
            acc = 1 - 0.5 / e
            row = {"epoch": e, "step": e * per, "train_loss": 1 / e, "train_accuracy": acc}
            row.update(val_accuracy=acc - 0.02, lr=1e-3, update_ratio=1e-3 * (1 + rng.random()))
            f.write(json.dumps(row) + "\n")
    result = {"val_accuracy": 0.98, "test_accuracy": 0.97, "stopped_reason": "completed"}
    path.joinpath("result.json").write_text(json.dumps({**result, "advice": []}))


def make_study(root: Path, trials: int, epochs: int = 20) -> None:
    rng = random.Random(0)
    storage = studies.open_storage(f"sqlite:///{root}/trainlab.db")
    study = optuna.create_study(study_name="big", storage=storage, direction="maximize")
    study.set_user_attr(
        studies.SIGNATURE_ATTR, {"space": SPACE, "strategy": "coarse-to-fine", "experiment": ""}
    )
    study.set_user_attr(studies.DIR_ATTR, str((root / "search" / "big").resolve()))
    made = []
    for i in range(trials):
        r = 3 * i // trials
        box = {"optim.lr": {"low": 10 ** (-5 + r), "high": 1.0}}
        value = rng.random()
        made.append(
            optuna.trial.create_trial(
                params={
                    "optim.lr": 10 ** rng.uniform(-5, 0),
                    "1-optim.betas.0": 10 ** rng.uniform(-3, math.log10(0.2)),
                    "optim.name": rng.choice(["sgd", "momentum", "adam"]),
                },
                distributions=DISTS,
                value=value,
                intermediate_values={e: value * e / epochs for e in range(1, epochs + 1)},
                user_attrs={"round": r, "epochs": epochs},
                system_attrs={"trainlab:round": r, "trainlab:box": box},
            )
        )
    study.add_trials(made)


def timed_get(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url) as resp:
        body = resp.read()
    return time.perf_counter() - t0, len(body)


def page_load(url: str, ready: str) -> float | None:
    """Seconds from navigation to `ready` (a JS condition) in Chromium; None without it."""
    try:
        from playwright.sync_api import sync_playwright  # optional: only for page loads
    except ImportError:
        return None
    if not shutil.which("chromium"):
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_function(ready, timeout=60_000)
        seconds = time.perf_counter() - t0
        browser.close()
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="trainlab-dash-bench-"))
    root = tmp / "runs"
    t0 = time.perf_counter()
    make_run(root / "long", args.steps)
    make_study(root, args.trials)
    made = time.perf_counter() - t0
    board = Dashboard(root, port=0).start()
    rows = []
    try:
        for what, path in [
            ("GET /api/runs/long", "api/runs/long"),
            ("GET /api/studies/big", "api/studies/big"),
            ("GET /api/runs", "api/runs"),
            ("GET /api/studies", "api/studies"),
        ]:
            cold, size = timed_get(board.url + path)
            warm, _ = timed_get(board.url + path)
            rows.append({"what": what, "cold_s": cold, "warm_s": warm, "bytes": size})
        run_ready = "Number(document.querySelector('#loss-chart')?.dataset.points||0)>0"
        study_ready = (
            "document.querySelectorAll('#params canvas').length==3 && "
            "Number(document.querySelector('#caviar')?.dataset.points||0)>0"
        )
        for what, path, ready in [
            ("page /run/long", "run/long", run_ready),
            ("page /study/big", "study/big", study_ready),
        ]:
            # a fresh server: the page's first request reads the files cold
            fresh = Dashboard(root, port=0).start()
            try:
                rows.append({"what": what, "cold_s": page_load(fresh.url + path, ready)})
            finally:
                fresh.stop()
            rows.append({"what": what + " (warm)", "cold_s": page_load(board.url + path, ready)})
    finally:
        board.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    worst = max(max(r["cold_s"] or 0, r.get("warm_s") or 0) for r in rows)
    out = {
        "trials": args.trials,
        "steps": args.steps,
        "generate_s": made,
        "rows": rows,
        "target_s": TARGET_S,
        "worst_s": worst,
        "ok": worst < TARGET_S,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.trials} trials, {args.steps} steps (generated in {made:.1f} s)")
        print(f"{'what':32} {'first (s)':>10} {'again (s)':>10} {'bytes':>10}")
        for r in rows:
            first = "-" if r["cold_s"] is None else f"{r['cold_s']:.3f}"
            again = "-" if r.get("warm_s") is None else f"{r['warm_s']:.3f}"
            print(f"{r['what']:32} {first:>10} {again:>10} {r.get('bytes', ''):>10}")
        print(f"worst {worst:.3f} s, target < {TARGET_S} s: {'ok' if out['ok'] else 'MISSED'}")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
