"""How fast, and at what cost, the dashboard answers on large data: a run of 2,000,000 steps,
a run of 100,000 epochs and a study of 1,000 trials (synthetic files and an Optuna SQLite study
written as trainlab's driver writes them).

The server runs as `trainlab dashboard` in its own process, so its CPU time and memory (RSS) are
its own. Each API answer is timed on the first request after start and again as an unchanged
poll (the page's once-a-second poll: for a run, `?since=` the epochs and steps it already holds),
with the server's CPU seconds for that poll and the bytes sent. Optionally (--pages) the full
page load in Chromium (Playwright). Target (DESIGN Pins): a repeat poll of an unchanged 2M-step
run answers in under 0.5 s.

    python bench/dashboard_load.py [--trials 1000] [--steps 2000000] [--epochs 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from trainlab.search import study as studies

TARGET_S = 0.5  # a repeat poll of an unchanged 2M-step run (DESIGN Pins)
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
    per = max(1, steps // epochs)
    write_steps(path / "steps.jsonl", steps)
    with open(path / "metrics.jsonl", "w") as f:
        for e in range(1, epochs + 1):
            acc = 1 - 0.5 / e
            row = {"epoch": e, "step": e * per, "train_loss": 1 / e, "train_accuracy": acc}
            row.update(val_loss=1.2 / e, val_accuracy=acc - 0.02, lr=1e-3)
            row.update(update_ratio=1e-3 * (1 + rng.random()))
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


def write_steps(path: Path, steps: int) -> None:
    """steps.jsonl of `steps` lines, written in blocks (2M lines in seconds)."""
    rng = random.Random(0)
    with open(path, "w") as f:
        for a in range(1, steps + 1, 100_000):
            f.write(
                "".join(
                    f'{{"step": {s}, "loss": {2.3 / math.sqrt(s) + rng.random() * 0.1:.6g}}}\n'
                    for s in range(a, min(steps, a + 99_999) + 1)
                )
            )


class Server:
    """`trainlab dashboard ROOT --port 0` in its own process: its URL, CPU seconds and RSS."""

    def __init__(self, root: Path) -> None:
        cmd = [sys.executable, "-m", "trainlab", "dashboard", str(root), "--port", "0"]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        found = re.search(r"(http://\S+/)", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"the dashboard did not start: {line}")
        self.url = found.group(1)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def get(self, path: str) -> tuple[float, float, bytes]:
        """(wall seconds, server CPU seconds, body) of one request."""
        cpu = self.cpu_s()
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.url + path) as resp:
            body = resp.read()
        return time.perf_counter() - t0, self.cpu_s() - cpu, body

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def since(body: bytes) -> str:
    """The `?since=` a page sends after this answer (epochs and steps it holds)."""
    run = json.loads(body)
    return f"?since={len(run['metrics']) + run.get('metrics_from', 0)},{run['steps']['total']}"


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
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_function(ready, timeout=60_000)
        seconds = time.perf_counter() - t0
        browser.close()
    return seconds


def measure(root: Path, pages: bool) -> list[dict]:
    rows = []
    server = Server(root)
    try:
        server.get("api/runs")  # the server is up (its start-up thread warms the index)
        time.sleep(2)
        rows.append({"what": "server started", "rss_mb": server.rss_mb()})
        for what, path, polled in [
            ("GET /api/runs/long", "api/runs/long", True),
            ("GET /api/runs/epochs", "api/runs/epochs", True),
            ("GET /api/studies/big", "api/studies/big", False),
            ("GET /api/runs", "api/runs", False),
        ]:
            first, first_cpu, body = server.get(path)
            again, cpu, again_body = server.get(path)
            row = {
                "what": what,
                "first_s": first,
                "first_cpu_s": first_cpu,
                "again_s": again,
                "again_cpu_s": cpu,
                "bytes": len(body),
                "again_bytes": len(again_body),
            }
            if polled:  # the page's own poll: ?since= what it holds
                wall, cpu, polled_body = server.get(path + since(body))
                row.update(since_s=wall, since_cpu_s=cpu, since_bytes=len(polled_body))
            rows.append({**row, "rss_mb": server.rss_mb()})
        if pages:
            run_ready = "Number(document.querySelector('#loss-chart')?.dataset.points||0)>0"
            study_ready = "Number(document.querySelector('#caviar')?.dataset.points||0)>0"
            for what, path, ready in [
                ("page /run/long", "run/long", run_ready),
                ("page /study/big", "study/big", study_ready),
            ]:
                rows.append({"what": what, "first_s": page_load(server.url + path, ready)})
    finally:
        server.stop()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2_000_000)
    ap.add_argument("--epochs", type=int, default=100_000)
    ap.add_argument("--pages", action="store_true", help="also time page loads in Chromium")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="trainlab-dash-bench-"))
    root = tmp / "runs"
    try:
        t0 = time.perf_counter()
        make_run(root / "long", args.steps)
        make_run(root / "epochs", 100, epochs=args.epochs)
        make_study(root, args.trials)
        made = time.perf_counter() - t0
        rows = measure(root, args.pages)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    long_poll = max(rows[1]["again_s"], rows[1]["since_s"])
    out = {
        "trials": args.trials,
        "steps": args.steps,
        "epochs": args.epochs,
        "generate_s": made,
        "rows": rows,
        "rss_mb": max(r.get("rss_mb", 0) for r in rows),
        "target_s": TARGET_S,
        "long_poll_s": long_poll,
        "ok": long_poll < TARGET_S,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{args.trials} trials, {args.steps} steps, {args.epochs} epochs "
            f"(generated in {made:.1f} s); server in its own process"
        )
        head = ["what", "first s", "cpu s", "again s", "cpu s", "bytes", "again bytes"]
        head += ["since s", "cpu s", "since bytes", "RSS MB"]
        print(f"{head[0]:22}" + "".join(f"{h:>12}" for h in head[1:]))
        for r in rows:
            keys = ["first_s", "first_cpu_s", "again_s", "again_cpu_s", "bytes", "again_bytes"]
            keys += ["since_s", "since_cpu_s", "since_bytes", "rss_mb"]
            cells = [r.get(k) for k in keys]
            cells = [
                "-" if v is None else str(v) if isinstance(v, int) else f"{v:.3f}" for v in cells
            ]
            cells[-1] = cells[-1] if r.get("rss_mb") is None else f"{r['rss_mb']:.0f}"
            print(f"{r['what']:22}" + "".join(f"{c:>12}" for c in cells))
        verdict = "ok" if out["ok"] else "MISSED"
        print(f"repeat poll, {args.steps} steps: {long_poll:.3f} s (< {TARGET_S} s: {verdict})")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
