"""`trainlab search` against a hand-written Optuna script on start-up: when each starts training,
when each has its first result, and where trainlab's start-up goes (its phases) and what its
driver costs per epoch report and per finished trial.

Both run bench/search_peers.py's task (MNIST-1D CNN, TPE + median pruner, 2 workers of one torch
thread) as their own commands, alternated (paired rounds, the order swapped each round): trainlab
as `trainlab search` through the CLI's `main` in a child process that times the driver's phases by
wrapping them, the Optuna script as search_peers.py runs it (two processes on a journal file).
Measured from each command's launch, the same rule for both:

- `startup_s`: until the first epoch starts training (the first epoch's end minus its seconds);
- `first_result_s`: until the first trial has finished (its last epoch's end; trainlab: the
  driver gets the worker's result).

The ratios are trainlab's over the script's in the same round; the median of the rounds is
reported. trainlab's phases, from its launch: `cli_s` (interpreter + the CLI's import),
`workers_started_s` (its local workers spawned), `plan_s`, `study_s` (storage + study open +
the data: prepared by the first worker, waited for before the first trial), `workers_ready_s`
(every worker has loaded torch and the trainer), `driver_cpu_s` (the CPU seconds the driver
process has used when it hands out its first trial: on a machine of few cores the driver's
work delays the workers' start), and the driver's `per_epoch_report_ms` and
`per_finished_trial_ms`.

    python bench/search_startup.py [--rounds 3] [--trials 8] [--epochs 10]
      [--storage sqlite|journal] [--json]

Run the "before" of a change with its tree first on the path: `PYTHONPATH=<old>/src python
bench/search_startup.py` (phases a tree has not got are left out).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


# --------------------------------------------------------------------------- child: trainlab


def child(work: Path, storage: str, trials: int, epochs: int) -> None:
    """Run `trainlab search` here with its phases timed; print one JSON object of marks
    (time.time() seconds) and the driver's handling times."""
    t0 = time.time()
    from trainlab.cli import main as cli_main

    t_cli = time.time()
    from search_peers import trainlab_config

    from trainlab.commands import search as command
    from trainlab.experiments import executors

    marks: dict[str, float] = {"child": t0, "cli": t_cli}
    handled: list[tuple[str, float]] = []

    def wrap(cls: type, name: str, before: str | None = None, after: str | None = None) -> None:
        original = getattr(cls, name, None)
        if original is None:  # a tree without this phase (the "before" of a change)
            return

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            if before:
                marks.setdefault(before, time.time())
            try:
                return original(self, *args, **kwargs)
            finally:
                if after:
                    marks.setdefault(after, time.time())

        setattr(cls, name, timed)

    def wrap_driver() -> None:
        """The driver's phases; wrapped when the command imports it (Optuna and torch)."""
        from trainlab.search.running import driver

        wrap(driver.Driver, "run", before="run", after="run_end")
        wrap(driver.Driver, "_fill", before="first_fill")
        handle = driver.Driver._handle

        def timed_handle(self: Any, event: Any) -> Any:
            start = time.time()
            try:
                return handle(self, event)
            finally:
                handled.append((event.kind, time.time() - start))
                marks.setdefault("first_epoch" if event.kind == "epoch" else "first_done", start)
                if event.kind == "epoch":
                    marks.setdefault(f"first_epoch_trial_{event.number}", start)

        driver.Driver._handle = timed_handle

    # the command's part after its workers start (`_search`; the "before" tree: the command)
    name = "_search" if hasattr(command, "_search") else "cmd_search"
    body = getattr(command, name)

    def driver_wrapped(*args: Any) -> Any:
        wrap_driver()
        return body(*args)

    setattr(command, name, driver_wrapped)  # the parser is built in cli_main, after this
    wrap(executors.LocalExecutor, "start", after="workers_started")
    wrap(executors.LocalExecutor, "submit", after="first_submit")
    submit = executors.LocalExecutor.submit

    def submit_cpu(self: Any, *args: Any, **kwargs: Any) -> Any:
        marks.setdefault("driver_cpu", time.process_time())  # CPU seconds, not a time.time()
        return submit(self, *args, **kwargs)

    executors.LocalExecutor.submit = submit_cpu
    wrap(executors.LocalExecutor, "wait_ready", after="ready")
    cfg = trainlab_config(work, "tpe", trials, epochs)
    argv = ["search", str(cfg), "--json", "--storage", storage, "--study", "tpe"]
    os.chdir(work)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main([*argv, "--out", str(work / "study")])
    marks["end"] = time.time()
    if code != 0:
        raise SystemExit(f"trainlab search exited {code}")
    # the first epoch's seconds, from the trial that reported first
    first = min((k for k in marks if k.startswith("first_epoch_trial_")), key=lambda k: marks[k])
    metrics = work / "study" / "trials" / f"{int(first.rsplit('_', 1)[1]):04d}" / "metrics.jsonl"
    seconds = json.loads(metrics.read_text().splitlines()[0])["seconds"]
    print(json.dumps({"marks": marks, "handled": handled, "first_epoch_seconds": seconds}))


def run_trainlab(work: Path, storage: str, trials: int, epochs: int) -> dict[str, float]:
    url = f"sqlite:///{work}/tpe.db" if storage == "sqlite" else f"journal:///{work}/tpe.log"
    url = url.replace(":////", ":///")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(work), url]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = time.time()
    out = subprocess.run(
        [*cmd, str(trials), str(epochs)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"trainlab child exited {out.returncode}: {out.stderr[-2000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    driver_cpu = got["marks"].pop("driver_cpu", None)
    m = {k: v - launch for k, v in got["marks"].items()}
    epochs_ms = [s for kind, s in got["handled"] if kind == "epoch"]
    trials_ms = [s for kind, s in got["handled"] if kind != "epoch"]
    phases = {
        "cli_s": m["cli"],
        "workers_started_s": m.get("workers_started"),  # None: workers start with the trials
        "plan_s": m["run"] - m["cli"],
        "study_s": m["first_fill"] - m["run"],
        "first_submit_s": m["first_submit"],
        "workers_ready_s": m["ready"],
        "driver_cpu_s": driver_cpu,
        "startup_s": m["first_epoch"] - got["first_epoch_seconds"],
        "first_result_s": m["first_done"],
        "total_s": m["end"],
        "per_epoch_report_ms": 1000 * sum(epochs_ms) / max(1, len(epochs_ms)),
        "epoch_reports": len(epochs_ms),
        "per_finished_trial_ms": 1000 * sum(trials_ms) / max(1, len(trials_ms)),
    }
    return phases


# --------------------------------------------------------------------------- the Optuna script


def run_optuna(work: Path, trials: int, epochs: int) -> dict[str, float]:
    from search_peers import run_way

    start, wall, rows, _ = run_way("optuna", work, trials, epochs)
    traces = [json.loads(line) for p in work.glob("trace-optuna-*.jsonl") for line in open(p)]
    first_lines = {}
    for row in traces:  # a trial's first line is its first epoch
        first_lines.setdefault(row["trial"], row)
    return {
        "startup_s": min(r["time"] - r["train_s"] for r in first_lines.values()) - start,
        "first_result_s": min(r["time"] for r in rows) - start,
        "total_s": wall,
    }


# --------------------------------------------------------------------------- rounds


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        _, _, work, storage, trials, epochs = sys.argv
        child(Path(work), storage, int(trials), int(epochs))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="paired rounds (trainlab, the script)")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--storage", choices=["sqlite", "journal"], default="sqlite")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from search_peers import write_data

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="trainlab-startup-") as tmp:
        root = Path(tmp)
        write_data(root / "data.npz")
        for i in range(args.rounds):
            got: dict[str, Any] = {}
            order = ("trainlab", "optuna") if i % 2 == 0 else ("optuna", "trainlab")
            for way in order:
                work = root / f"{way}-{i}"
                work.mkdir()
                (work / "data.npz").write_bytes((root / "data.npz").read_bytes())
                if way == "trainlab":
                    got[way] = run_trainlab(work, args.storage, args.trials, args.epochs)
                else:
                    got[way] = run_optuna(work, args.trials, args.epochs)
            got["load"] = os.getloadavg()[0]
            rounds.append(got)
            if not args.json:
                print(f"round {i + 1}: {json.dumps(got)}", file=sys.stderr, flush=True)

    def median(way: str, key: str) -> float | None:
        values = [r[way][key] for r in rounds if r[way].get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    def ratio(key: str) -> float:
        return round(statistics.median(r["trainlab"][key] / r["optuna"][key] for r in rounds), 3)

    out = {
        "setup": {**vars(args), "cores": os.cpu_count()},
        "trainlab": {k: median("trainlab", k) for k in rounds[0]["trainlab"]},
        "optuna": {k: median("optuna", k) for k in rounds[0]["optuna"]},
        "ratio": {k: ratio(k) for k in ("startup_s", "first_result_s", "total_s")},
        "load": [round(r["load"], 2) for r in rounds],
    }
    if args.json:
        print(json.dumps(out))
    else:
        for way in ("trainlab", "optuna"):
            print(way)
            for key, value in out[way].items():
                print(f"{key:>24}  {value}")
        print("trainlab / Optuna script (median of paired rounds)")
        for key, value in out["ratio"].items():
            print(f"{key:>24}  {value}")
        print(f"load average (1 min) after each round: {out['load']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
