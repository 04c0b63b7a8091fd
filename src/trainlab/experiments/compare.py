"""Is A really better than B? Train every config with the same seeds and compare them pairwise.

`compare(["a.yaml", "b.yaml"], seeds=10)` trains each config with train.seed = 0..9 (same data
split, and per seed the same initialization and batch order where the configs allow), in
DIR/<config>/seed-<s>/, through the search's executors (`workers` processes); a run with a
finished result.json is read back, never trained again. It returns the object `trainlab compare
--json` prints: each config's mean and spread, each pair's mean difference b - a with its t
interval, the paired t-test (Holm-adjusted over the pairs), and a verdict in words.

`until_decided=True` adds seeds in batches until every pair is decided (significantly better,
or equivalent: the interval inside +/- `margin`) or `cap` seeds ran. Looking after every batch
would inflate the false-"better" rate, so the level is split over the planned looks
(Bonferroni: each look tests at (1 - confidence) / looks).

A config may be given as `path@metric` to read another result key of the same runs (the
`ema_test_accuracy` of the EMA runs against their own `test_accuracy`, say).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainlab.config import load_config
from trainlab.errors import UserError
from trainlab.experiments.executors import Event, InlineExecutor, Job, LocalExecutor
from trainlab.report.compare_plot import plot_compare
from trainlab.report.progress import View, open_view, shows
from trainlab.report.stats import compare_pairs, higher_is_better, mean_std
from trainlab.rundir import (
    COMPARE_MARK,
    COMPARE_PICTURE,
    TRIAL_KEEPS,
    RunDir,
    atomic_write_text,
    check_out_dir,
    config_dirs,
    finished_result,
    seed_dir,
)

METRIC = re.compile(r"^[a-z][a-z0-9_]*_(accuracy|loss)$")
DEFAULT_OUT = Path("runs") / "compare"
Progress = Callable[[str, int, int], None]  # (message, runs done, runs planned)


def view_progress(view: View) -> Progress:
    """A `Progress` function that moves a progress view (trainlab.report.progress)."""

    def progress(message: str, done: int, total: int) -> None:
        view.update(done, message, total=total)

    return progress


@dataclass
class Entry:
    """One config of the comparison: its label, where its runs live and the result key read."""

    name: str  # label in tables and JSON: the file stem (with @metric if given)
    path: str
    metric: str
    key: str  # run folder under DIR (entries with the same resolved config share runs)
    config: dict[str, Any]  # resolved, train.seed set per run
    values: dict[int, float] = field(default_factory=dict)  # seed -> metric


def parse_entries(
    configs: Sequence[str | Path], overrides: Sequence[str], metric: str
) -> list[Entry]:
    """Read and validate the configs; give each a unique name and a run folder."""
    if len(configs) < 2:
        raise UserError("CONFIG: give at least two configs to compare (A.yaml B.yaml ...)")
    entries: list[Entry] = []
    keys: dict[str, str] = {}  # run folder -> its resolved config (yaml)
    for spec in configs:
        path, _, own_metric = str(spec).partition("@")
        m = own_metric or metric
        if not METRIC.match(m):
            raise UserError(
                f"--metric: {m!r} is not a result key; use test_accuracy, val_accuracy, "
                "ema_test_accuracy, snapshot_test_accuracy, tta_test_accuracy, ... (or *_loss)"
            )
        cfg = load_config(path, list(overrides)).model_dump(mode="json")
        cfg["train"]["seed"] = 0  # set per run; not part of what the config is
        text = yaml.safe_dump(cfg, sort_keys=True)
        stem = Path(path).stem  # a run's or trial's config.yaml is named after its folder
        stem = Path(path).resolve().parent.name if stem == "config" else stem
        key = stem
        n = 2
        while key in keys and keys[key] != text:
            key, n = f"{stem}-{n}", n + 1
        keys[key] = text
        name = f"{stem}@{own_metric}" if own_metric else key
        if any(e.name == name for e in entries):
            raise UserError(f"CONFIG: {spec} is given twice")
        entries.append(Entry(name, path, m, key, cfg))
    if len({higher_is_better(e.metric) for e in entries}) > 1:
        raise UserError("--metric: compare accuracies with accuracies and losses with losses")
    return entries


def _check_folder(out: Path, entries: list[Entry]) -> None:
    """DIR/<key>/config.yaml records the config of the runs there; a changed config is refused
    (its old runs would be mixed with new ones). The marker is written atomically; an empty or
    unreadable one (a kill during an older, in-place write) counts as absent."""
    for e in entries:
        folder = RunDir(out / e.key)
        text = yaml.safe_dump(e.config, sort_keys=True)
        saved = _saved_config(folder)
        if saved is None:
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.write_config(text)
        elif saved != yaml.safe_load(text):
            raise UserError(
                f"--out: {folder.path} holds runs of a different config than {e.path}; "
                "use another --out"
            )


def _saved_config(folder: RunDir) -> Any:
    """The config a compare folder's marker records; None when it has none that can be read."""
    text = folder.read_config_text()
    try:
        return None if text is None else yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _has(result: dict[str, Any], key: str) -> bool:
    value = result.get(key)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _metrics_of(e: Entry, results: dict[int, dict[str, Any]], folder: Path) -> dict[int, float]:
    """Each seed's `e.metric`; runs without it are one line: the divergence named when that is
    why (a diverged run has no accuracy), else the metrics the runs do have."""
    missing = [s for s, result in results.items() if not _has(result, e.metric)]
    if not missing:
        return {s: float(result[e.metric]) for s, result in results.items()}
    if all(results[s].get("stopped_reason") == "diverged" for s in missing):
        which = (
            "every run"
            if len(missing) == len(results)
            else f"{len(missing)} of {len(results)} runs (seed {', '.join(map(str, missing))})"
        )
        raise UserError(
            f"{e.path}: {which} diverged (stopped_reason: diverged); no {e.metric} to compare "
            f"({folder / e.key}); lower optim.lr or run trainlab lr-find"
        )
    result = results[missing[0]]
    keys = sorted(k for k in result if METRIC.match(k) and _has(result, k))
    raise UserError(
        f"--metric: the runs of {e.path} have no {e.metric} "
        f"({seed_dir(folder / e.key, missing[0])}); they have "
        + (", ".join(keys) or f"no metric (stopped_reason: {result.get('stopped_reason')})")
    )


def run_seeds(
    entries: list[Entry],
    seeds: Sequence[int],
    out: Path,
    executor: Callable[[], Any],
    progress: Progress | None = None,
) -> None:
    """Train the missing (config, seed) runs on `executor()` (called only if a run is missing);
    read every run's metric."""
    todo: dict[tuple[str, int], Path] = {}
    results: dict[tuple[str, int], dict[str, Any]] = {}
    config_of = {e.key: e.config for e in entries}
    path_of = {e.key: e.path for e in entries}
    for key in config_of:
        for s in seeds:
            run = seed_dir(out / key, s)
            result = finished_result(run)
            if result is None:
                todo[(key, s)] = run
            else:
                results[(key, s)] = result
    jobs = list(todo)
    total, done = len(config_of) * len(seeds), len(results)
    if progress:
        progress(f"{done} of {total} runs already done", done, total)
    failed: list[str] = []

    def handle(event: Event) -> bool | None:
        nonlocal done
        if event.kind == "epoch":
            return False
        key, s = jobs[event.number]
        if event.kind == "done":
            results[(key, s)] = event.result or {}
        else:
            failed.append(f"{seed_dir(key, s)}: {event.message}")
        done += 1
        if progress:
            progress(f"{key} seed {s}", done, total)
        return None

    pending = list(range(len(jobs)))
    for i in pending:
        shutil.rmtree(todo[jobs[i]], ignore_errors=True)  # an unfinished run starts over
    ex = executor() if pending else None
    while len(results) + len(failed) < total:
        while pending and ex.free() > 0:
            i = pending.pop(0)
            key, s = jobs[i]
            cfg = {**config_of[key], "train": {**config_of[key]["train"], "seed": s}}
            dirs = config_dirs(path_of[key])  # where its plugins are found
            job = Job(i, cfg, str(todo[(key, s)]), keep=TRIAL_KEEPS, report=False, search_dirs=dirs)
            ex.submit(job)
        ex.step(handle, timeout=0.5)
        if failed:
            break
    if failed:
        first = failed[0]
        if "Traceback" in first:
            raise RuntimeError(f"a comparison run failed: {first}")
        raise UserError(first)
    for e in entries:
        e.values = _metrics_of(e, {s: results[(e.key, s)] for s in seeds}, out)


def analyze(
    entries: list[Entry],
    seeds: Sequence[int],
    *,
    confidence: float = 0.95,
    baseline: bool = False,
    margin: float = 0.0,
) -> dict[str, Any]:
    """The comparison object (the --json contract) from the entries' per-seed values."""
    configs = []
    for e in entries:
        values = [e.values[s] for s in seeds]
        mean, sd = mean_std(values)
        configs.append(
            {
                "name": e.name,
                "mean": mean,
                "std": sd,
                "n": len(values),
                "values": values,
                "config": e.path,
                "metric": e.metric,
                "runs": e.key,
            }
        )
    if baseline:
        index_pairs = [(0, j) for j in range(1, len(entries))]
    else:
        index_pairs = [(i, j) for i in range(len(entries)) for j in range(i + 1, len(entries))]
    m = len(index_pairs)
    pairs = compare_pairs(
        [
            (
                entries[i].name,
                entries[j].name,
                [entries[i].values[s] for s in seeds],
                [entries[j].values[s] for s in seeds],
            )
            for i, j in index_pairs
        ],
        [entries[i].metric for i, _ in index_pairs],
        confidence=confidence,
        margin=margin,
    )
    return {
        "configs": configs,
        "pairs": pairs,
        "seeds": list(seeds),
        "confidence": confidence,
        "correction": "holm" if m > 1 else "none",
        "margin": margin,
    }


def compare(
    configs: Sequence[str | Path],
    *,
    overrides: Sequence[str] = (),
    seeds: int = 5,
    until_decided: bool = False,
    cap: int = 30,
    metric: str = "test_accuracy",
    confidence: float = 0.95,
    margin: float = 0.005,
    baseline: bool = False,
    workers: int = 1,
    out: str | Path | None = None,
    progress: Progress | None = None,
    executor: Any = None,
    verbose: bool | None = None,
) -> dict[str, Any]:
    """Train `configs` (paths, `path@metric` for another result key) with paired seeds and
    compare them; the returned dict is what `trainlab compare --json` prints.

    `baseline=True` compares the first config with each other one instead of every pair.
    `margin` (a fraction: 0.005 = 0.5 points of accuracy) is the difference below which two
    configs count as equivalent, which lets `until_decided` stop on a "no difference".
    Without a `progress` function, progress over the runs shows unless `verbose=False` (None:
    when stderr is a terminal or in a notebook).
    """
    if seeds < 2:
        raise UserError(f"--seeds: at least 2 (a paired test needs two seeds), got {seeds}")
    if workers < 1:
        raise UserError(f"--workers: at least 1, got {workers}")
    if not 0.5 <= confidence < 1.0:
        raise UserError(f"--confidence: between 0.5 and 1 (e.g. 0.95), got {confidence}")
    if not (math.isfinite(margin) and margin >= 0):
        raise UserError(f"--margin: a finite number, 0 or more, got {margin}")
    if until_decided and cap < seeds:
        raise UserError(f"--cap: at least --seeds ({seeds}), got {cap}")
    entries = parse_entries(configs, overrides, metric)
    folder = (
        Path(out)
        if out is not None
        else DEFAULT_OUT / "-vs-".join(dict.fromkeys(e.key for e in entries))
    )
    check_out_dir(folder)
    _check_folder(folder, entries)
    looks = math.ceil((cap - seeds) / seeds) + 1 if until_decided else 1
    level = 1.0 - (1.0 - confidence) / looks
    made: list[Any] = []

    def get_executor() -> Any:
        if not made:
            made.append(executor or (InlineExecutor() if workers == 1 else LocalExecutor(workers)))
        return made[0]

    view = open_view(None, "compare", verbose, kind="runs") if progress is None else View()
    if progress is None and shows(verbose):
        progress = view_progress(view)
    n, ok = seeds, False
    try:
        while True:
            run_seeds(entries, range(n), folder, get_executor, progress)
            report = analyze(entries, range(n), confidence=level, baseline=baseline, margin=margin)
            decided = all(p["better"] is not None or p["equivalent"] for p in report["pairs"])
            if not until_decided or decided or n >= cap:
                break
            n = min(cap, n + seeds)
        ok = True
    finally:
        view.stop()
        if made:
            made[0].close(kill=not ok)  # a failed or interrupted comparison stops its workers
    report.update(
        metric=metric,
        out=str(folder),
        decided=decided,
        looks=looks,
        nominal_confidence=confidence,
    )
    report["picture"] = str(plot_compare(report, folder / COMPARE_PICTURE))
    atomic_write_text(folder / COMPARE_MARK, json.dumps(report, indent=1) + "\n")
    return report
