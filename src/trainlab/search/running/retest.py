"""Re-test the best configurations with new seeds (`--retest K`): the course's "re-test
hyperparameters occasionally", and a guard against a configuration that won on a lucky seed.

Each of the best K complete trials is trained again R times (``search.retest_seeds``), with
training seeds derived from the study's ``search.seed``, distinct from the re-tested trials'
own ``train.seed`` and from each other, the same seeds for every configuration; the data split
(``data.seed``) stays, so only the initialization, the batch order and the dropout masks change.
The runs go through the search's executor, so N workers re-test N runs at once. Each run lives in
``<study dir>/retest/<NNNN>-seed<S>/`` (trial number, seed); a run with a finished result.json
is read back rather than trained again, so resuming an interrupted re-test runs only the
missing ones.

Per configuration the report holds the original validation (and test) accuracy, the re-test
mean, sample standard deviation (n - 1; None for one run), min and max of validation and test
accuracy, and the configuration's rank among the K by re-test mean beside its original rank.
Every configuration is re-tested with the same seeds, so each one after the search's best also
carries `val_vs_best` and `test_vs_best`: the best against it, paired by seed, with the same
statistics and verdict as `trainlab compare` (trainlab.report.stats.compare_pairs).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.config import read_yaml, validate
from trainlab.experiments.executors import Event, Job
from trainlab.report.stats import compare_pairs, mean_std
from trainlab.rundir import CONFIG
from trainlab.search import study as studies


def retest_seeds(study_seed: int, original: int | Iterable[int], count: int) -> list[int]:
    """`count` training seeds from the study seed, none equal to `original` (a seed, or the
    seeds of all the re-tested configurations) or to each other.

    The candidates depend on the study seed only; passing every re-tested configuration's own
    seed gives all of them the same list (a paired comparison), and the same list as one
    configuration alone would get unless a candidate is one of the others' seeds.
    """
    avoid = {original} if isinstance(original, int) else set(original)
    rng = random.Random(f"trainlab-retest:{study_seed}")  # its own generator, never the global
    seeds: list[int] = []
    while len(seeds) < count:
        seed = rng.getrandbits(31)
        if seed not in avoid and seed not in seeds:
            seeds.append(seed)
    return seeds


def run_dir(study_dir: Path, trial: int, seed: int) -> Path:
    """Where the re-test of trial `trial` with training seed `seed` runs."""
    return Path(study_dir) / "retest" / f"{trial:04d}-seed{seed}"


CONFIDENCE = 0.95  # of the re-test's paired comparisons, as `trainlab compare`'s default
MARGIN = 0.005  # differences inside +/- half a point count as none (compare's default too)


@dataclass
class _Run:
    trial: int
    seed: int
    out: Path
    config: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "min": min(values), "max": max(values)}


def plan_runs(
    study_dir: Path, top: list[dict[str, Any]], study_seed: int, count: int
) -> list[_Run]:
    """The R runs of each configuration in `top` (leaderboard rows), finished ones read back.
    Every configuration gets the same R seeds, so the re-test compares them seed by seed."""
    configs: dict[int, dict[str, Any]] = {}
    broken: dict[int, str] = {}
    for row in top:
        source = studies.trial_dir(study_dir, row["trial"]) / CONFIG
        try:
            configs[row["trial"]] = validate(read_yaml(source)).model_dump(mode="json")
        except Exception as exc:  # the trial's directory is gone or damaged: say so, go on
            broken[row["trial"]] = f"cannot read {source} ({exc})"
    seeds = retest_seeds(study_seed, [c["train"]["seed"] for c in configs.values()], count)
    runs = []
    for row in top:
        if row["trial"] in broken:
            runs.append(
                _Run(row["trial"], -1, Path(study_dir) / "retest", error=broken[row["trial"]])
            )
            continue
        config = configs[row["trial"]]
        for seed in seeds:
            run = _Run(row["trial"], seed, run_dir(study_dir, row["trial"], seed))
            run.result = studies.finished_result(run.out)
            if run.result is None:
                run.config = {**config, "train": {**config["train"], "seed": seed}}
            runs.append(run)
    return runs


def execute(
    runs: list[_Run],
    executor: Any,
    display: Any,
    keep: tuple[str, ...] | None,
    search_dirs: tuple[str, ...] = (),
) -> None:
    """Train the unfinished `runs` on `executor` (as many at once as it has free slots)."""
    pending = [i for i, r in enumerate(runs) if not r.finished]
    for i in pending:
        shutil.rmtree(runs[i].out, ignore_errors=True)  # a half-written run starts over
    display.retest_begin(len(runs), sum(r.finished for r in runs))

    def handle(event: Event) -> bool | None:
        run = runs[event.number]  # retest jobs are numbered by their index in `runs`
        if event.kind == "epoch":
            display.retest_epoch(run.trial, run.seed, event.epoch, event.value)
            return False  # nothing is pruned in a re-test
        if event.kind == "done":
            run.result = event.result or {}
        else:
            run.error = event.message or "failed"
            run.out.mkdir(parents=True, exist_ok=True)
            (run.out / "error.txt").write_text(run.error + "\n")
        display.retest_finished(run.trial, run.seed, (run.result or {}).get("val_accuracy"))
        return None

    while not all(r.finished for r in runs):  # each job ends in exactly one done or error event
        while pending and executor.free() > 0:
            i = pending.pop(0)
            run = runs[i]
            assert run.config is not None
            display.retest_started(run.trial, run.seed, run.config["train"]["epochs"])
            executor.submit(Job(i, run.config, str(run.out), keep=keep, search_dirs=search_dirs))
        executor.step(handle, timeout=0.5)


def summarize(top: list[dict[str, Any]], runs: list[_Run]) -> list[dict[str, Any]]:
    """One entry per configuration of `top`: original values, re-test statistics, ranks."""
    out = []
    for rank, row in enumerate(top, 1):
        mine = [r for r in runs if r.trial == row["trial"] and r.seed >= 0]
        results = [r.result or {} for r in mine]
        val = [res["val_accuracy"] for res in results if res.get("val_accuracy") is not None]
        test = [res["test_accuracy"] for res in results if res.get("test_accuracy") is not None]
        v, t = _stats(val), _stats(test)
        out.append(
            {
                "trial": row["trial"],
                "params": row["params"],
                "rank": rank,
                "original_val_accuracy": row["value"],
                "original_test_accuracy": row.get("test_accuracy"),
                "seeds": [r.seed for r in mine],
                "values": [res.get("val_accuracy") for res in results],
                "test_values": [res.get("test_accuracy") for res in results],
                **{f"val_{k}": x for k, x in v.items()},
                **{f"test_{k}": x for k, x in t.items()},
                "run_dirs": [str(r.out) for r in mine],
                "failed": sum(1 for r in runs if r.trial == row["trial"] and r.error is not None),
            }
        )
    # rank by re-test mean (configurations with no finished run last; ties keep the old order)
    order = sorted(out, key=lambda e: (e["val_mean"] is None, -(e["val_mean"] or 0.0), e["rank"]))
    for new_rank, entry in enumerate(order, 1):
        entry["retest_rank"] = new_rank
        entry["rank_changed"] = new_rank != entry["rank"]
    for kind in ("val", "test"):
        out[0][f"{kind}_vs_best"] = None  # the best is what the others are compared with
        for entry, pair in zip(out[1:], against_best(out, kind), strict=True):
            entry[f"{kind}_vs_best"] = pair
    return out


def against_best(entries: list[dict[str, Any]], kind: str) -> list[dict[str, Any] | None]:
    """The search's best configuration (`entries[0]`) against each other one on the re-test's
    `kind` accuracy (val or test), paired by seed over the seeds where both runs finished:
    trainlab.report.stats.compare_pairs (the paired t interval of b - a, Holm-adjusted over the
    K - 1 pairs, verdict in words), as `trainlab compare` reports. None where no seed pairs."""
    key = "values" if kind == "val" else "test_values"

    def by_seed(entry: dict[str, Any]) -> dict[int, float]:
        return {s: v for s, v in zip(entry["seeds"], entry[key], strict=True) if v is not None}

    best = by_seed(entries[0])
    pairs, shared_seeds, where = [], [], []
    for i, entry in enumerate(entries[1:]):
        mine = by_seed(entry)
        shared = [s for s in best if s in mine]
        if shared:
            a, b = f"trial {entries[0]['trial']}", f"trial {entry['trial']}"
            pairs.append((a, b, [best[s] for s in shared], [mine[s] for s in shared]))
            shared_seeds.append(shared)
            where.append(i)
    found = compare_pairs(pairs, f"{kind}_accuracy", confidence=CONFIDENCE, margin=MARGIN)
    out: list[dict[str, Any] | None] = [None] * (len(entries) - 1)
    for i, pair, shared in zip(where, found, shared_seeds, strict=True):
        out[i] = {**pair, "seeds": shared, "confidence": CONFIDENCE, "margin": MARGIN}
    return out


def retest(
    study_dir: Path,
    top: list[dict[str, Any]],
    *,
    study_seed: int,
    seeds: int,
    executor: Any,
    display: Any,
    keep: tuple[str, ...] | None,
    search_dirs: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Re-test the configurations of `top` (leaderboard rows, best first) `seeds` times each
    (`search_dirs`: where the workers look up plugins)."""
    runs = plan_runs(study_dir, top, study_seed, seeds)
    execute(runs, executor, display, keep, search_dirs)
    return summarize(top, runs)
