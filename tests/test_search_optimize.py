"""trainlab.search.optimize and Search (ask/tell) on cheap analytic objectives."""

import math
import threading
import time

import optuna
import pytest

import trainlab.search
from trainlab.errors import UserError
from trainlab.search import Search, optimize
from trainlab.search.optimize import objective_space
from trainlab.search.strategies import BOX_ATTR, PHASE_ATTR, CoarseToFineSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"learning rate": "loguniform(1e-4, 1e-1)", "dropout": "uniform(0, 0.5)"}
BEST_LR, BEST_DROPOUT = 10**-2.5, 0.2


def score(params):
    """Peaks at lr = 10^-2.5, dropout 0.2 (value 0); log-scale distance for the lr."""
    return -((math.log10(params["learning rate"]) + 2.5) ** 2) - (params["dropout"] - 0.2) ** 2


@pytest.mark.parametrize("strategy", ["auto", "grid", "random", "coarse-to-fine", "block", "tpe"])
def test_each_strategy_finds_the_optimum_region_reproducibly(strategy):
    trials = 12 if strategy == "auto" else 30
    result = optimize(score, SPACE, strategy=strategy, trials=trials, seed=3)
    again = optimize(score, SPACE, strategy=strategy, trials=trials, seed=3)
    assert len(result.trials) == trials
    assert result.best_value > -0.1  # the log10 lr within ~0.3 of the peak
    assert abs(math.log10(result.best_params["learning rate"]) + 2.5) < 0.35
    assert result.best_params == again.best_params and result.best_value == again.best_value
    assert set(result.best_params) == set(SPACE)


def test_seed_changes_the_trials_and_minimize_finds_the_minimum():
    a = optimize(score, SPACE, strategy="random", trials=8, seed=0)
    b = optimize(score, SPACE, strategy="random", trials=8, seed=1)
    assert [t.params for t in a.trials] != [t.params for t in b.trials]
    low = optimize(lambda p: -score(p), SPACE, strategy="random", trials=20, direction="minimize")
    high = optimize(score, SPACE, strategy="random", trials=20)
    assert low.best_value == pytest.approx(-high.best_value)
    assert low.best_params == high.best_params


def test_beta_and_choice_params_are_config_values():
    space = {"b": "beta(0.9, 0.999)", "act": "choice([relu, tanh])", "width": "logint(8, 64)"}
    seen = []
    optimize(lambda p: seen.append(p) or 0.0, space, strategy="random", trials=10)
    assert all(0.9 <= p["b"] <= 0.999 and p["act"] in ("relu", "tanh") for p in seen)
    assert all(isinstance(p["width"], int) and 8 <= p["width"] <= 64 for p in seen)


def test_ask_tell_loop():
    search = Search(SPACE, strategy="coarse-to-fine", trials=12, seed=0, rounds=2)
    numbers = []
    while search.remaining:
        number, params = search.ask()
        numbers.append(number)
        search.tell(number, score(params))
    assert numbers == list(range(12))
    result = search.result()
    assert result.best_value == max(t.value for t in result.trials)
    assert [t.user_attrs["round"] for t in result.trials] == [0] * 6 + [1] * 6


def test_ask_refuses_to_start_a_round_before_the_last_one_is_told():
    search = Search(SPACE, strategy="coarse-to-fine", trials=4, seed=0, rounds=2)
    first = [search.ask() for _ in range(2)]
    assert not search.can_ask()
    with pytest.raises(RuntimeError, match="tell the running trials of the previous round"):
        search.ask()
    for number, params in first:
        search.tell(number, score(params))
    assert search.can_ask()
    search.ask()


def test_report_prunes_through_the_pruner():
    calls = []

    def objective(params, report):
        value = score(params)
        for step in range(1, 6):
            if report(step, value):
                calls.append("pruned")
                return value
        return value

    result = optimize(objective, SPACE, strategy="random", trials=12, pruner="median", seed=0)
    states = [t.state for t in result.trials]
    assert calls and states.count(optuna.trial.TrialState.PRUNED) == len(calls)
    assert states.count(optuna.trial.TrialState.COMPLETE) == 12 - len(calls)
    # ask/tell: report through the Search
    search = Search(SPACE, strategy="random", trials=2, pruner="none")
    number, _ = search.ask()
    assert search.report(number, 1, 0.5) is False


def test_fidelity_grows_per_round_for_coarse_to_fine():
    got = {}

    def objective(params, fidelity):
        got.setdefault(fidelity, 0)
        got[fidelity] += 1
        return score(params)

    optimize(objective, SPACE, strategy="coarse-to-fine", trials=9, rounds=3, fidelity=(1, 9))
    assert got == {1: 3, 3: 3, 9: 3}
    got.clear()
    optimize(objective, SPACE, strategy="random", trials=4, fidelity=(1, 9))
    assert got == {9: 4}


def test_barrier_with_threads_never_zooms_on_an_unfinished_round():
    """study.optimize(n_jobs=2): a round-1 trial is sampled only after round 0 has finished."""
    space = objective_space(SPACE)
    sampler = CoarseToFineSampler(space, seed=0, rounds=2, trials_per_round=4, keep_top=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    finished_round0 = []
    lock = threading.Lock()

    def objective(trial):
        params = space.suggest(trial)
        time.sleep(0.05 * (1 + trial.number % 3))  # trials finish out of order
        with lock:
            if sampler.round_of(trial) == 1:
                assert len(finished_round0) == 4, "round 1 sampled before round 0 finished"
            else:
                finished_round0.append(trial.number)
        return score({d.name: v for d, v in zip(space, params.values())})

    study.optimize(objective, n_trials=8, n_jobs=2)
    trials = study.get_trials()
    assert [t.system_attrs[PHASE_ATTR] for t in trials].count(1) == 4
    box = next(t.system_attrs[BOX_ATTR] for t in trials if t.system_attrs[PHASE_ATTR] == 1)
    assert box["dropout"] != {"low": 0.0, "high": 0.5}  # zoomed on round 0's results


def test_optimize_with_n_jobs_and_storage_resumes_to_the_total(tmp_path):
    url = f"sqlite:///{tmp_path}/hpo.db"
    optimize(score, SPACE, strategy="random", trials=4, storage=url, study="s", n_jobs=2)
    result = optimize(score, SPACE, strategy="random", trials=6, storage=url, study="s")
    assert len(result.trials) == 6


def test_public_names():
    assert trainlab.search.optimize is optimize and trainlab.search.Search is Search


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "bayes"}, "strategy: must be one of grid, random"),
        ({"direction": "max"}, "direction: must be 'maximize' or 'minimize', got 'max'"),
        ({"space": {"lr": "loguniform(0, 1)"}}, "space['lr']: loguniform needs low > 0"),
        ({"space": {"lr": "gauss(0, 1)"}}, "space['lr']: unknown distribution 'gauss'"),
        ({"space": {}}, "space: give a dict of parameter names"),
        ({"trials": 0}, "trials: must be an integer >= 1, got 0"),
        ({"fidelity": (5, 1)}, "fidelity: must be (low, high) integers"),
        ({"rounds": 0}, "rounds: must be >= 1, got 0"),
        ({"storage": 3}, "storage: must be a URL"),
        ({"pruner": "hyperband"}, "pruner: must be one of none, median, halving"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_argument(kwargs, message):
    args = {"space": SPACE, **kwargs}
    with pytest.raises(UserError) as info:
        optimize(score, trials=args.pop("trials", 3), **args)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_auto_never_proposes_again_next_to_a_pruned_trial():
    """The GP models complete trials only; auto keeps its proposals away from pruned ones (a
    diverged training run is PRUNED), instead of asking for the same bad point again."""
    # lag 0: each trial sees the one before it pruned (with a lag it sees it running a while)
    search = Search({"lr": "loguniform(1e-4, 1)"}, strategy="auto", trials=12, seed=0, lag=0)
    while search.remaining:
        number, params = search.ask()
        if params["lr"] > 0.1:  # diverges: no value
            search.tell(number, None, pruned=True)
        else:
            search.tell(number, math.log10(params["lr"]))  # better and better up to the edge
    pruned = [
        math.log10(t.params["lr"])
        for t in search.study.get_trials()
        if t.state == optuna.trial.TrialState.PRUNED
    ]
    gaps = [abs(a - b) for i, a in enumerate(pruned) for b in pruned[i + 1 :]]
    assert all(gap > 0.02 * 4 for gap in gaps)
    assert search.result().best_params["lr"] > 0.01


def test_the_examples_of_docs_search_md_run_as_written(capsys):
    """docs/search.md's code blocks are what a user copies: they run, and find the optimum."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "search.md").read_text()
    first, ask_tell = re.findall(r"```python\n(.*?)```", text, re.S)[:2]
    exec(first, {})
    best = eval(capsys.readouterr().out.split("}")[0] + "}")  # printed best_params
    assert abs(math.log10(best["lr"]) + 2.5) < 0.3 and abs(best["dropout"] - 0.2) < 0.1

    def my_training(params, epochs):  # the reader's own training: loss lowest at lr 10**-2.5
        return (math.log10(params["lr"]) + 2.5) ** 2 / epochs

    exec(ask_tell, {"my_training": my_training})
    assert "'lr'" in capsys.readouterr().out


def test_failed_trials_count_toward_the_budget_so_an_always_failing_objective_ends(tmp_path):
    calls = []
    result = optimize(lambda p: calls.append(p), SPACE, strategy="random", trials=3)
    assert len(calls) == 3 and result.best_params is None and result.best_value is None
    assert [t.state for t in result.trials] == [optuna.trial.TrialState.FAIL] * 3

    def crashes_once(params):
        calls.append(params)
        if len(calls) == 1:
            raise ValueError("boom")
        return score(params)

    calls.clear()
    url = f"sqlite:///{tmp_path}/hpo.db"
    with pytest.raises(ValueError, match="boom"):
        optimize(crashes_once, SPACE, strategy="random", trials=4, storage=url, study="s")
    result = optimize(crashes_once, SPACE, strategy="random", trials=4, storage=url, study="s")
    states = [t.state.name for t in result.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"] and len(calls) == 4


def test_pruning_decisions_are_the_same_whether_the_study_is_kept_in_memory_or_stored(tmp_path):
    """An in-memory study's pruner reads a kept list of complete trials (`CompleteTrialsKept`),
    a stored one reads the storage on every report: the same trials are pruned at the same
    steps."""

    def objective(params, report):
        value = score(params)
        for step in range(1, 6):
            if report(step, value + 0.01 * step):
                return value
        return value

    kw = dict(strategy="random", trials=16, pruner="median", seed=2)
    kept = optimize(objective, SPACE, **kw)
    stored = optimize(objective, SPACE, storage=f"sqlite:///{tmp_path}/p.db", study="p", **kw)

    def outcome(result):
        return [(t.state.name, max(t.intermediate_values, default=0)) for t in result.trials]

    assert outcome(kept) == outcome(stored)
    assert [s for s, _ in outcome(kept)].count("PRUNED") >= 3


def test_two_searches_sharing_a_study_stop_at_its_total(tmp_path):
    """Two `optimize` calls (as two processes would) on one journal study: each stops once the
    study has `trials` trials, whoever ran them
    (each started when none were done, so without the check they would run 2 x trials)."""
    url = f"journal:///{tmp_path}/hpo.log"
    optimize(score, SPACE, strategy="random", trials=1, storage=url, study="s")  # create it
    go = threading.Barrier(2)

    def slow(params):
        time.sleep(0.02)
        return score(params)

    def worker(seed):
        go.wait()
        optimize(slow, SPACE, strategy="random", trials=12, storage=url, study="s", seed=seed)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    study = optuna.load_study(study_name="s", storage=trainlab.search.study.open_storage(url))
    assert 12 <= len(study.trials) <= 13  # a trial in flight when the other finished the last
