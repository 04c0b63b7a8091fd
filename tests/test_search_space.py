"""The search space: distribution strings, scales, config values, overrides, the search config."""

import math
import re

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from trainlab.errors import UserError
from trainlab.search.config import SearchConfig, load_search_config
from trainlab.search.space import (
    apply_overrides,
    drop_unused,
    parse_distribution,
    parse_space,
    sample_value,
)
from trainlab.search.strategies import RandomSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

KNOWN = {"optim.lr", "optim.betas.0", "optim.betas.1", "optim.name", "model.width", "model.dropout"}


def known(path: str) -> bool:
    return path in KNOWN


def draws(text: str, n: int = 2000, seed: int = 0) -> list:
    """n config values of one dimension, drawn the way our samplers draw them."""
    dim = parse_space({"optim.lr": text}, known)["optim.lr"]
    rng = np.random.default_rng(seed)
    return [dim.to_config_value(sample_value(dim.distribution, rng)) for _ in range(n)]


# --------------------------------------------------------------------------- parsing


def test_parse_each_kind():
    assert parse_distribution("uniform(0, 0.5)").kind == "uniform"
    spec = parse_distribution(" loguniform( 1e-4 , 1e-1 ) ")
    assert (spec.kind, spec.low, spec.high) == ("loguniform", 1e-4, 1e-1)
    spec = parse_distribution("logint(8, 512)")
    assert (spec.low, spec.high) == (8, 512) and isinstance(spec.low, int)
    assert parse_distribution("int(1, 1e1)").high == 10
    assert parse_distribution("beta(0.9, 0.999)").kind == "beta"
    choice = parse_distribution("choice([sgd, 'adam', 0.1, 3, true, null])")
    assert choice.choices == ("sgd", "adam", 0.1, 3, True, None)
    assert parse_distribution("choice(momentum, 'a, b')").choices == ("momentum", "a, b")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("normal(0, 1)", "unknown distribution 'normal'"),
        ("uniform(0.5, 0.1)", "needs low < high"),
        ("uniform(1, 1)", "needs low < high"),
        ("loguniform(0, 1)", "low > 0"),
        ("logint(-2, 8)", "low > 0"),
        ("beta(0.9, 1)", "inside (0, 1)"),
        ("beta(0, 0.9)", "inside (0, 1)"),
        ("int(1.5, 3)", "integer bounds"),
        ("uniform(0, 1, 2)", "takes 2 numbers"),
        ("uniform(0, x)", "not a number"),
        ("uniform(0, nan)", "finite"),
        ("choice([])", "at least one value"),
        ("choice([a, b, a])", "twice"),
        ("0.01", "expected a distribution"),
    ],
)
def test_parse_errors(text, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_distribution(text)


def test_parse_space_names_the_field():
    with pytest.raises(UserError, match=r"^search\.space\.optim\.lr2: not a field"):
        parse_space({"optim.lr2": "loguniform(1e-4, 1e-1)"}, known)
    with pytest.raises(UserError, match=r"^search\.space\.optim\.lr: needs low < high"):
        parse_space({"optim.lr": "loguniform(1e-1, 1e-4)"}, known)
    with pytest.raises(UserError, match=r"^search\.space\.optim\.betas\.0: beta needs"):
        parse_space({"optim.betas.0": "beta(0.5, 1.5)"}, known)
    with pytest.raises(UserError, match=r"^search\.space: is empty"):
        parse_space({}, known)
    with pytest.raises(UserError) as info:
        parse_space({"optim.lr": "loguniform(0, 1)"}, known)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- dimensions


def test_optuna_distributions_live_in_the_transformed_space():
    space = parse_space(
        {
            "optim.lr": "loguniform(1e-4, 1e-1)",
            "optim.betas.0": "beta(0.9, 0.999)",
            "model.width": "logint(8, 512)",
            "model.dropout": "uniform(0, 0.5)",
            "optim.name": "choice([sgd, adam])",
        },
        known,
    )
    dists = space.distributions()
    assert dists["optim.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["1-optim.betas.0"] == FloatDistribution(0.001, 0.1, log=True)
    assert dists["model.width"] == IntDistribution(8, 512, log=True)
    assert dists["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert dists["optim.name"] == CategoricalDistribution(("sgd", "adam"))
    beta = space["optim.betas.0"]
    assert beta.param_name == "1-optim.betas.0" and beta.log
    assert beta.to_config_value(0.01) == pytest.approx(0.99)
    assert beta.to_optuna_value(0.99) == pytest.approx(0.01)
    assert beta.transform(0.01) == pytest.approx(-2.0)
    assert space["model.width"].to_config_value(64) == 64


def test_every_kind_stays_in_range():
    for text, low, high in [
        ("uniform(-1, 0.5)", -1, 0.5),
        ("loguniform(1e-5, 1e-1)", 1e-5, 1e-1),
        ("int(3, 7)", 3, 7),
        ("logint(2, 300)", 2, 300),
        ("beta(0.8, 0.9999)", 0.8, 0.9999),
    ]:
        values = draws(text, n=1000)
        assert min(values) >= low and max(values) <= high, text
        if "int" in text:
            assert all(isinstance(v, int) for v in values)
    assert set(draws("choice([a, b, c])", n=300)) == {"a", "b", "c"}


def test_loguniform_is_uniform_in_log():
    values = np.array(draws("loguniform(1e-4, 1e-1)"))
    geometric_mid = math.sqrt(1e-4 * 1e-1)
    assert abs(np.mean(values < geometric_mid) - 0.5) < 0.04
    # each decade gets a third of the samples, not (as uniform would give) 90% for the top one
    decades = np.histogram(np.log10(values), bins=[-4, -3, -2, -1])[0] / len(values)
    assert np.all(np.abs(decades - 1 / 3) < 0.04)


def test_beta_samples_one_minus_beta_on_a_log_scale():
    values = np.array(draws("beta(0.9, 0.999)"))
    assert abs(np.mean(values > 0.99) - 0.5) < 0.04  # as much effort on 0.99..0.999 as on 0.9..0.99
    assert values.min() >= 0.9 and values.max() <= 0.999


def test_integers_get_fair_shares():
    counts = np.bincount(draws("int(1, 4)", n=4000))[1:]
    assert np.all(np.abs(counts / 4000 - 0.25) < 0.03)  # endpoints included
    widths = np.array(draws("logint(8, 512)"))
    assert abs(np.mean(widths < 64) - 0.5) < 0.05


def test_suggest_reports_config_values_while_optuna_holds_sampler_values():
    space = parse_space(
        {"optim.betas.0": "beta(0.9, 0.999)", "optim.lr": "loguniform(1e-4, 1e-1)"}, known
    )
    study = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=3))
    trial = study.ask()
    values = space.suggest(trial)
    assert set(trial.params) == {"1-optim.betas.0", "optim.lr"}
    assert values["optim.betas.0"] == pytest.approx(1 - trial.params["1-optim.betas.0"])
    assert space.config_values(trial.params) == values


# --------------------------------------------------------------------------- overrides


def test_apply_overrides_sets_nested_paths_and_list_indices():
    base = {"optim": {"name": "adam", "betas": (0.9, 0.999)}, "model": {"width": 32}}
    out = apply_overrides(base, {"optim.betas.0": 0.8, "model.width": 64, "train.ema.decay": 0.99})
    assert out["optim"]["betas"] == [0.8, 0.999]
    assert out["model"]["width"] == 64
    assert out["train"] == {"ema": {"decay": 0.99}}
    assert base == {"optim": {"name": "adam", "betas": (0.9, 0.999)}, "model": {"width": 32}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"optim.betas.2": 0.5}, r"search\.space\.optim\.betas\.2: index 2 is past the end"),
        ({"optim.betas.x": 0.5}, r"search\.space\.optim\.betas\.x: optim\.betas is a list"),
        ({"optim.name.x": 1}, r"search\.space\.optim\.name\.x: optim\.name is a value"),
        ({"model.sizes.0": 1}, r"search\.space\.model\.sizes\.0: the config has no list"),
    ],
)
def test_apply_overrides_errors_name_the_path(values, message):
    with pytest.raises(UserError, match=message):
        apply_overrides({"optim": {"name": "adam", "betas": [0.9, 0.999]}, "model": {}}, values)


def test_drop_unused_judges_keys_against_the_sampled_choice():
    base = {"optim": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]}}
    seen = []

    def applies(path: str, config: dict) -> bool:
        seen.append(config["optim"]["name"])
        return not (path.startswith("optim.betas") and config["optim"]["name"] == "sgd")

    values = {"optim.name": "sgd", "optim.lr": 0.1, "optim.betas.0": 0.8}
    used, unused = drop_unused(values, base, applies)
    assert used == {"optim.name": "sgd", "optim.lr": 0.1}
    assert unused == {"optim.betas.0": 0.8}
    assert set(seen) == {"sgd"}
    used, unused = drop_unused({**values, "optim.name": "adam"}, base, applies)
    assert unused == {} and used["optim.betas.0"] == 0.8
    assert base["optim"]["name"] == "adam" and base["optim"]["betas"] == [0.9, 0.999]


# --------------------------------------------------------------------------- the search config


def test_search_config_defaults_and_yaml_strings():
    cfg = load_search_config(None)
    assert (cfg.strategy, cfg.trials, cfg.workers, cfg.executor, cfg.pruner) == (
        "auto",
        20,
        1,
        "local",
        "none",
    )
    assert (cfg.resolved_rounds(), cfg.round_size(), cfg.resolved_keep_top()) == (2, 10, 2)
    cfg = load_search_config({"trials": 100})
    assert (cfg.resolved_rounds(), cfg.round_size(), cfg.resolved_keep_top()) == (3, 33, 3)
    cfg = load_search_config({"trials": 20, "rounds": 3})
    assert cfg.round_size() == 6  # 20 // 3
    cfg = load_search_config({"zoom_margin": "1e-1", "trials": "1e2", "grid_points": "3"})
    assert (cfg.zoom_margin, cfg.trials, cfg.grid_points) == (0.1, 100, 3)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"trials": 0}, "search.trials: must be >= 1, got 0"),
        ({"workers": -1}, "search.workers: must be >= 1, got -1"),
        ({"strategy": "bayes"}, "search.strategy: input should be 'grid'"),
        ({"pruner": "hyperband"}, "search.pruner: input should be 'none'"),
        ({"tirals": 3}, "search.tirals: unknown key"),
        ({"space": {"optim.lr": "loguniform(0, 1)"}}, "search.space.optim.lr: loguniform needs"),
        ({"space": {"optim.lr": 0.01}}, "search.space.optim.lr: must be a distribution string"),
        ({"rounds": 2, "epochs_per_round": [1, 2, 3]}, "search.epochs_per_round: needs one entry"),
        ({"strategy": "coarse-to-fine", "trials": 2, "rounds": 3}, "search.rounds: coarse-to-"),
        (
            {"strategy": "coarse-to-fine", "trials": 2, "epochs_per_round": [1, 2, 4]},
            "search.epochs_per_round: gives 3 rounds",
        ),
        ({"space": {"optim.lr": "uniform(0, 1)"}, "blocks": [["optim.wd"]]}, "search.blocks:"),
        ({"zoom_min_width": 2}, "search.zoom_min_width: must be between 0 and 1"),
    ],
)
def test_search_config_errors_name_the_field(section, message):
    with pytest.raises(UserError) as info:
        load_search_config(section)
    assert str(info.value).startswith(message)


def test_blocks_default_to_the_learning_rate_first():
    cfg = SearchConfig(strategy="block", trials=12)
    paths = ["model.dropout", "optim.lr", "optim.name"]
    assert cfg.resolved_blocks(paths) == [["optim.lr"], ["model.dropout", "optim.name"]]
    cfg = SearchConfig(
        strategy="block", space={p: "uniform(0, 1)" for p in paths}, blocks=[["optim.name"]]
    )
    assert cfg.resolved_blocks(paths) == [["optim.name"], ["model.dropout", "optim.lr"]]
    assert cfg.block_size(2) == 10
    # no lr path: the log-scale real dimensions first, whatever their names
    space = {
        "alpha": "loguniform(1e-8, 1)",
        "width": "logint(16, 1024)",
        "rate": "loguniform(1e-5, 1)",
    }
    cfg = SearchConfig(strategy="block", space=space)
    assert cfg.resolved_blocks(list(space)) == [["alpha", "rate"], ["width"]]
