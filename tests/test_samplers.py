"""Our Optuna samplers (grid, random, coarse-to-fine, block), pruners and search plots."""

import math

import optuna
import pytest
from optuna.trial import TrialState

from trainlab.search.config import SearchConfig
from trainlab.search.space import parse_space
from trainlab.search.strategies import (
    BlockCoordinateSampler,
    CoarseToFineSampler,
    GridSampler,
    RandomSampler,
    grid_axes,
    make_pruner,
    make_sampler,
)
from trainlab.search.study import boxes

optuna.logging.set_verbosity(optuna.logging.WARNING)

PEAK = 10**-2.5


def space_of(**dists: str):
    return parse_space({k.replace("__", "."): v for k, v in dists.items()}, lambda p: True)


LR_DROPOUT = space_of(optim__lr="loguniform(1e-4, 1e-1)", model__dropout="uniform(0, 0.5)")
FULL = space_of(
    optim__lr="loguniform(1e-5, 1)",
    optim__betas__0="beta(0.8, 0.999)",
    model__width="logint(8, 512)",
    optim__name="choice([sgd, adam, rmsprop])",
)


def peaked(space):
    """Synthetic objective with its peak at lr = 10^-2.5 (and adam best); no training."""

    def objective(trial):
        values = space.suggest(trial)
        bonus = 0.2 if values.get("optim.name") == "adam" else 0.0
        return -((math.log10(values["optim.lr"]) + 2.5) ** 2) + bonus

    return objective


def run(sampler, space, n, direction="maximize"):
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(peaked(space), n_trials=n)
    return study


# --------------------------------------------------------------------------- grid


def test_grid_3x3_covers_the_nine_points():
    study = run(make_sampler(SearchConfig(strategy="grid", trials=9), LR_DROPOUT), LR_DROPOUT, 9)
    points = {(round(t.params["optim.lr"], 8), t.params["model.dropout"]) for t in study.trials}
    lrs = [1e-4, round(10**-2.5, 8), 1e-1]
    assert points == {(lr, d) for lr in lrs for d in (0.0, 0.25, 0.5)}


def test_grid_fits_the_budget_and_counts_choices():
    assert [len(a) for a in grid_axes(LR_DROPOUT, 8)] == [4, 2]
    assert [len(a) for a in grid_axes(LR_DROPOUT, 20)] == [5, 4]
    assert [len(a) for a in grid_axes(FULL, 24)] == [2, 2, 2, 3]
    assert [len(a) for a in grid_axes(LR_DROPOUT, 100, grid_points=3)] == [3, 3]
    widths = space_of(model__width="int(1, 3)")
    assert grid_axes(widths, 10) == [[1, 2, 3]]


def test_grid_reruns_the_point_of_a_failed_trial():
    sampler = GridSampler(LR_DROPOUT, trials=9)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    objective = peaked(LR_DROPOUT)
    for _ in range(4):
        trial = study.ask()
        study.tell(trial, objective(trial))
    failed = study.ask()
    LR_DROPOUT.suggest(failed)
    study.tell(failed, state=TrialState.FAIL)
    study.optimize(objective, n_trials=9 - 4)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({tuple(t.params.values()) for t in done}) == 9 == sampler.size
    assert done[-1].params == failed.params  # the failed point was re-run before cycling


# --------------------------------------------------------------------------- random


def test_random_is_reproducible_and_seeded():
    a = run(RandomSampler(seed=7), FULL, 15)
    b = run(RandomSampler(seed=7), FULL, 15)
    c = run(RandomSampler(seed=8), FULL, 15)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_random_values_do_not_depend_on_the_order_trials_run_in():
    sequential = run(RandomSampler(seed=1), FULL, 6)
    study = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=1))
    trials = [study.ask() for _ in range(6)]  # six workers ask at once ...
    for trial in reversed(trials):  # ... and sample in the opposite order
        FULL.suggest(trial)
    assert [t.params for t in trials] == [t.params for t in sequential.trials]


# --------------------------------------------------------------------------- coarse to fine


def c2f_config(**kw):
    base = dict(strategy="coarse-to-fine", trials=36, rounds=3, keep_top=3, seed=0)
    return SearchConfig(**(base | kw))


def test_coarse_to_fine_boxes_shrink_around_the_peak():
    space = space_of(optim__lr="loguniform(1e-5, 1)", model__dropout="uniform(0, 0.5)")
    cfg = c2f_config(epochs_per_round=[2, 4, 8])
    sampler = make_sampler(cfg, space)
    study = run(sampler, space, 36)
    rounds = boxes(study)
    assert len(rounds) == 3
    assert rounds[0]["optim.lr"] == (1e-5, 1.0)
    widths = [math.log10(b["optim.lr"][1] / b["optim.lr"][0]) for b in rounds]
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.5 * widths[0]
    for box in rounds[1:]:
        assert box["optim.lr"][0] < PEAK < box["optim.lr"][1]
    for t in study.trials:
        r = t.user_attrs["round"]
        assert r == t.number // 12
        low, high = rounds[r]["optim.lr"]
        assert low <= t.params["optim.lr"] <= high
        assert sampler.epochs_for_trial(t) == [2, 4, 8][r]
    assert abs(math.log10(study.best_params["optim.lr"]) + 2.5) < 0.3


def test_coarse_to_fine_zooms_in_the_transformed_space():
    sampler = make_sampler(c2f_config(), FULL)
    top = [
        {"optim.lr": 1e-3, "1-optim.betas.0": 0.01, "model.width": 64, "optim.name": "adam"},
        {"optim.lr": 1e-2, "1-optim.betas.0": 0.001, "model.width": 128, "optim.name": "adam"},
    ]
    box = sampler.zoom(top)
    # lr spans one decade, widened by 25% of it on each side (on the log scale)
    assert box["optim.lr"] == pytest.approx((10**-3.25, 10**-1.75))
    # 1 - beta spans 0.001..0.01, widened 0.25 decades each side, clipped at beta = 0.999
    assert box["optim.betas.0"] == pytest.approx((1 - 10**-1.75, 0.999))
    assert box["model.width"][0] <= 64 and box["model.width"][1] >= 128
    assert box["optim.name"] == ("adam",)
    # a single best trial still gets a box of at least zoom_min_width of the full range
    box = sampler.zoom(top[:1])
    assert math.log10(box["optim.lr"][1] / box["optim.lr"][0]) == pytest.approx(0.1 * 5)


def test_coarse_to_fine_survives_out_of_order_pruned_and_failed_trials():
    space = space_of(optim__lr="loguniform(1e-5, 1)")
    sampler = CoarseToFineSampler(space, seed=0, rounds=2, trials_per_round=6, keep_top=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    objective = peaked(space)
    round0 = [study.ask() for _ in range(6)]  # six workers start round 0 together
    values = {t.number: objective(t) for t in round0}
    assert [sampler.round_of(t) for t in round0] == [0] * 6
    study.tell(round0[0], state=TrialState.FAIL)
    study.tell(round0[1], state=TrialState.PRUNED)
    for trial in reversed(round0[2:]):  # finish out of order
        study.tell(trial, values[trial.number])
    retry = study.ask()  # the failed trial's slot is re-run in round 0
    assert sampler.round_of(retry) == 0
    study.tell(retry, objective(retry))
    nxt = study.ask()
    objective(nxt)
    assert sampler.round_of(nxt) == 1
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    top = sorted(finished, key=lambda t: -t.value)[:2]
    low, high = boxes(study)[1]["optim.lr"]
    assert all(low <= t.params["optim.lr"] <= high for t in top)
    assert (low, high) != (1e-5, 1.0)


def test_coarse_to_fine_keeps_the_box_when_a_round_had_no_complete_trial():
    space = space_of(optim__lr="loguniform(1e-5, 1)")
    sampler = CoarseToFineSampler(space, seed=0, rounds=3, trials_per_round=2, keep_top=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(2):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, state=TrialState.PRUNED)
    trial = study.ask()
    space.suggest(trial)
    assert sampler.round_of(trial) == 1
    assert boxes(study)[1] == boxes(study)[0] == {"optim.lr": (1e-5, 1.0)}


def test_coarse_to_fine_is_reproducible():
    a = run(make_sampler(c2f_config(seed=4), FULL), FULL, 24)
    b = run(make_sampler(c2f_config(seed=4), FULL), FULL, 24)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert boxes(a) == boxes(b)


# --------------------------------------------------------------------------- block coordinate


def test_block_sampler_tunes_one_block_and_holds_the_others():
    cfg = SearchConfig(
        strategy="block",
        trials=12,
        space={
            "optim.lr": "loguniform(1e-5, 1)",
            "optim.betas.0": "beta(0.8, 0.999)",
            "model.width": "logint(8, 512)",
            "optim.name": "choice([sgd, adam, rmsprop])",
        },
    )
    sampler = make_sampler(cfg, FULL)
    assert isinstance(sampler, BlockCoordinateSampler)
    assert sampler.blocks == [["optim.lr"], ["optim.betas.0", "model.width", "optim.name"]]
    study = run(sampler, FULL, 12)
    first, second = study.trials[:6], study.trials[6:]
    assert {t.user_attrs["block"] for t in first} == {0}
    assert {t.user_attrs["block"] for t in second} == {1}
    # block 0: only the learning rate moves; the rest sit at the middle of their ranges
    assert len({t.params["optim.lr"] for t in first}) == 6
    assert {t.params["model.width"] for t in first} == {64}
    assert {t.params["optim.name"] for t in first} == {"sgd"}
    held_beta = {t.params["1-optim.betas.0"] for t in first}
    assert len(held_beta) == 1 and held_beta.pop() == pytest.approx(math.sqrt(0.001 * 0.2))
    # block 1: the learning rate is held at the best one block 0 found; the others move
    best_lr = max(first, key=lambda t: t.value).params["optim.lr"]
    assert {t.params["optim.lr"] for t in second} == {best_lr}
    assert len({t.params["model.width"] for t in second}) > 1


# --------------------------------------------------------------------------- factories


def test_make_sampler_builds_each_strategy():
    kinds = {
        "grid": GridSampler,
        "random": RandomSampler,
        "coarse-to-fine": CoarseToFineSampler,
        "block": BlockCoordinateSampler,
        "tpe": optuna.samplers.TPESampler,
    }
    for strategy, cls in kinds.items():
        cfg = SearchConfig(strategy=strategy, trials=12)
        assert type(make_sampler(cfg, LR_DROPOUT)) is cls


def test_tpe_is_seeded():
    cfg = SearchConfig(strategy="tpe", trials=14, tpe_startup_trials=5, seed=2)
    a = run(make_sampler(cfg, FULL), FULL, 8)
    b = run(make_sampler(cfg, FULL), FULL, 8)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    c = run(make_sampler(cfg, FULL, worker=1), FULL, 3)
    assert c.trials[0].params != a.trials[0].params


def test_pruners_are_built_explicitly_and_prune_bad_trials():
    assert isinstance(make_pruner(SearchConfig()), optuna.pruners.NopPruner)
    halving = make_pruner(SearchConfig(pruner="halving", halving_reduction_factor=2))
    assert isinstance(halving, optuna.pruners.SuccessiveHalvingPruner)
    pruner = make_pruner(SearchConfig(pruner="median", pruner_startup_trials=3))
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    study = optuna.create_study(direction="maximize", sampler=RandomSampler(0), pruner=pruner)
    for _ in range(3):
        trial = study.ask()
        for epoch in (1, 2, 3):
            trial.report(0.5 + 0.1 * epoch, step=epoch)
        study.tell(trial, 0.8)
    bad = study.ask()
    bad.report(0.1, step=1)
    assert not bad.should_prune()  # the first epoch is warm-up
    bad.report(0.1, step=2)
    assert bad.should_prune()


# --------------------------------------------------------------------------- plots


def test_plots_write_images(tmp_path):
    from trainlab.search.study.plots import curves_from_study, plot_curves, plot_params

    sampler = make_sampler(c2f_config(trials=18), FULL)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    objective = peaked(FULL)

    def with_curves(trial):
        final = objective(trial)
        for epoch in (1, 2, 3):
            trial.report(final - 1.0 / epoch, step=epoch)
        if trial.number % 5 == 4:
            raise optuna.TrialPruned()
        return final

    study.optimize(with_curves, n_trials=18)
    curves = curves_from_study(study)
    assert len(curves) == 18 and all(len(c) == 3 for c in curves.values())
    for path in (
        plot_params(study, FULL, tmp_path / "params.png"),
        plot_curves(curves, tmp_path / "curves.png"),
    ):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_coarse_to_fine_prunes_a_trial_against_its_own_round_only():
    from trainlab.search.strategies import ROUND_ATTR, SameRoundPruner

    cfg = SearchConfig(
        strategy="coarse-to-fine",
        trials=12,
        rounds=2,
        pruner="median",
        pruner_startup_trials=2,
        pruner_warmup_epochs=0,
    )
    pruner = make_pruner(cfg)
    assert isinstance(pruner, SameRoundPruner)
    study = optuna.create_study(direction="maximize", sampler=RandomSampler(0), pruner=pruner)

    def finished(round_index: int, values: list[float]) -> None:
        trial = study.ask()
        study._storage.set_trial_system_attr(trial._trial_id, ROUND_ATTR, round_index)
        for epoch, v in enumerate(values, 1):
            trial.report(v, step=epoch)
        study.tell(trial, values[-1])

    for _ in range(3):  # a wide first round: strong curves in its good corner
        finished(0, [0.90, 0.95])
    for _ in range(2):  # the zoomed round so far: slower starts (smaller lr), fine at the end
        finished(1, [0.60, 0.97])
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, ROUND_ATTR, 1)
    trial.report(0.65, step=1)
    assert not trial.should_prune(), "at the median of its own round"
    assert optuna.pruners.MedianPruner(n_startup_trials=2, n_min_trials=1).prune(
        study, study.trials[-1]
    ), "against all rounds it would have been stopped"
    trial.report(0.30, step=2)
    assert trial.should_prune(), "below its own round's median"


@pytest.mark.parametrize("strategy", ["random", "coarse-to-fine"])
def test_a_driver_kept_list_of_complete_trials_prunes_as_the_study_does(tmp_path, strategy):
    """The search driver asks the pruner through CompleteTrialsKept (complete trials listed once
    per finished trial): every answer equals trial.should_prune() on the study itself, and a
    trial told COMPLETE counts from the next answer on (forget)."""
    from trainlab.search.strategies import ROUND_ATTR, CompleteTrialsKept
    from trainlab.search.study import open_storage

    cfg = SearchConfig(
        strategy=strategy, trials=20, pruner="median", pruner_startup_trials=2,
        pruner_warmup_epochs=0,
    )  # fmt: skip
    pruner = make_pruner(cfg)
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    kept = CompleteTrialsKept(study)
    reads = []
    study_get_trials = study.get_trials
    study.get_trials = lambda **kw: reads.append(kw) or study_get_trials(**kw)

    def ask():
        trial = study.ask()
        study._storage.set_trial_system_attr(trial._trial_id, ROUND_ATTR, 0)
        return trial

    answers, kept_reads = [], 0
    for curve in [[0.9, 0.95, 0.97], [0.5, 0.6, 0.7], [0.8, 0.9, 0.92]] * 2:
        done, running = ask(), [ask(), ask()]  # two trials report while one finishes
        for epoch, v in enumerate(curve, 1):
            done.report(v, step=epoch)
            for i, trial in enumerate(running):
                trial.report(0.75 - 0.2 * i, step=epoch)
                before = len(reads)
                ours = pruner.prune(kept, trial._get_latest_trial())
                kept_reads += len(reads) - before
                assert ours == trial.should_prune()
                answers.append(ours)
        for trial in running:
            study.tell(trial, state=TrialState.FAIL)
        study.tell(done, curve[-1])
        kept.forget()
    assert answers.count(True) >= 3 and answers.count(False) >= 3  # both answers compared
    assert kept_reads == 6 and len(answers) == 36  # listed once per finished trial, not per answer


def test_the_builder_tables_cover_exactly_the_names_and_build_each():
    from trainlab import names
    from trainlab.search.strategies import PRUNERS, SAMPLERS

    assert tuple(SAMPLERS) == names.STRATEGIES
    assert tuple(PRUNERS) == names.PRUNERS
    space = {"optim.lr": "loguniform(1e-4, 1e-1)", "model.dropout": "uniform(0, 0.5)"}
    for strategy in names.STRATEGIES:
        cfg = SearchConfig(strategy=strategy, trials=4, space=space)
        assert isinstance(make_sampler(cfg, LR_DROPOUT), optuna.samplers.BaseSampler)
        for pruner in names.PRUNERS:
            built = make_pruner(cfg.model_copy(update={"pruner": pruner}))
            assert isinstance(built, optuna.pruners.BasePruner)


@pytest.mark.parametrize("field,value", [("strategy", "bayes"), ("pruner", "hyperband")])
def test_an_unknown_strategy_or_pruner_is_one_line_naming_its_field(field, value):
    from trainlab.errors import UserError
    from trainlab.search.config import load_search_config

    with pytest.raises(UserError) as refused:
        load_search_config({field: value})
    message = str(refused.value)
    assert message.startswith(f"search.{field}: ") and repr(value) in message
    assert "\n" not in message
