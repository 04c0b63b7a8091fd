"""Where `trainlab search` spends the time that is not training: its start-up phases and the
driver's time per epoch report and per finished trial (the worker waits for the first: pruning
is decided before the next epoch starts).

Runs bench/search_peers.py's trainlab-tpe search (MNIST-1D CNN, TPE + median pruner, 2 local
workers) in this process through the CLI's `main`, timing the driver's phases by wrapping them:

    python bench/search_startup.py [--trials 36] [--epochs 30] [--storage sqlite|journal] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
from trainlab.cli import main as cli_main  # noqa: E402

T1 = time.perf_counter()

from trainlab.experiments import executors  # noqa: E402
from trainlab.search.running import driver  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_peers import PLUGINS, trainlab_config  # noqa: E402


def wrap(cls: type, name: str, before: str | None = None, after: str | None = None) -> None:
    """Record the first time `cls.name` is entered (`before`) and left (`after`) in MARKS."""
    original = getattr(cls, name)

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if before:
            MARKS.setdefault(before, time.perf_counter())
        try:
            return original(self, *args, **kwargs)
        finally:
            if after:
                MARKS.setdefault(after, time.perf_counter())

    setattr(cls, name, timed)


MARKS: dict[str, float] = {}
HANDLED: list[tuple[str, float]] = []


def timed_handle(original: Any) -> Any:
    def handle(self: Any, event: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, event)
        finally:
            HANDLED.append((event.kind, time.perf_counter() - start))

    return handle


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=36)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--storage", choices=["sqlite", "journal"], default="sqlite")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    wrap(driver.Driver, "run", before="run", after="run_end")
    wrap(driver.Driver, "_fill", before="first_fill")
    wrap(executors.LocalExecutor, "wait_ready", before="spawned", after="ready")
    driver.Driver._handle = timed_handle(driver.Driver._handle)
    with tempfile.TemporaryDirectory(prefix="trainlab-startup-") as tmp:
        work = Path(tmp)
        shutil.copy(PLUGINS / "mnist1d_models.py", work / "mnist1d_models.py")
        cfg = trainlab_config(work, "tpe", args.trials, args.epochs)
        storage = (
            f"sqlite:///{work}/tpe.db" if args.storage == "sqlite" else f"journal://{work}/tpe.log"
        )
        argv = ["search", str(cfg), "--json", "--storage", storage, "--study", "tpe"]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli_main([*argv, "--out", str(work / "study")])
    end = time.perf_counter()
    epochs = [s for kind, s in HANDLED if kind == "epoch"]
    trials = [s for kind, s in HANDLED if kind != "epoch"]
    out = {
        "import_cli_s": T1 - T0,
        "plan_s": MARKS["run"] - T1,
        "storage_data_study_s": MARKS["first_fill"] - MARKS["run"],
        "spawn_s": MARKS["spawned"] - MARKS["first_fill"],
        "workers_ready_s": MARKS["ready"] - MARKS["spawned"],
        "report_s": end - MARKS["run_end"],
        "per_epoch_report_ms": 1000 * sum(epochs) / max(1, len(epochs)),
        "epoch_reports": len(epochs),
        "per_finished_trial_ms": 1000 * sum(trials) / max(1, len(trials)),
        "total_s": end - T0,
    }
    out = {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>24}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
