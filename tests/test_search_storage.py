"""Several drivers on one study, on a real PostgreSQL 15 server and on a journal file: the
study's budget is exact, a SIGKILLed driver's trial is re-run by the other one (heartbeats),
and every finished trial's files are readable from the other driver (artifact store)."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from pg_server import free_port, new_database

from trainlab.cli import main
from trainlab.errors import UserError
from trainlab.search.study import artifacts, open_storage

BASE = """
data: {name: spirals}
model: {kind: mlp, width: 16, depth: 1}
optim: {name: adam, lr: 1e-2}
train: {epochs: 6, batch_size: 64}
"""
SEARCH = {
    "strategy": "random",
    "trials": 5,
    "workers": 1,
    "seed": 3,
    "space": {"optim.lr": "loguniform(1e-3, 1e-1)"},
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _driver(cfg: Path, url: str, study: str, out: Path, store: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "trainlab", "search", str(cfg), "--storage", url]
    cmd += ["--study", study, "--out", str(out), "--artifacts", str(store), "--heartbeat", "1"]
    return subprocess.Popen(
        cmd,
        cwd=cfg.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRAINLAB_COMPILE": "0"},
    )


def _two_drivers_one_killed(tmp_path: Path, url: str, study: str, capsys) -> None:
    """Drivers A and B (two "machines": their own --out) share `study`; B joins once A has
    finished a trial; A is SIGKILLed mid-way through a later one; B finishes the study's budget,
    re-running A's trial."""
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(BASE + yaml.safe_dump({"search": SEARCH}))
    store = tmp_path / "shared-artifacts"
    a = _driver(cfg, url, study, tmp_path / "a", store)
    b = None

    def a_runs() -> tuple[list[Path], list[Path]]:
        runs = list((tmp_path / "a/trials").glob("*"))
        done = [d for d in runs if (d / "result.json").exists()]
        return done, [d for d in runs if d not in done and (d / "metrics.jsonl").exists()]

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # A finished a trial and is mid-way in another
            done, mid = a_runs()
            if done and b is None:
                b = _driver(cfg, url, study, tmp_path / "b", store)
            if done and mid:
                break
            assert a.poll() is None, a.stderr.read().decode()
            time.sleep(0.02)
        a.send_signal(signal.SIGKILL)
        a.wait()
        assert b is not None and b.wait(timeout=90) == 0, b.stderr.read().decode()
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
    loaded = optuna.load_study(study_name=study, storage=open_storage(url))
    by_state: dict[str, list] = {}
    for t in loaded.trials:
        by_state.setdefault(t.state.name, []).append(t)
    assert len(by_state["COMPLETE"]) == SEARCH["trials"]  # the study's total, exactly
    assert set(by_state) == {"COMPLETE", "FAIL"}  # no RUNNING, no WAITING left
    failed = by_state["FAIL"]
    assert len(failed) == 1 and failed[0].user_attrs["outcome"] == "interrupted"
    retries = [t for t in by_state["COMPLETE"] if "retry_of" in t.user_attrs]
    assert [t.user_attrs["retry_of"] for t in retries] == [failed[0].number]
    assert retries[0].params == failed[0].params  # re-run with the same parameters
    assert (tmp_path / "b/trials" / f"{retries[0].number:04d}/result.json").is_file()
    # every finished trial's files, from the artifact store, whichever driver ran it
    ran_by_a = {int(d.name) for d in (tmp_path / "a/trials").glob("*")}
    assert ran_by_a - {failed[0].number}, "A finished no trial before the kill"
    for t in by_state["COMPLETE"]:
        local = tmp_path / "fetched" / str(t.number)
        assert artifacts.fetch(loaded, t, local)
        origin = tmp_path / ("a" if t.number in ran_by_a else "b") / "trials" / f"{t.number:04d}"
        for name in ("best.pt", "result.json", "config.yaml", "metrics.jsonl"):
            assert (local / name).read_bytes() == (origin / name).read_bytes()
    # machine A is gone: `ensemble --study` elsewhere fetches the files of A's trials
    shutil.rmtree(tmp_path / "a")
    elsewhere = tmp_path / "c"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    capsys.readouterr()
    assert main(["ensemble", "--study", study, "--storage", url, "--top", "5", "--json"]) == 0
    members = [Path(m["run_dir"]) for m in json.loads(capsys.readouterr().out)["members"]]
    assert sorted(int(m.name) for m in members) == sorted(t.number for t in by_state["COMPLETE"])
    assert all((m / "best.pt").is_file() for m in members)


def test_postgres_two_drivers_one_killed_finish_the_budget_once(tmp_path, postgres_url, capsys):
    _two_drivers_one_killed(tmp_path, postgres_url, "pg-kill", capsys)


def test_journal_two_drivers_one_killed_finish_the_budget_once(tmp_path, capsys):
    url = f"journal:///{tmp_path}/shared/study.log"
    _two_drivers_one_killed(tmp_path, url, "j-kill", capsys)


def test_bad_storage_urls_are_one_line_naming_storage(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(BASE + yaml.safe_dump({"search": SEARCH}))
    port = free_port()  # nothing listens there
    for url in (
        f"postgresql://nobody:s3cret@127.0.0.1:{port}/db",
        "journal://relative/path.log",
        "postgresql+mysql://me:s3cret@x",
        "not-a-url",
    ):
        assert main(["search", str(cfg), "--storage", url]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("trainlab search: --storage:"), err
        assert "s3cret" not in err[0]  # a password is never printed
    with pytest.raises(UserError, match="--resume: no journal"):
        open_storage(f"journal:///{tmp_path}/none.log", must_exist=True)
    # reading a study from a journal that is not there: one line, and no empty journal made
    url = f"journal:///{tmp_path}/typo/none.log"
    assert main(["ensemble", "--study", "x", "--storage", url, "--top", "2"]) == 2
    assert "--study: no journal" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("kind", ["postgres", "journal"])
def test_racing_drivers_ask_exactly_the_budget(tmp_path, kind, request):
    """Eight drivers (each its own storage connection) ask for trials as fast as they can;
    counting and asking under the budget lock gives the study exactly its total."""
    from trainlab.search.running import cooperate

    if kind == "postgres":  # a new database: the drivers also race to create its tables
        url = new_database(request.getfixturevalue("postgres_url"), "race")
    else:
        url = f"journal:///{tmp_path}/race.log"
    name = f"race-{kind}"
    budget, errors = 24, []

    def drive() -> None:
        try:
            storage = open_storage(url)
            study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True)
            while True:
                with cooperate.budget_lock(storage, url, name):
                    if cooperate.counted(study) >= budget:
                        return
                    study.ask()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=drive) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    trials = optuna.load_study(storage=open_storage(url), study_name=name).trials
    assert len(trials) == budget
    assert sorted(t.number for t in trials) == list(range(budget))


def test_a_late_driver_joins_a_spent_study_fetches_best_yaml_and_leaves_the_retest(tmp_path):
    """A second driver on a study whose budget is spent runs nothing, reports the study, takes
    best.yaml from the artifact store (the first driver's folder is gone) and leaves the re-test
    to the driver that claimed it."""
    from trainlab.search.running.driver import search

    cfg = tmp_path / "exp.yaml"
    spec = {**SEARCH, "trials": 2, "retest": 1, "retest_seeds": 1}
    cfg.write_text(BASE.replace("epochs: 6", "epochs: 1") + yaml.safe_dump({"search": spec}))
    url = f"journal:///{tmp_path}/shared/late.log"
    first = search(cfg, storage=url, study="late", out=str(tmp_path / "a"), executor="inline")
    assert first.trials["complete"] == 2 and len(first.retest) == 1
    shutil.rmtree(tmp_path / "a")
    second = search(cfg, storage=url, study="late", out=str(tmp_path / "b"), executor="inline")
    assert second.trials == first.trials and second.best["trial"] == first.best["trial"]
    assert second.retest is None  # the first driver re-tested the study
    assert (tmp_path / "b/best.yaml").read_text().startswith(f"# best trial {first.best['trial']}")
    loaded = optuna.load_study(study_name="late", storage=open_storage(url))
    assert len(loaded.trials) == 2 and loaded.user_attrs["trainlab:drivers"] == 2


def test_sqlite_study_is_wal_and_a_read_only_reader_follows_a_running_then_killed_search(
    tmp_path,
):
    """The SQLite study is in WAL mode with synchronous=NORMAL (a commit is not a disk sync);
    the dashboard's read-only connection reads the epochs of a running search while the driver
    writes, and every epoch committed before a kill -9 is still there after it."""
    import sqlite3

    from trainlab.dashboard.studies import read_only_url

    db = tmp_path / "runs/wal.db"
    url = f"sqlite:///{db}"
    storage = open_storage(url)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    storage.engine.dispose()
    cfg = tmp_path / "exp.yaml"
    spec = {**SEARCH, "trials": 2}
    cfg.write_text(BASE.replace("epochs: 6", "epochs: 300") + yaml.safe_dump({"search": spec}))
    cmd = [sys.executable, "-m", "trainlab", "search", str(cfg), "--storage", url]
    driver = subprocess.Popen(
        [*cmd, "--study", "wal", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRAINLAB_COMPILE": "0"},
    )
    reader = optuna.storages.RDBStorage(
        read_only_url(db), skip_compatibility_check=True, skip_table_creation=True
    )
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # read while the driver writes: epochs come in
            try:
                study = optuna.load_study(study_name="wal", storage=reader)
            except KeyError:  # not created yet
                study = None
            running = study and study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            if running:
                seen.append(len(running[0].intermediate_values))
                if seen[-1] >= 3 and len(set(seen)) >= 2:
                    break
            assert driver.poll() is None, driver.stderr.read().decode()
            time.sleep(0.05)
        assert seen and seen[-1] >= 3 and len(set(seen)) >= 2, seen
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    after = optuna.load_study(study_name="wal", storage=open_storage(url))
    assert len(after.trials[0].intermediate_values) >= seen[-1]  # nothing committed was lost
    plain = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # kept in the file
    plain.close()


def test_a_shared_study_shows_every_drivers_finished_trials(tmp_path):
    """N/total on a shared study counts the trials every driver finished (not this driver's
    only), leaving out running trials and those an interrupted driver left (re-run elsewhere)."""
    import io

    from rich.console import Console

    from trainlab.commands.search import CaviarDisplay
    from trainlab.search.running import cooperate
    from trainlab.search.study import OUTCOME

    study = optuna.create_study(storage=open_storage(f"journal:///{tmp_path}/s.log"))
    for state in ("complete", "complete", "pruned", "crashed", "interrupted", "running"):
        trial = study.ask()
        if state == "complete":
            study.tell(trial, 0.5)
        elif state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif state != "running":
            trial.set_user_attr(OUTCOME, state)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert cooperate.finished(study) == 4

    out = io.StringIO()
    display = CaviarDisplay(Console(file=out, force_terminal=False, width=200))
    display.start("shared", total=10, done=0, workers=1)
    display.trial_finished(5, "complete", 0.75, finished=cooperate.finished(study) + 1)
    display.trial_finished(6, "complete", 0.5)  # a study only this driver writes: counted here
    display.stop()
    assert "(5/10 trials)" in out.getvalue() and "(6/10 trials)" in out.getvalue()


def _orphan_is_rerun(tmp_path: Path, url: str, study: str) -> None:
    """A driver killed between asking a trial and its first heartbeat left a RUNNING trial with
    no heartbeat at all: a later driver times it out like a silent one (grace period), marks it
    FAIL (interrupted) and re-runs its parameters, instead of waiting for it forever."""
    from trainlab.search.running.driver import search

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(BASE.replace("epochs: 6", "epochs: 1") + yaml.safe_dump({"search": SEARCH}))
    kw = {"storage": url, "study": study, "executor": "inline", "heartbeat": 1}
    search(cfg, trials=1, out=str(tmp_path / "a"), **kw)
    loaded = optuna.load_study(study_name=study, storage=open_storage(url))
    orphan = loaded.ask(fixed_distributions=loaded.trials[0].distributions)  # then "killed"
    done = []  # a daemon thread: a driver waiting forever fails the test, not the session
    second = threading.Thread(
        target=lambda: done.append(search(cfg, trials=2, out=str(tmp_path / "b"), **kw)),
        daemon=True,
    )
    second.start()
    second.join(timeout=60)
    assert done and done[0].trials["complete"] == 2, "the driver waited for the orphan"
    trials = optuna.load_study(study_name=study, storage=open_storage(url)).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1].number == orphan.number and trials[1].user_attrs["outcome"] == "interrupted"
    assert trials[2].user_attrs["retry_of"] == orphan.number
    assert trials[2].params == trials[1].params


def test_journal_a_trial_that_never_beat_is_rerun(tmp_path):
    _orphan_is_rerun(tmp_path, f"journal:///{tmp_path}/shared/orphan.log", "j-orphan")


def test_postgres_a_trial_that_never_beat_is_rerun(tmp_path, postgres_url):
    _orphan_is_rerun(tmp_path, postgres_url, "pg-orphan")


# A driver that SIGKILLs itself at a chosen moment: "ask<k>" right after its k-th study.ask()
# returns (no params, no heartbeat yet), "time<s>" s seconds after its first ask, whatever it is
# doing then. Each ask is written to OUT.asks first, so the test knows the driver has started.
KILLED_DRIVER = """
import os
import random
import signal
import sys
import threading

import optuna

from trainlab.search.running.driver import search

cfg, url, study, out, moment = sys.argv[1:6]
real_ask = optuna.study.Study.ask
asked = []


def ask(self, *args, **kwargs):
    trial = real_ask(self, *args, **kwargs)
    asked.append(trial.number)
    with open(out + ".asks", "a") as f:
        f.write(f"{trial.number}\\n")
    if moment == f"ask{len(asked)}":
        os.kill(os.getpid(), signal.SIGKILL)
    if moment.startswith("time") and len(asked) == 1:
        threading.Timer(float(moment[4:]), os.kill, (os.getpid(), signal.SIGKILL)).start()
    return trial


optuna.study.Study.ask = ask
search(cfg, storage=url, study=study, out=out, executor="inline", heartbeat=1)
"""
KILL_MOMENTS = ["ask1", "ask2", "random"]


def kill_moment(moment: str) -> str:
    """`random` is a moment up to 2 s after the first ask, drawn afresh each run (the seed is in
    a failure's message: TRAINLAB_KILL_SEED=<seed> replays it)."""
    if moment != "random":
        return moment
    seed = int(os.environ.get("TRAINLAB_KILL_SEED", time.time_ns() % 100_000))
    return f"time{random.Random(seed).uniform(0.0, 2.0):.2f} (seed {seed})"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _survivor_never_waits(tmp_path: Path, url: str, study: str, moment: str) -> None:
    """Driver A is killed at `moment`; driver B, joining once A has asked a trial (the k-th of
    ask<k>), finishes the study's budget exactly once in bounded time: every trial A left
    RUNNING is failed as interrupted and re-run once, whether it had beaten or not."""
    from trainlab.search.running.driver import search

    moment = kill_moment(moment)
    cfg = tmp_path / "exp.yaml"
    search_cfg = {**SEARCH, "trials": 4}
    cfg.write_text(BASE.replace("epochs: 6", "epochs: 1") + yaml.safe_dump({"search": search_cfg}))
    script = tmp_path / "killed_driver.py"
    script.write_text(KILLED_DRIVER)
    out_a = str(tmp_path / "a")
    argv = [sys.executable, str(script), str(cfg), url, study, out_a, moment.split()[0]]
    a = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done: list = []
    try:
        asks = int(moment[3:]) if moment.startswith("ask") else 1  # B joins after A's k-th
        deadline = time.monotonic() + 30
        while len(_lines(Path(out_a + ".asks"))) < asks:
            assert a.poll() in (None, -signal.SIGKILL), a.stderr.read().decode()
            assert time.monotonic() < deadline, f"driver A asked {asks} trials in 30 s"
            time.sleep(0.02)
        kw = {"storage": url, "study": study, "executor": "inline", "heartbeat": 1}
        b = threading.Thread(  # a daemon: a survivor waiting forever fails the test, not the run
            target=lambda: done.append(search(cfg, out=str(tmp_path / "b"), **kw)), daemon=True
        )
        b.start()
        b.join(timeout=60)
        killed = a.wait(timeout=30) == -signal.SIGKILL
        assert killed or a.returncode == 0, a.stderr.read().decode()
    finally:
        if a.poll() is None:
            a.kill()
    assert done, f"the surviving driver is still waiting (A killed at {moment})"
    trials = optuna.load_study(study_name=study, storage=open_storage(url)).trials
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == search_cfg["trials"], states  # the budget, exactly once
    assert set(states) <= {"COMPLETE", "FAIL"}, states  # no RUNNING, no WAITING left
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert all(t.user_attrs["outcome"] == "interrupted" for t in failed)
    retries = sorted(t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs)
    assert retries == sorted(t.number for t in failed), (moment, states)  # each re-run once
    if moment.startswith("ask"):
        assert killed and len(failed) == 1  # the trial A had just asked


@pytest.mark.parametrize("moment", KILL_MOMENTS)
def test_journal_a_driver_killed_at_any_moment_never_leaves_the_other_waiting(tmp_path, moment):
    url = f"journal:///{tmp_path}/shared/kill.log"
    _survivor_never_waits(tmp_path, url, f"j-{moment}", moment)


@pytest.mark.parametrize("moment", KILL_MOMENTS)
def test_postgres_a_driver_killed_at_any_moment_never_leaves_the_other_waiting(
    tmp_path, postgres_url, moment
):
    _survivor_never_waits(tmp_path, postgres_url, f"pg-{moment}", moment)
