"""Start-up against its reference: `trainlab --help`, an argument mistake and `trainlab
dashboard`'s first `/api/runs` answer, each the wall time of a whole new process, against
`python -c "import optuna"` (DESIGN.md, Pins: "costs no more than importing Optuna").

Paired rounds: each round runs every command once, in turn, so load on a shared machine hits
them alike; the table gives each command's median over the rounds and the median of its ratio
to the Optuna import of the same round. `--before SRC` adds the same commands run from another
checkout's sources (e.g. /work/main/src) for a before/after comparison in one run.

    python bench/startup.py [--rounds 5] [--before SRC] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))
from trainlab.rundir import CONFIG, METRICS, RESULT  # noqa: E402  (no torch, no Optuna)

OPTUNA = [sys.executable, "-c", "import optuna"]


def make_runs(root: Path) -> Path:
    """A runs folder with one finished run (its files written by hand: no training here)."""
    run = root / "runs" / "spirals-1"
    run.mkdir(parents=True)
    (run / CONFIG).write_text("data:\n  name: spirals\ntrain:\n  epochs: 2\n")
    lines = [{"epoch": e, "train_loss": 1.0 / e, "val_accuracy": 0.5 + 0.1 * e} for e in (1, 2)]
    (run / METRICS).write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = {"stopped_reason": "completed", "epochs": 2, "val_accuracy": 0.7}
    (run / RESULT).write_text(json.dumps({**result, "test_accuracy": 0.69}))
    return root / "runs"


def timed(argv: list[str], env: dict[str, str], status: int) -> float:
    """Wall seconds of one process; its exit status must be `status`."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != status:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return seconds


def dashboard_first_answer(runs: Path, env: dict[str, str]) -> float:
    """Seconds from launching `trainlab dashboard` to its first `/api/runs` answer."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainlab", "dashboard", str(runs), "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # "trainlab dashboard: ... at http://127.0.0.1:PORT/ ..."
            found = re.search(r"at (http://\S+/) ", line)
            if found:
                break
        else:
            raise SystemExit("trainlab dashboard ended before listening")
        with urllib.request.urlopen(found.group(1) + "api/runs", timeout=60) as answer:
            rows = json.load(answer)
        seconds = time.perf_counter() - start
        assert len(rows) == 1, rows
        return seconds
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--before", metavar="SRC", help="another checkout's src/ to time alongside")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    trees = {"": str(SRC)}
    if args.before:
        trees[" (before)"] = str(Path(args.before).resolve())
    with tempfile.TemporaryDirectory(prefix="trainlab-startup-") as tmp:
        runs = make_runs(Path(tmp))
        commands: dict[str, Any] = {'python -c "import optuna"': lambda env: timed(OPTUNA, env, 0)}
        for label, src in trees.items():
            env = {**os.environ, "PYTHONPATH": src}
            trainlab = [sys.executable, "-m", "trainlab"]
            commands[f"trainlab --help{label}"] = lambda e, env=env, t=trainlab: timed(
                [*t, "--help"], env, 0
            )
            commands[f"trainlab train X --bad-flag (exit 2){label}"] = (
                lambda e, env=env, t=trainlab: timed([*t, "train", "x.yaml", "--bad-flag"], env, 2)
            )
            commands[f"trainlab dashboard: first /api/runs{label}"] = lambda e, env=env: (
                dashboard_first_answer(runs, env)
            )
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, run in commands.items():
                times[name].append(run(dict(os.environ)))
    reference = times['python -c "import optuna"']
    rows = [
        {
            "command": name,
            "median_s": statistics.median(ts),
            "ratio_to_optuna_import": statistics.median(t / r for t, r in zip(ts, reference)),
            "times_s": ts,
        }
        for name, ts in times.items()
    ]
    if args.json:
        print(json.dumps({"rounds": args.rounds, "rows": rows}))
        return 0
    print(f"{'command':<52} {'median s':>9} {'x optuna import':>16}  ({args.rounds} rounds)")
    for r in rows:
        print(f"{r['command']:<52} {r['median_s']:>9.3f} {r['ratio_to_optuna_import']:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
