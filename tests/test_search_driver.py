"""The search driver, its executors and `trainlab search`: layout, pruning, divergence, crashes,
parallel workers, resume after a killed driver, the lock, bad input."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from trainlab.cli import main
from trainlab.config import load_config
from trainlab.errors import UserError
from trainlab.experiments import executors
from trainlab.experiments.executors import Event, Job, LocalExecutor, run_job
from trainlab.report.stats import compare_pairs, holm, paired
from trainlab.search.running import driver
from trainlab.search.running.driver import search
from trainlab.search.running.retest import retest_seeds
from trainlab.search.study import StudyLock, boxes, open_storage

BASE = """
data: {name: spirals}
model: {kind: mlp, width: 16, depth: 1}
optim: {name: adam, lr: 1e-2}
train: {epochs: 2, batch_size: 64}
"""


def write(tmp_path, search: dict, base: str = BASE, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(base + yaml.safe_dump({"search": search}))
    return path


SPACE = {
    "optim.lr": "loguniform(1e-3, 1e-1)",
    "optim.name": "choice([sgd, adam])",
    "optim.betas.0": "beta(0.8, 0.99)",
}


def load_study(tmp_path, name):
    storage = f"sqlite:///{tmp_path}/runs/trainlab.db"
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/trainlab.db and runs/search/ land in tmp_path


def test_search_options_set_config_fields_through_the_search_section():
    """A keyword (or flag) that is a SearchConfig field is validated with the config's section:
    a bad one is the same one line as in YAML; executor="inline" is an option of its own."""
    given = driver.SearchOptions.given(trials=3, workers=None, executor="inline", out="x")
    assert given.settings == {"trials": 3} and given.inline and given.out == "x"
    config = {"search": {"trials": 2, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}}}
    for key, value in [("strategy", "bayes"), ("trials", 0), ("executor", "slurm")]:
        with pytest.raises(UserError) as flag:
            driver.plan(config, driver.SearchOptions.given(**{key: value}))
        with pytest.raises(UserError) as yaml_section:
            driver.plan({"search": {**config["search"], key: value}}, driver.SearchOptions())
        assert str(flag.value) == str(yaml_section.value)
        assert str(flag.value).startswith(f"search.{key}: ") and "\n" not in str(flag.value)
    with pytest.raises(TypeError):
        driver.SearchOptions.given(trails=3)  # a misspelt keyword is not silently ignored


def test_serial_search_writes_the_study_layout(tmp_path, capsys):
    cfg = write(tmp_path, {"strategy": "random", "trials": 3, "seed": 0, "space": SPACE})
    assert main(["search", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["study"] == "exp" and out["storage"] == "sqlite:///runs/trainlab.db"
    assert out["trials"] == {"complete": 3, "pruned": 0, "diverged": 0, "failed": 0}
    d = tmp_path / "runs" / "search" / "exp"
    for n in range(3):
        files = {p.name for p in (d / "trials" / f"{n:04d}").iterdir()}
        assert files == {"best.pt", "result.json", "config.yaml", "metrics.jsonl"}
    for name in ("params.png", "curves.png", "leaderboard.csv", "best.yaml"):
        assert (d / name).is_file()
    best = out["best"]
    assert best["value"] == max(r["value"] for r in out["leaderboard"])
    assert best["config_path"] == "runs/search/exp/best.yaml"
    # best.yaml is the best trial's config, trainable as is, with the sampled values in it
    cfg_best = load_config(d / "best.yaml")
    assert cfg_best.optim.lr == pytest.approx(best["params"]["optim.lr"])
    assert cfg_best.search is None
    result = json.loads((Path(best["run_dir"]) / "result.json").read_text())
    assert result["val_accuracy"] == pytest.approx(best["value"])
    # a beta is reported as beta (not 1 - beta); it is unused where the sampled optimizer is sgd
    study = load_study(tmp_path, "exp")
    for t, row in zip(study.trials, sorted(out["leaderboard"], key=lambda r: r["trial"])):
        if row["params"]["optim.name"] == "sgd":
            assert t.user_attrs["unused"] == ["optim.betas.0"]
            assert "optim.betas.0" not in row["params"]
        else:
            beta = row["params"]["optim.betas.0"]
            assert 0.8 <= beta <= 0.99 and beta == pytest.approx(1 - t.params["1-optim.betas.0"])


def test_serial_search_with_a_seed_is_reproducible(tmp_path):
    cfg = write(tmp_path, {"strategy": "random", "trials": 3, "seed": 5, "space": SPACE})
    runs = [search(cfg, study=f"s{i}", executor="inline") for i in range(2)]
    rows = [[(r["params"], r["value"]) for r in res.leaderboard] for res in runs]
    assert rows[0] == rows[1]
    assert len({json.dumps(p, sort_keys=True) for p, _ in rows[0]}) == 3


def test_coarse_to_fine_zooms_in_and_trains_longer(tmp_path):
    spec = {
        "strategy": "coarse-to-fine",
        "trials": 6,
        "rounds": 2,
        "trials_per_round": 3,
        "keep_top": 1,
        "epochs_per_round": [1, 2],
        "seed": 1,
        "space": {"optim.lr": "loguniform(1e-4, 1)", "model.width": "logint(4, 64)"},
    }
    res = search(write(tmp_path, spec), executor="inline")
    study = load_study(tmp_path, "exp")
    r0, r1 = boxes(study)
    assert r0["optim.lr"] == (1e-4, 1.0)
    width = [math.log10(b["optim.lr"][1] / b["optim.lr"][0]) for b in (r0, r1)]
    assert width[1] < 0.6 * width[0]
    best0 = max((t for t in study.trials if t.user_attrs["round"] == 0), key=lambda t: t.value)
    assert r1["optim.lr"][0] <= best0.params["optim.lr"] <= r1["optim.lr"][1]
    for t in study.trials:
        assert t.user_attrs["epochs"] == [1, 2][t.user_attrs["round"]]
        low, high = boxes(study)[t.user_attrs["round"]]["optim.lr"]
        assert low <= t.params["optim.lr"] <= high
    assert sum(res.trials.values()) == 6  # complete, or diverged where the GP tried lr ~ 1


class TwoAtOnce:
    """Two slots, run in-process, the later-submitted trial first (as a faster worker would)."""

    slots = 2

    def __init__(self):
        self.jobs = []

    def free(self):
        return self.slots - len(self.jobs)

    def submit(self, job):
        self.jobs.append(job)

    def step(self, handle, timeout=0.5):
        job = self.jobs.pop()
        handle(run_job(job, lambda e, v: bool(handle(Event("epoch", job.number, e, v)))))

    def close(self, kill=False):
        self.jobs.clear()


def test_parallel_coarse_to_fine_starts_a_round_when_the_last_one_is_done(tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "make_executor", lambda *a, **k: TwoAtOnce())
    spec = {
        "strategy": "coarse-to-fine",
        "trials": 6,
        "rounds": 2,
        "trials_per_round": 3,
        "keep_top": 2,
        "seed": 2,
        "space": {"optim.lr": "loguniform(1e-4, 1)"},
    }
    search(write(tmp_path, spec, BASE.replace("epochs: 2", "epochs: 1")))
    study = load_study(tmp_path, "exp")
    round0 = [t for t in study.trials if t.user_attrs["round"] == 0]
    round1 = [t for t in study.trials if t.user_attrs["round"] == 1]
    assert len(round0) == len(round1) == 3
    assert min(t.datetime_start for t in round1) >= max(t.datetime_complete for t in round0)
    # round 1's box bounds the best two of all of round 0
    top = sorted(round0, key=lambda t: -t.value)[:2]
    low, high = boxes(study)[1]["optim.lr"]
    assert all(low <= t.params["optim.lr"] <= high for t in top)


def test_median_pruner_stops_trials_in_a_bad_region(tmp_path):
    # grid over two learning rates: good, bad, good, bad, ...; 1e-7 never leaves chance level
    spec = {
        "strategy": "grid",
        "trials": 6,
        "pruner": "median",
        "pruner_startup_trials": 2,
        "pruner_warmup_epochs": 0,
        "lag": 0,  # each trial is judged against every earlier one (tests/test_lag.py: lag > 0)
        "space": {"optim.lr": "choice([0.03, 1e-7])"},
    }
    res = search(write(tmp_path, spec, BASE.replace("epochs: 2", "epochs: 4")), executor="inline")
    study = load_study(tmp_path, "exp")
    states = {t.number: (t.params["optim.lr"], t.state.name) for t in study.trials}
    assert [s for lr, s in states.values() if lr == 0.03] == ["COMPLETE"] * 3
    bad = [(n, s) for n, (lr, s) in states.items() if lr == 1e-7]
    assert bad[0][1] == "COMPLETE"  # still a startup trial
    assert [s for _, s in bad[1:]] == ["PRUNED", "PRUNED"]
    pruned = study.trials[bad[1][0]]
    assert len(pruned.intermediate_values) == 1  # stopped after its first epoch
    result = json.loads((tmp_path / "runs/search/exp/trials/0003/result.json").read_text())
    assert result["stopped_reason"] == "pruned" and result["epochs"] == 1
    assert res.trials == {"complete": 4, "pruned": 2, "diverged": 0, "failed": 0}


def test_a_diverged_trial_is_pruned_with_outcome_diverged(tmp_path):
    spec = {"strategy": "grid", "trials": 2, "space": {"optim.lr": "choice([10.0, 0.05])"}}
    base = BASE.replace("name: adam, lr: 1e-2", "name: sgd, lr: 1e-2")
    res = search(write(tmp_path, spec, base), executor="inline")
    study = load_study(tmp_path, "exp")
    t = study.trials[0]
    assert t.state.name == "PRUNED" and t.user_attrs["outcome"] == "diverged"
    assert study.trials[1].state.name == "COMPLETE"
    assert res.trials == {"complete": 1, "pruned": 0, "diverged": 1, "failed": 0}
    assert res.best["trial"] == 1


def test_a_crashing_trial_fails_and_the_search_goes_on(tmp_path):
    # data.name npz without data.path raises in the worker, for that trial only
    # (a worker process that dies: the next test)
    spec = {"strategy": "grid", "trials": 2, "space": {"data.name": "choice([npz, spirals])"}}
    res = search(write(tmp_path, spec), executor="inline")
    study = load_study(tmp_path, "exp")
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert study.trials[0].user_attrs["outcome"] == "crashed"
    assert "data.path" in study.trials[0].user_attrs["error"]
    assert (tmp_path / "runs/search/exp/trials/0000/error.txt").is_file()
    assert res.trials["failed"] == 1 and res.trials["complete"] == 1
    assert res.best["trial"] == 1


def test_a_dead_worker_process_fails_its_trial_and_is_replaced(tmp_path):
    config = load_config(None, ["data.name=spirals", "model.width=8", "train.epochs=50"])
    job = Job(0, config.model_dump(mode="json"), str(tmp_path / "t0"))
    executor = LocalExecutor(1)
    events: list[Event] = []

    def handle(event):
        events.append(event)
        if event.kind == "epoch" and event.number == 0 and event.epoch == 1:
            os.kill(_workers_of(os.getpid())[0], signal.SIGKILL)
        return False

    try:
        executor.submit(job)
        deadline = time.monotonic() + 60
        while not any(e.kind != "epoch" for e in events) and time.monotonic() < deadline:
            executor.step(handle, 0.5)
        assert events[-1].kind == "error" and "died" in events[-1].message
        events.clear()
        job = Job(
            1,
            load_config(None, ["data.name=spirals", "train.epochs=1"]).model_dump(mode="json"),
            str(tmp_path / "t1"),
        )
        executor.submit(job)
        while not any(e.kind == "done" for e in events) and time.monotonic() < deadline:
            executor.step(handle, 0.5)
        assert events[-1].kind == "done" and events[-1].result["epochs"] == 1
    finally:
        executor.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _workers_of(pid: int) -> list[int]:
    """The spawned worker processes among `pid`'s children (not multiprocessing's helpers)."""
    return [
        child
        for child in _children(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_resume_after_a_killed_driver_runs_each_slot_once_and_leaves_no_orphans(tmp_path):
    spec = {
        "strategy": "random",
        "trials": 4,
        "workers": 2,
        "seed": 3,
        "space": {"optim.lr": "loguniform(1e-3, 1e-1)"},
    }
    cfg = write(tmp_path, spec, BASE.replace("epochs: 2", "epochs: 15"))
    driver = subprocess.Popen(
        [sys.executable, "-m", "trainlab", "search", str(cfg)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRAINLAB_COMPILE": "0"},
    )
    trials = tmp_path / "runs/search/exp/trials"
    deadline = time.monotonic() + 60
    try:
        # wait until both workers train (two trial directories with an epoch done)
        while time.monotonic() < deadline:
            done = [d for d in trials.glob("*") if (d / "metrics.jsonl").exists()]
            if len(done) >= 2:
                break
            assert driver.poll() is None, driver.stderr.read().decode()
            time.sleep(0.2)
        workers = [p for p in _children(driver.pid)]
        assert len(workers) >= 2
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        finished = {int(d.name) for d in trials.glob("*") if (d / "result.json").exists()}
    finally:
        if driver.poll() is None:
            driver.kill()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "worker processes outlived the driver"

    study = load_study(tmp_path, "exp")
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert running  # the kill left trials unfinished
    assert main(["search", str(cfg), "--resume", "--set", "train.epochs=2"]) == 2  # changed
    assert main(["search", str(cfg), "--resume"]) == 0
    study = load_study(tmp_path, "exp")
    by_state = {}
    for t in study.trials:
        by_state.setdefault(t.state.name, []).append(t)
    assert len(by_state["COMPLETE"]) == 4  # the study's total, nothing counted twice
    assert sorted(t.number for t in by_state["FAIL"]) == [n for n in running if n not in finished]
    assert all(t.user_attrs["outcome"] == "interrupted" for t in by_state["FAIL"])
    assert "RUNNING" not in by_state
    assert sorted(int(d.name) for d in trials.iterdir()) == sorted(
        t.number for t in by_state["COMPLETE"]
    )


def test_a_second_driver_on_the_same_study_is_refused(tmp_path, capsys):
    cfg = write(tmp_path, {"trials": 1, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}})
    with StudyLock(tmp_path / "runs" / "search" / "exp"):
        assert main(["search", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "being searched by a running" in err
    assert f"pid {os.getpid()}" in err


@pytest.mark.parametrize(
    "space, message",
    [
        ({"optim.learning_rate": "loguniform(1e-3, 1e-1)"}, "search.space.optim.learning_rate"),
        ({"optim.lr": "uniform(0.1, 0.1)"}, "low < high"),
        ({"optim.lr": "loguniform(0, 0.1)"}, "low > 0"),
        ({"optim.betas.0": "beta(0.5, 1.0)"}, "inside (0, 1)"),
        ({"model.dropout": "uniform(0, 1)"}, "search.space.model.dropout: 1.0"),
    ],
)
def test_bad_spaces_are_one_line_and_exit_2(tmp_path, capsys, space, message):
    cfg = write(tmp_path, {"trials": 2, "space": space})
    assert main(["search", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_bad_storage_and_changed_space_leave_the_study_untouched(tmp_path, capsys):
    cfg = write(tmp_path, {"trials": 1, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}})
    search(cfg, executor="inline")
    db = tmp_path / "runs" / "trainlab.db"
    before = db.read_bytes()
    changed = write(tmp_path, {"trials": 2, "space": {"optim.lr": "loguniform(1e-4, 1e-1)"}})
    assert main(["search", str(changed), "--resume"]) == 2
    assert main(["search", str(cfg), "--storage", "nosuchdb://x/y"]) == 2
    assert main(["search", str(cfg), "--resume", "--study", "other"]) == 2
    assert main(["search", str(cfg)]) == 2  # exists: needs --resume
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 4
    assert errs[0].startswith("trainlab search: search.space: differs")
    assert "loguniform(0.001, 0.1) -> loguniform(0.0001, 0.1)" in errs[0]
    assert errs[1].startswith("trainlab search: --storage: cannot open nosuchdb://x/y")
    assert "--resume: no study 'other'" in errs[2]
    assert "already exists" in errs[3]
    assert db.read_bytes() == before
    with pytest.raises(UserError, match="--storage: cannot"):
        open_storage("sqlite:////proc/no/such/dir/x.db")
    # resuming with no database at all: one line, and no empty database left behind
    assert (
        main(["search", str(cfg), "--resume", "--storage", f"sqlite:///{tmp_path}/none/x.db"]) == 2
    )
    assert "--resume: no study database" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


class TwoAtOnceCounting(TwoAtOnce):
    """TwoAtOnce that remembers the most jobs it held at once."""

    most = 0

    def submit(self, job):
        super().submit(job)
        TwoAtOnceCounting.most = max(TwoAtOnceCounting.most, len(self.jobs))


def test_retest_retrains_each_best_config_with_new_seeds_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(driver, "make_executor", lambda *a, **k: TwoAtOnceCounting())
    spec = {"trials": 2, "workers": 2, "seed": 4, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}}
    cfg = write(tmp_path, spec, BASE.replace("epochs: 2", "epochs: 1"))
    flags = ["--retest", "2", "--retest-seeds", "2", "--json"]
    TwoAtOnceCounting.most = 0
    assert main(["search", str(cfg), *flags]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "ranking" in captured.err and "re-test val acc" in captured.err  # the table
    assert TwoAtOnceCounting.most == 2  # the re-tests share the search's two slots
    rt = out["retest"]
    assert [e["trial"] for e in rt] == [r["trial"] for r in out["leaderboard"][:2]]
    d = tmp_path / "runs/search/exp"
    dirs = {}
    for e, row in zip(rt, out["leaderboard"]):
        assert e["original_val_accuracy"] == row["value"] and e["params"] == row["params"]
        original = yaml.safe_load((d / "trials" / f"{e['trial']:04d}/config.yaml").read_text())
        seeds = [
            yaml.safe_load((d / "retest" / f"{e['trial']:04d}-seed{s}/config.yaml").read_text())[
                "train"
            ]["seed"]
            for s in e["seeds"]
        ]
        assert seeds == e["seeds"] and len(set(seeds)) == 2
        assert original["train"]["seed"] not in seeds
        results = [
            json.loads((d / "retest" / f"{e['trial']:04d}-seed{s}/result.json").read_text())
            for s in seeds
        ]
        for key, kind in (("val_accuracy", "val"), ("test_accuracy", "test")):
            values = [r[key] for r in results]
            assert e[f"{kind}_mean"] == pytest.approx(sum(values) / 2)
            assert e[f"{kind}_std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
            assert (e[f"{kind}_min"], e[f"{kind}_max"]) == (min(values), max(values))
        assert e["values"] == [r["val_accuracy"] for r in results]
        dirs.update({f"{e['trial']:04d}-seed{s}": r for s, r in zip(seeds, results)})
    assert {p.name for p in (d / "retest").iterdir()} == set(dirs)  # K x R runs, nothing else
    assert sorted(e["retest_rank"] for e in rt) == [1, 2]

    # an interrupted re-test: resume trains only the missing run, the others are read back
    lost = sorted(dirs)[1]
    (d / "retest" / lost / "result.json").unlink()
    kept = {n: (d / "retest" / n / "best.pt").stat().st_mtime_ns for n in dirs if n != lost}
    assert main(["search", str(cfg), "--resume", *flags]) == 0
    again = json.loads(capsys.readouterr().out)
    assert {n: (d / "retest" / n / "best.pt").stat().st_mtime_ns for n in kept} == kept
    assert (d / "retest" / lost / "result.json").is_file()
    assert [e["seeds"] for e in again["retest"]] == [e["seeds"] for e in rt]
    assert again["trials"] == out["trials"]  # the search itself ran nothing more


class CountingWorker(executors._Worker):
    """A local worker process that counts how many were started."""

    started = 0

    def __init__(self, *args, **kwargs):
        CountingWorker.started += 1
        super().__init__(*args, **kwargs)


def test_workers_are_capped_at_the_trials_left_and_started_when_needed(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(executors, "_Worker", CountingWorker)
    monkeypatch.setattr(driver.os, "sched_getaffinity", lambda pid: {0})  # a one-core machine
    CountingWorker.started = 0
    idle = LocalExecutor(4)
    assert idle.free() == 4 and CountingWorker.started == 0  # no process before a job
    idle.close()
    spec = {"trials": 2, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}}
    cfg = write(tmp_path, spec, BASE.replace("epochs: 2", "epochs: 1"))
    assert main(["search", str(cfg), "--workers", "100", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["workers"] == 2 and CountingWorker.started == 2
    notes = [line for line in captured.err.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: search.workers: 100 asked, 2 runs left: starting at most 2",
        "note: search.workers: 2 workers on 1 CPU cores; trials will compete for cores, "
        "each running slower",
    ]
    CountingWorker.started = 0  # one trial left of 3: one worker
    assert main(["search", str(cfg), "--resume", "--trials", "3", "--workers", "4"]) == 0
    assert CountingWorker.started == 1
    assert "note: search.workers: 4 asked, 1 runs left" in capsys.readouterr().out


class Killed(BaseException):
    """The driver dies (kill -9) between a trial's result.json and the record in the study."""


def test_resume_keeps_a_finished_trial_the_killed_driver_had_not_recorded(tmp_path, monkeypatch):
    spec = {"trials": 3, "seed": 5, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}}
    cfg = write(tmp_path, spec, BASE.replace("epochs: 2", "epochs: 3"))
    handle = driver.Driver._handle

    def dying(self, event):
        if event.kind == "done" and event.number == 1:
            raise Killed
        return handle(self, event)

    monkeypatch.setattr(driver.Driver, "_handle", dying)
    with pytest.raises(Killed):
        search(cfg, executor="inline")
    monkeypatch.setattr(driver.Driver, "_handle", handle)
    study = load_study(tmp_path, "exp")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    # and a trial that had not finished: asked, half trained, no result.json
    study.ask({"optim.lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)})
    trials = tmp_path / "runs/search/exp/trials"
    (trials / "0002").mkdir()
    (trials / "0002/metrics.jsonl").write_text('{"epoch": 1}\n')
    result = json.loads((trials / "0001/result.json").read_text())
    stamp = (trials / "0001/best.pt").stat().st_mtime_ns

    res = search(cfg, executor="inline", resume=True)
    study = load_study(tmp_path, "exp")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    kept = study.trials[1]
    assert kept.value == result["val_accuracy"]  # the best epoch's validation accuracy
    attrs = {k: kept.user_attrs[k] for k in ("epochs", "seconds", "test_accuracy")}
    assert attrs == {k: result[k] for k in ("epochs", "seconds", "test_accuracy")}
    assert set(kept.user_attrs) == set(study.trials[0].user_attrs)  # as a recorded trial
    assert len(kept.intermediate_values) == 3  # its curve, reported before the kill
    assert (trials / "0001/best.pt").stat().st_mtime_ns == stamp  # not trained again
    assert study.trials[2].user_attrs["outcome"] == "interrupted"
    assert not (trials / "0002").exists()  # its slot was re-run as trial 3
    assert res.trials == {"complete": 3, "pruned": 0, "diverged": 0, "failed": 0}
    assert [r["trial"] for r in res.leaderboard] == sorted(
        (0, 1, 3), key=lambda n: -study.trials[n].value
    )


def test_retest_seeds_are_shared_and_avoid_every_retested_trials_own_seed():
    alone = retest_seeds(4, 0, 3)
    assert retest_seeds(4, [0, 0, 0], 3) == alone  # no collision: the seeds a run had before
    # a config whose own seed is a candidate no longer gets a list of its own: all skip it
    shared = retest_seeds(4, [0, alone[1]], 3)
    assert alone[1] not in shared and shared[:1] == alone[:1] and len(set(shared)) == 3


def test_retest_compares_the_best_with_each_other_config_paired_by_seed(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(driver, "make_executor", lambda *a, **k: TwoAtOnce())
    spec = {"trials": 3, "workers": 2, "seed": 5, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}}
    cfg = write(tmp_path, spec, BASE.replace("epochs: 2", "epochs: 1"))
    assert main(["search", str(cfg), "--retest", "3", "--retest-seeds", "3", "--json"]) == 0
    captured = capsys.readouterr()
    rt = json.loads(captured.out)["retest"]
    assert len(rt) == 3
    assert rt[0]["seeds"] == rt[1]["seeds"] == rt[2]["seeds"]  # the same seeds: paired
    assert rt[0]["val_vs_best"] is None and rt[0]["test_vs_best"] is None
    for kind, key in (("val", "values"), ("test", "test_values")):
        a = rt[0][key]
        expected = compare_pairs(
            [(f"trial {rt[0]['trial']}", f"trial {e['trial']}", a, e[key]) for e in rt[1:]],
            f"{kind}_accuracy",
            confidence=0.95,
            margin=0.005,
        )
        for e, want in zip(rt[1:], expected):
            got = e[f"{kind}_vs_best"]
            assert got["seeds"] == e["seeds"] and got["n"] == 3
            for field in ("diff", "ci_low", "ci_high", "p_value", "p_unadjusted", "sd"):
                assert got[field] == pytest.approx(want[field]), (kind, field)
            assert (got["better"], got["verdict"]) == (want["better"], want["verdict"])
            # and straight from report.stats: the paired t-test, Holm over the two pairs
            direct = paired(a, e[key])
            assert got["diff"] == pytest.approx(sum(e[key]) / 3 - sum(a) / 3)
            assert got["p_unadjusted"] == pytest.approx(direct.p_value)
            assert (got["ci_low"], got["ci_high"]) == pytest.approx((direct.ci_low, direct.ci_high))
        ps = [paired(a, e[key]).p_value for e in rt[1:]]
        assert [e[f"{kind}_vs_best"]["p_value"] for e in rt[1:]] == pytest.approx(holm(ps))
    assert "paired by seed" in captured.err
    assert captured.err.count("verdict (val acc):") == 2
    assert captured.err.count("verdict (test acc):") == 2


def test_a_data_warning_is_shown_once_as_one_line_not_by_every_worker(tmp_path, capfd):
    """The driver loads the data first and shows its warnings; the workers (other processes,
    hence capfd) load it again for every trial and must not repeat them in Python's format."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([3, 7, 100])[np.arange(200) % 3])
    base = BASE.replace("{name: spirals}", f"{{name: npz, path: {tmp_path / 'd.npz'}}}")
    space = {"optim.lr": "loguniform(1e-3, 1e-1)"}
    cfg = write(tmp_path, {"strategy": "random", "trials": 2, "workers": 1, "space": space}, base)
    assert main(["search", str(cfg), "--json"]) == 0
    err = capfd.readouterr().err
    assert "DataWarning" not in err, err
    warned = [line for line in err.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith("trainlab search: warning: data.path:")


def test_the_default_strategy_is_auto_a_latin_hypercube_start_then_a_model(tmp_path):
    """A `search:` section without `strategy` runs `auto` through the driver: its first 5
    trials (a 2-dim space) cover each of 5 strata of the lr's log range once, the sixth comes
    from the GP, and no configuration repeats."""
    space = {"optim.lr": "loguniform(1e-4, 1e-0)", "model.width": "logint(4, 64)"}
    cfg = write(tmp_path, {"trials": 6, "seed": 3, "space": space})
    res = search(cfg, executor="inline")
    study = load_study(tmp_path, "exp")
    lrs = [math.log10(t.params["optim.lr"]) + 4 for t in study.trials]
    assert sorted(int(x // 0.8) for x in lrs[:5]) == [0, 1, 2, 3, 4]
    assert sum(res.trials.values()) == 6  # complete, or diverged where the GP tried lr ~ 1
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 6
    random = search(
        write(
            tmp_path, {"strategy": "random", "trials": 6, "seed": 3, "space": space}, name="r.yaml"
        ),
        executor="inline",
    )
    assert [r["params"] for r in random.leaderboard] != [r["params"] for r in res.leaderboard]


def test_a_study_of_another_strategy_is_not_resumed_and_the_line_says_how(tmp_path, capsys):
    """A study searched with random (the default before auto) and resumed from a config that
    names no strategy: one line saying which flag continues it; with it, the study goes on."""
    space = {"optim.lr": "loguniform(1e-3, 1e-1)"}
    old = write(tmp_path, {"strategy": "random", "trials": 2, "space": space})
    assert main(["search", str(old)]) == 0
    new = write(tmp_path, {"trials": 3, "space": space})  # same file name: same study
    capsys.readouterr()
    assert main(["search", str(new), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "search.strategy: the study was searched with random, not auto "
        "(give --strategy random to continue it)" in err
    )
    assert "\n" not in err and "Traceback" not in err
    argv = ["search", str(new), "--resume", "--strategy", "random"]
    assert main(argv + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"]["complete"] == 3


def test_more_workers_than_the_lag_lets_run_get_a_note(tmp_path, capsys):
    """With a strategy that reads results, at most search.lag + 1 trials train at once: more
    workers than that are told so (and how to use them all); random search is never held back."""
    spec = {"trials": 3, "workers": 3, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}}
    held = write(tmp_path, {**spec, "strategy": "tpe"}, BASE.replace("epochs: 2", "epochs: 1"))
    assert main(["search", str(held), "--json"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "search.lag" in line]
    assert notes == [
        "note: search.lag: 1: trial n reads the results below n - 1, so at most 2 of the 3 "
        "workers train at once; set search.lag: 2 to use them all"
    ]
    free = write(tmp_path, {**spec, "strategy": "random"}, BASE.replace("epochs: 2", "epochs: 1"))
    assert main(["search", str(free), "--json", "--study", "free"]) == 0
    assert "search.lag" not in capsys.readouterr().err
