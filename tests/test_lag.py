"""The lag (search.lag): trial n is proposed and pruned from the trials numbered below n - lag, so
a parallel search gives the same trials as a sequential one with the same lag, whatever order
its trials finish in (trainlab.search.strategies.lagged)."""

import json
import math
import random

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from trainlab.cli import main
from trainlab.errors import UserError
from trainlab.experiments.executors import Event, run_job
from trainlab.search import Search, optimize
from trainlab.search.config import SearchConfig, load_search_config
from trainlab.search.running import driver
from trainlab.search.strategies import make_pruner
from trainlab.search.strategies.lagged import LaggedSampler, LaggedStudy, history_from

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "lr": "loguniform(1e-4, 1e-1)",
    "dropout": "uniform(0, 0.5)",
    "act": "choice([relu, tanh])",
}


def score(p):
    bonus = 0.1 if p["act"] == "relu" else 0.0
    return -((math.log10(p["lr"]) + 2.5) ** 2) - (p["dropout"] - 0.2) ** 2 + bonus


def listed(trials):
    return [(t.number, t.state.name, t.params, t.value, t.intermediate_values) for t in trials]


# --------------------------------------------------------------------------- the view


def test_trial_n_sees_exactly_the_trials_below_n_minus_lag_and_the_window_as_running():
    study = optuna.create_study(direction="maximize")
    states = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    states += [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    for i, state in enumerate(states):  # trials 0..6 finished, in these states
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.report(0.1 * i, 1)
        trial.set_user_attr("outcome", "crashed" if state == TrialState.FAIL else "ok")
        study.tell(trial, 0.1 * i if state == TrialState.COMPLETE else None, state=state)
    running = study.ask()  # trial 7: still running
    running.suggest_float("x", 0, 1)
    own = study.ask()  # trial 8: being asked
    later = study.ask()  # trial 9 (another thread's): not in the view
    view = LaggedStudy(study, own.number, lag=3)
    trials = view.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    real = study.get_trials(deepcopy=False)
    assert listed(trials[:5]) == listed(real[:5])  # below 8 - 3: as they are
    for t in trials[5:8]:  # the window: RUNNING with its params, nothing else
        assert (
            t.state == TrialState.RUNNING and t.value is None and t.params == real[t.number].params
        )
        assert t.intermediate_values == {} and t.user_attrs == {} and t.system_attrs == {}
    complete = view.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert [t.number for t in complete] == [0, 3, 4]  # 5 is complete but in the window
    running_ones = view._get_trials(deepcopy=False, states=(TrialState.RUNNING,), use_cache=False)
    assert [t.number for t in running_ones] == [5, 6, 7, 8]
    assert view.best_trial.number == 4 and study.best_trial.number == 5
    assert later.number not in [t.number for t in view.trials]
    assert [t.number for t in LaggedStudy(study, own.number, 0).get_trials()] == list(range(9))


def test_a_settled_window_trial_shows_as_it_is():
    study = optuna.create_study()
    for _ in range(3):
        t = study.ask()
        t.set_user_attr("outcome", "interrupted")
        study.tell(t, state=TrialState.FAIL)
    study.ask()
    view = LaggedStudy(study, 3, 2, settled=lambda t: t.user_attrs.get("outcome") == "interrupted")
    assert [t.state for t in view.get_trials()] == [TrialState.FAIL] * 3 + [TrialState.RUNNING]


# --------------------------------------------------------------------------- ask/tell


def simulate(workers, strategy, lag, order, trials=14):
    """An ask/tell loop with `workers` trials in flight, finishing them in a random order."""
    search = Search(SPACE, strategy=strategy, trials=trials, seed=0, lag=lag, pruner="median")
    rng = random.Random(order)
    running, finished = {}, []
    while search.remaining or running:
        while len(running) < workers and search.can_ask():
            number, params = search.ask()
            running[number] = params
        number = rng.choice(sorted(running))
        params = running.pop(number)
        finished.append(number)
        pruned = False
        for step in (1, 2, 3):
            if search.report(number, step, score(params) - 1.0 + 0.3 * step):
                pruned = True
                break
        search.tell(number, None if pruned else score(params), pruned=pruned)
    return listed(search.study.get_trials()), finished


@pytest.mark.parametrize("strategy", ["tpe", "auto"])
def test_ask_tell_with_many_in_flight_gives_the_sequential_trials(strategy):
    one, _ = simulate(1, strategy, lag=2, order=0)
    for workers, order in ((3, 1), (5, 2)):
        many, finished = simulate(workers, strategy, lag=2, order=order)
        assert finished != sorted(finished)  # trials did finish out of order
        assert many == one
    if strategy == "tpe":
        assert any(state == "PRUNED" for _, state, *_ in one)  # the pruner read the lagged view
        assert simulate(1, strategy, lag=0, order=0)[0] != one  # the lag changes what it reads


def test_a_trial_judged_where_it_trains_gets_the_answers_report_gives():
    """`Search.local_pruning`, taken when a trial is asked, answers each report as
    `Search.report` does when it comes (the lag froze the view), with trials in flight
    finishing in a random order; and the driver's rule: never stopped at its last epoch."""
    search = Search(SPACE, strategy="tpe", trials=24, seed=0, lag=2, pruner="median")
    rng = random.Random(5)
    running, answers = {}, []
    while search.remaining or running:
        while len(running) < 3 and search.can_ask():
            number, params = search.ask()
            running[number] = params, search.local_pruning(number, last_step=3)
        number = rng.choice(sorted(running))
        params, local = running.pop(number)
        assert local is not None  # with the pruner's start-up trials finished, or before them
        pruned = False
        for step in (1, 2, 3):
            value = score(params) - 1.0 + 0.3 * step
            here = search.report(number, step, value)
            answers.append(here)
            assert local.report(step, value) == (here and step < 3)
            if here:
                pruned = True
                break
        search.tell(number, None if pruned else score(params), pruned=pruned)
    assert True in answers and False in answers


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_only_pruners_that_read_complete_trials_alone_are_judged_where_trials_train():
    def asked(pruner):
        search = Search(SPACE, strategy="random", trials=4, pruner=pruner)
        return search.local_pruning(search.ask()[0])

    assert asked("median") is not None and asked("none") is not None
    assert asked(optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=1))
    assert asked(optuna.pruners.ThresholdPruner(lower=0.1)) is not None
    assert asked("halving") is None  # writes its rungs to the storage as it prunes

    class Mine(optuna.pruners.MedianPruner):  # a user's own: may read anything
        pass

    assert asked(Mine()) is None
    # a trial handed out while one below its number - lag still runs (an enqueued retry on a
    # shared storage is asked at once): that one's result may enter its view later, so no
    search = Search(SPACE, strategy="random", trials=9, pruner="median", lag=1)
    search.pruner._n_startup_trials = 0  # the pruner judges from the first trial on
    first, _ = search.ask()
    search.ask()
    search.study.enqueue_trial({"lr": 0.01, "dropout": 0.1, "act": "relu"})
    number, _ = search.ask()
    assert number == 2 and search.local_pruning(number) is None
    search.tell(first, 0.5)
    assert search.local_pruning(number) is not None


def test_ask_is_refused_until_the_trials_it_reads_are_told():
    search = Search(SPACE, strategy="tpe", trials=20, seed=0, lag=1, tpe_startup_trials=0)
    first, _ = search.ask()
    second, _ = search.ask()  # reads trials below 1 - 1 = 0: none
    assert search.can_ask() is False  # trial 2 reads trial 0, running
    with pytest.raises(RuntimeError, match="tell trial 0 first"):
        search.ask()
    search.tell(second, 1.0)  # out of order: still waiting for 0
    assert search.waits_for() == first
    search.tell(first, 0.5)
    assert search.can_ask() and isinstance(search.sampler, LaggedSampler)
    # random search reads no results and, without a pruner, never waits
    free = Search(SPACE, strategy="random", trials=5, seed=0, lag=0)
    assert [free.ask()[0] for _ in range(5)] == [0, 1, 2, 3, 4]


def test_threads_give_the_sequential_trials():
    def objective(params, report):
        for step in (1, 2):
            if report(step, score(params) - 1.0 + 0.5 * step):
                return None
        return score(params)

    def run(n_jobs):
        search = Search(SPACE, strategy="tpe", trials=16, seed=1, lag=3, pruner="median")
        return listed(search.run(objective, n_jobs=n_jobs).trials)

    assert run(4) == run(1)


def test_a_study_continued_to_a_larger_budget_gives_the_trials_of_one_run(tmp_path):
    """Every draw is seeded by its trial: a second process continuing the study (resume, or
    another driver) proposes what the first would have. (Not auto's Gaussian process, which
    starts its fit from the last one of the same process: docs/search.md.)"""
    url = f"sqlite:///{tmp_path}/hpo.db"
    common = {"strategy": "tpe", "seed": 2, "lag": 1, "storage": url, "pruner": "median"}
    optimize(score, SPACE, trials=7, study="continued", **common)
    continued = optimize(score, SPACE, trials=12, study="continued", **common)
    whole = optimize(score, SPACE, trials=12, study="whole", **common)
    assert listed(continued.trials) == listed(whole.trials)


@pytest.mark.parametrize("value", [-1, 1.5, "two"])
def test_a_bad_lag_is_one_line_naming_search_lag(value):
    with pytest.raises(UserError) as info:
        load_search_config({"lag": value})
    assert str(info.value).startswith("search.lag: ") and "\n" not in str(info.value)
    with pytest.raises(UserError, match="^lag: "):
        Search(SPACE, lag=value)


def test_config_fields_show_the_lag(capsys):
    assert main(["config", "--fields", "search"]) == 0
    assert "lag" in capsys.readouterr().out


# --------------------------------------------------------------------------- the driver

BASE = """
data: {name: spirals}
model: {kind: mlp, width: 16, depth: 1}
optim: {name: adam, lr: 1e-2}
train: {epochs: 3, batch_size: 16}
"""

SEARCH = {
    "strategy": "auto",
    "trials": 11,
    "seed": 3,
    "lag": 1,
    "pruner": "median",
    "pruner_startup_trials": 6,
    "pruner_warmup_epochs": 0,
    "space": {"optim.lr": "loguniform(1e-4, 1)", "model.width": "int(4, 32)"},
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder with the config, and the study of one inline worker (the reference)."""
    folder = tmp_path_factory.mktemp("lag")
    (folder / "exp.yaml").write_text(BASE + yaml.safe_dump({"search": SEARCH}))
    run(folder, "one", executor="inline")
    return folder


def run(folder, name, **options):
    url = f"sqlite:///{folder}/hpo.db"
    out = folder / name
    driver.search(
        folder / "exp.yaml", study=name, storage=url, out=str(out), verbose=False, **options
    )
    study = optuna.load_study(study_name=name, storage=url)
    return listed(study.get_trials())


class LastFirst:
    """`slots` in-process slots that run the last submitted trial first (a faster worker)."""

    def __init__(self, slots):
        self.slots, self.jobs, self.order = slots, [], []

    def free(self):
        return self.slots - len(self.jobs)

    def submit(self, job):
        self.jobs.append(job)

    def step(self, handle, timeout=0.5):
        job = self.jobs.pop()
        self.order.append(job.number)
        handle(run_job(job, lambda e, v: bool(handle(Event("epoch", job.number, e, v)))))

    def close(self, kill=False):
        self.jobs.clear()


def test_driver_finishing_out_of_order_gives_the_one_worker_trials(folder, monkeypatch):
    """More slots than lag + 1, trials finishing last-first: the study of one worker."""
    executor = LastFirst(3)
    monkeypatch.setattr(driver, "make_executor", lambda *a, **k: executor)
    result = driver.search(
        folder / "exp.yaml",
        study="many",
        storage=f"sqlite:///{folder}/hpo.db",
        out=str(folder / "many"),
        verbose=False,
        workers=3,
    )
    assert result.lag_wait_seconds > 0  # a third slot waits for the lag, by design
    many = run_done(folder, "many")
    assert executor.order != sorted(executor.order)
    one = run_done(folder, "one")
    assert many == one
    assert {state for _, state, *_ in one} == {"COMPLETE", "PRUNED"}


def run_done(folder, name):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder}/hpo.db")
    return listed(study.get_trials())


def test_two_worker_processes_give_the_one_worker_trials(folder, capsys, monkeypatch):
    """The issue's check: `trainlab search` with 2 worker processes and auto (and the median
    pruner) gives the same trials as one worker, with the same lag. (Without the lag they
    differ: with two workers auto's model is fitted before the previous trial's result.)
    The workers judge their trials themselves (Job.pruning, no round trip per epoch), the one
    inline worker asks the driver: the same pruned trials at the same epochs."""
    events = []
    handle = driver.Driver._handle

    def spied(self, event):
        events.append(event)
        return handle(self, event)

    monkeypatch.setattr(driver.Driver, "_handle", spied)
    fills = []
    fill = driver.Driver._fill
    monkeypatch.setattr(driver.Driver, "_fill", lambda self: fills.append(1) or fill(self))
    url = f"sqlite:///{folder}/hpo.db"
    flags = ["--study", "two", "--storage", url, "--out", str(folder / "two"), "--workers", "2"]
    assert main(["search", str(folder / "exp.yaml"), *flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["workers"] == 2
    two = run_done(folder, "two")
    assert two == run_done(folder, "one")
    reports = [e for e in events if e.kind == "epoch"]
    pruned = {number for number, state, *_ in two if state == "PRUNED"}
    assert pruned and {e.number for e in reports if e.stop} == pruned  # stopped in the worker
    assert all(e.stop is not None for e in reports if e.number >= 7)  # 6 start-up + lag 1
    # the next trial is looked for when a trial ends, not after every epoch's report
    assert len(fills) <= 1 + sum(e.kind != "epoch" for e in events) < len(events)


def test_trials_before_the_readers_start_need_no_wait():
    median = make_pruner(SearchConfig(pruner="median", pruner_startup_trials=5))
    assert history_from(median, 2) == 7  # trial 7's view holds at most 5 trials
    c2f = make_pruner(SearchConfig(strategy="coarse-to-fine", pruner="median"))
    assert history_from(c2f, 2) == 7
    assert history_from(make_pruner(SearchConfig(pruner="none")), 2) == math.inf
    assert history_from(make_pruner(SearchConfig(pruner="halving")), 2) == 0
    assert history_from(optuna.samplers.TPESampler(n_startup_trials=10), 1) == 11
    search = Search(SPACE, strategy="auto", trials=9, seed=0, lag=1)
    assert history_from(search.sampler, 1) == 5  # the Latin-hypercube start
    asked = [search.ask()[0] for _ in range(5)]  # nothing told: the start does not wait
    assert asked == [0, 1, 2, 3, 4] and search.waits_for() == 0


COOPERATING = """
data: {name: spirals}
model: {kind: mlp, width: 16, depth: 1}
optim: {name: adam, lr: 1e-2}
train: {epochs: 3, batch_size: 32}
search:
  strategy: tpe
  trials: 8
  seed: 1
  lag: 1
  tpe_startup_trials: 2
  pruner: median
  pruner_startup_trials: 2
  pruner_warmup_epochs: 0
  space:
    optim.lr: loguniform(1e-4, 1)
    model.width: int(4, 32)
"""


def test_two_cooperating_drivers_give_the_trials_of_one(tmp_path):
    """Two drivers on one journal file (cooperate.py) wait for each other's trials through the
    storage and draw the same numbers per trial: the study of one driver."""
    import subprocess
    import sys

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(COOPERATING)

    def driver_process(log, out):
        url = f"journal:///{tmp_path}/{log}"
        cmd = [sys.executable, "-m", "trainlab.cli", "search", str(cfg), "--storage", url]
        return subprocess.Popen([*cmd, "--out", str(tmp_path / out)], cwd=tmp_path)

    procs = [driver_process("one.log", "one"), driver_process("two.log", "a")]
    procs.append(driver_process("two.log", "b"))
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]

    def trials(log):
        backend = optuna.storages.journal.JournalFileBackend(str(tmp_path / log))
        storage = optuna.storages.JournalStorage(backend)
        return listed(optuna.load_study(study_name="exp", storage=storage).get_trials())

    two = trials("two.log")
    assert len(two) == 8 and two == trials("one.log")
    ran = [{p.parent.name for p in (tmp_path / d / "trials").glob("*/result.json")} for d in "ab"]
    assert len(ran[0] | ran[1]) == 8 and ran[0] and ran[1]  # both drivers ran trials
