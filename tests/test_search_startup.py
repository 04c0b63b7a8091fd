"""`trainlab search` starts its local workers first thing (before it loads Optuna and torch,
reads the config, opens the storage and prepares the data): how many it guesses, that a search
runs on them, that a mistake or Ctrl-C found after they started leaves no process behind, and
that a worker's kept data gives the same numbers as a trial preparing its own."""

import json
import os
import sys
import textwrap

import pytest
import yaml

from trainlab.cli import build_parser, main
from trainlab.commands import search as command
from trainlab.experiments import executors
from trainlab.experiments.executors import Job, LocalExecutor, run_job
from trainlab.search.config import SearchConfig
from trainlab.search.running import driver

BASE = """
data: {name: spirals}
model: {kind: mlp, width: 16, depth: 1}
optim: {name: adam, lr: 1e-2}
train: {epochs: 1, batch_size: 64}
"""
SPACE = {"optim.lr": "loguniform(1e-3, 1e-1)"}


def write(tmp_path, search: dict) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE + yaml.safe_dump({"search": search}))
    return str(path)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)


class Recorded(executors._Worker):
    """A local worker process that is remembered (to check none outlives the command)."""

    all: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Recorded.all.append(self)


@pytest.fixture
def recorded(monkeypatch):
    Recorded.all = []
    monkeypatch.setattr(executors, "_Worker", Recorded)
    yield Recorded.all
    for w in Recorded.all:  # a failing test leaves nothing running either
        if w.process.is_alive():
            w.process.kill()


def ahead(argv):
    return command.workers_ahead(build_parser("search").parse_args(["search", *argv]))


def test_the_guess_defaults_agree_with_the_search_config():
    fields = SearchConfig.model_fields
    assert command.DEFAULT_WORKERS == fields["workers"].default
    assert command.DEFAULT_TRIALS == fields["trials"].default
    assert command.DEFAULT_EXECUTOR == fields["executor"].default


def test_workers_started_ahead_are_what_the_flags_and_config_ask_capped(tmp_path):
    cfg = write(tmp_path, {"trials": 3, "workers": 2, "space": SPACE})
    assert ahead([cfg]) == 2
    assert ahead([cfg, "--workers", "8"]) == 3  # capped at the trials
    assert ahead([cfg, "--workers", "8", "--trials", "20"]) == 4  # ... and at the 4 cores
    assert ahead([cfg, "--set", "search.workers=1"]) == 1
    assert ahead([cfg, "--resume"]) == 1  # the runs left are not known yet
    assert ahead([cfg, "--executor", "ray"]) == 0
    assert ahead([cfg, "--set", "search.workers=two"]) == 0  # the plan says what is wrong
    assert ahead([write(tmp_path, {"space": SPACE})]) == 1  # SearchConfig's default
    (tmp_path / "bad.yaml").write_text("search: [unclosed\n")
    assert ahead([str(tmp_path / "bad.yaml")]) == 0
    assert ahead([str(tmp_path / "missing.yaml")]) == 0
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")
    )
    (tmp_path / "laughs.yaml").write_text(laughs + "search: {workers: 2, trials: 5}\n")
    assert ahead([str(tmp_path / "laughs.yaml")]) == 2  # aliases are never expanded


def test_a_search_runs_on_workers_started_before_the_plan(tmp_path, capsys, monkeypatch, recorded):
    at_plan = []
    plan = driver.plan

    def counting_plan(*args, **kwargs):
        at_plan.append(len(recorded))
        return plan(*args, **kwargs)

    monkeypatch.setattr(driver, "plan", counting_plan)
    cfg = write(tmp_path, {"trials": 3, "workers": 2, "space": SPACE})
    assert main(["search", cfg, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert at_plan == [2]  # both started before the config was read properly
    assert len(recorded) == 2 and out["workers"] == 2  # and no others after
    assert out["trials"]["complete"] == 3
    assert not any(w.process.is_alive() for w in recorded)
    # a resume with one trial left: one worker ahead, no more
    recorded.clear()
    assert main(["search", cfg, "--resume", "--trials", "4", "--workers", "2"]) == 0
    assert len(recorded) == 1


def test_extra_workers_started_ahead_end_when_fewer_runs_are_left(tmp_path, recorded):
    started = LocalExecutor(3).start()
    assert started.started() == 3 and len(recorded) == 3
    got = executors.make_executor("local", 1, started=started)
    assert got is started and got.started() == 1 and got.free() == 1
    for w in recorded[1:]:
        w.process.join(5)
        assert not w.process.is_alive()
    other = executors.make_executor("local", 1, threads=2, started=started)
    assert other is not started  # workers of another thread count: the caller ends these
    started.close(kill=True)
    other.close()
    assert not any(w.process.is_alive() for w in recorded)


@pytest.mark.parametrize(
    "argv, space, message",
    [
        (["--storage", "bogus://nowhere"], SPACE, "--storage"),
        ([], {"optim.lr": "loguniform(0, 1)"}, "search.space.optim.lr"),
        (["--set", "optim.lr=-1"], SPACE, "optim.lr"),
    ],
)
def test_a_mistake_found_after_the_workers_started_is_one_line_and_ends_them(
    tmp_path, capsys, recorded, argv, space, message
):
    cfg = write(tmp_path, {"trials": 2, "workers": 2, "space": space})
    assert main(["search", cfg, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainlab search: ") and message in err and "\n" not in err
    assert len(recorded) == 2
    assert not any(w.process.is_alive() for w in recorded)
    assert not (tmp_path / "runs" / "search" / "exp").exists()


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_data_mistake_is_one_line_from_the_first_worker_before_any_trial(
    tmp_path, capsys, recorded, storage
):
    """The driver loads no data (no torch); the first worker prepares it before any trial is
    handed out: a data mistake is still one line, exit 2, with no trial run, no study left in
    the storage (a shared journal's study is not even created) or on disk, and no worker left
    running."""
    import optuna

    from trainlab.search import study as studies

    path = write(tmp_path, {"trials": 2, "workers": 2, "space": SPACE})
    text = open(path).read().replace("{name: spirals}", "{name: npz, path: missing.npz}")
    open(path, "w").write(text)
    url = f"sqlite:///{tmp_path}/s.db" if storage == "sqlite" else f"journal:///{tmp_path}/s.log"
    assert main(["search", path, "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainlab search: data.path") and "\n" not in err, err
    assert len(recorded) == 2 and not any(w.process.is_alive() for w in recorded)
    assert not (tmp_path / "runs" / "search" / "exp").exists()
    opened = studies.open_storage(url)
    assert optuna.get_all_study_names(opened) == []
    studies.close_storage(opened)


def test_the_first_worker_prepares_the_data_its_first_trial_trains_on(tmp_path):
    """`Prepare` keeps the splits a trial of the same data section then takes as they are."""
    config = driver.plan(write(tmp_path, {"trials": 2, "space": SPACE}), driver.SearchOptions())
    kept: dict = {}
    event = run_job(executors.Prepare(config.base["data"]), lambda e, v: False, kept)
    assert event.kind == "done" and event.result == {"warnings": []}
    prepared = kept["splits"]
    trial, _ = driver.sampled_config(config.base, {"optim.lr": 1e-2})
    assert run_job(Job(0, trial, str(tmp_path / "t0")), lambda e, v: False, kept).kind == "done"
    assert kept["splits"] is prepared
    bad = executors.Prepare({**config.base["data"], "name": "npz"})
    event = run_job(bad, lambda e, v: False, kept)
    assert event.kind == "error" and event.result == {"user": True}
    assert event.message.startswith("data.path")


def test_ctrl_c_during_start_up_leaves_no_worker(tmp_path, capsys, monkeypatch, recorded):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for where, name in ((driver, "plan"), (executors.LocalExecutor, "prepared")):
        with monkeypatch.context() as m:
            m.setattr(where, name, interrupted)
            cfg = write(tmp_path, {"trials": 2, "workers": 2, "space": SPACE})
            assert main(["search", cfg]) == 130
            assert "interrupted" in capsys.readouterr().err
            assert len(recorded) == 2
            assert not any(w.process.is_alive() for w in recorded)
            recorded.clear()


def test_a_killed_command_takes_its_early_workers_along(tmp_path):
    """kill -9 of the command while its workers still start: they notice and exit."""
    import signal
    import subprocess
    import time

    script = textwrap.dedent(
        """
        import sys, time
        from trainlab.experiments.executors import LocalExecutor
        e = LocalExecutor(2).start()
        print(" ".join(str(w.process.pid) for w in e._workers), flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60  # a worker notices between imports' steps too
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.2)
    assert not alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped) counts as gone
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_worker_keeps_its_data_and_trains_the_same_numbers(tmp_path):
    config = driver.plan(write(tmp_path, {"trials": 2, "space": SPACE}), driver.SearchOptions())
    kept: dict = {}
    runs = []
    for i, (lr, keep) in enumerate([(1e-2, None), (1e-2, kept), (3e-2, kept), (3e-2, None)]):
        trial, _ = driver.sampled_config(config.base, {"optim.lr": lr})
        event = run_job(Job(i, trial, str(tmp_path / f"t{i}")), lambda e, v: False, keep)
        assert event.kind == "done", event.message
        runs.append((_numbers(tmp_path / f"t{i}"), event.result["test_accuracy"]))
        if keep is not None:
            assert kept["splits"] is not None  # prepared once, then kept
    assert runs[0] == runs[1] and runs[2] == runs[3] and runs[0] != runs[2]
    # another data section: prepared anew (one kept at a time)
    other = {**trial, "data": {**trial["data"], "seed": 7}}
    first = kept["splits"]
    assert run_job(Job(9, other, str(tmp_path / "t9")), lambda e, v: False, kept).kind == "done"
    assert kept["splits"] is not first


def _numbers(run_dir) -> list[dict]:
    """metrics.jsonl without its wall-clock seconds (which differ between runs of the same
    numbers)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_importing_the_executors_loads_no_torch():
    import subprocess

    code = "import sys, trainlab.experiments.executors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
