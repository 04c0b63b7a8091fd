"""Per-trial bookkeeping cost of a shared study, by storage: trainlab's path against plain Optuna.

trainlab's path per trial is what a search driver does besides training: the budget lock, the
count of the study's trials, ask, suggest, one report per epoch, the heartbeat at launch (then one
per 30 s, which a short trial never reaches), the trial's files uploaded to the artifact store
(heartbeat and upload on shared storages only) and tell. The
reference is plain Optuna ask / suggest / report / tell on the same storage. Both run in this
process, one after the other, on fresh studies; the table gives milliseconds per trial and the
ratio. PostgreSQL needs a server: pass --postgres URL (e.g. the one tests/test_search_storage.py
starts; see docs/scaling.md) or it is left out.

    .venv/bin/python bench/storage_overhead.py [--trials 50] [--epochs 10] [--postgres URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import optuna

from trainlab.search import study as studies
from trainlab.search.running import cooperate
from trainlab.search.study import artifacts as stored

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _files(folder: Path) -> Path:
    """A trial's run directory as a search keeps it (sizes of a small MLP's run)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "best.pt").write_bytes(b"\0" * 4096)
    for name, size in (("result.json", 400), ("config.yaml", 1100), ("metrics.jsonl", 600)):
        (folder / name).write_text("x" * size)
    return folder


def plain(url: str, trials: int, epochs: int) -> float:
    """Plain Optuna: ask, suggest, report each epoch, tell. Seconds per trial."""
    storage = studies.open_storage(url)
    study = optuna.create_study(storage=storage, study_name=f"plain-{uuid.uuid4().hex[:8]}")
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        x = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        for epoch in range(1, epochs + 1):
            trial.report(x * epoch, step=epoch)
        study.tell(trial, x)
    return (time.perf_counter() - start) / trials


def ours(url: str, trials: int, epochs: int, work: Path) -> float:
    """trainlab's driver bookkeeping (see the module docstring). Seconds per trial."""
    storage = studies.open_storage(url, heartbeat=30)
    name = f"ours-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(storage=storage, study_name=name)
    shared = studies.is_shared(url)
    beat = cooperate.Heartbeat(storage, 30) if shared else None
    store = stored.store_for(work / name) if shared else None
    run_dir = _files(work / "run")
    start = time.perf_counter()
    for _ in range(trials):
        with cooperate.budget_lock(storage, url, name):
            assert cooperate.counted(study) < trials
            trial = study.ask()
            if beat is not None:
                beat.add(trial._trial_id)
        x = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        for epoch in range(1, epochs + 1):
            trial.report(x * epoch, step=epoch)
        if store is not None:
            stored.upload(store, trial, run_dir)
        study.tell(trial, x)
        if beat is not None:
            beat.discard(trial._trial_id)
    return (time.perf_counter() - start) / trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--postgres", help="a PostgreSQL URL (postgresql://USER@HOST:PORT/DB)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        urls = {
            "sqlite": f"sqlite:///{work}/bench.db",
            "journal": f"journal:///{work}/bench.log",
        }
        if args.postgres:
            urls["postgresql"] = args.postgres
        for kind, url in urls.items():
            ref = plain(url, args.trials, args.epochs)
            mine = ours(url, args.trials, args.epochs, work)
            rows.append(
                {
                    "storage": kind,
                    "optuna_ms": round(ref * 1000, 2),
                    "trainlab_ms": round(mine * 1000, 2),
                    "ratio": round(mine / ref, 2),
                }
            )
    if args.json:
        print(json.dumps({"trials": args.trials, "epochs": args.epochs, "rows": rows}))
        return
    print(f"per-trial bookkeeping, {args.trials} trials of {args.epochs} epochs (ms per trial)")
    print(f"{'storage':<11} {'optuna':>9} {'trainlab':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['storage']:<11} {r['optuna_ms']:>9} {r['trainlab_ms']:>9} {r['ratio']:>6}")


if __name__ == "__main__":
    main()
