"""Configs: defaults, YAML quirks, --set overrides, and one-line errors naming the field."""

import pytest

from trainlab.config import apply_overrides, known_path, load_config, validate
from trainlab.errors import UserError


def test_three_line_config_gets_lecture_defaults(write_config):
    text = "data: {name: spirals}\nmodel: {kind: mlp}\ntrain: {epochs: 3}\n"
    cfg = load_config(write_config(text))
    assert cfg.data.name == "spirals" and cfg.train.epochs == 3
    assert cfg.optim.name == "adam" and cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.9, 0.999)
    assert cfg.schedule.name == "constant"  # the lecture: no decay unless asked


def test_yaml_11_exponent_strings_are_floats(write_config):
    cfg = load_config(write_config("optim: {name: sgd, lr: 1e-3, weight_decay: 5e-4}\n"))
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.weight_decay == pytest.approx(5e-4)


def test_momentum_name_means_sgd_with_momentum_09():
    cfg = validate({"optim": {"name": "momentum"}})
    assert cfg.optim.momentum == 0.9


def test_set_overrides_by_dotted_path_including_list_index():
    cfg = load_config(
        None, ["model.width=64", "optim.lr=3e-3", "optim.betas.0=0.8", "data.classes=[0, 1, 2]"]
    )
    assert cfg.model.width == 64 and cfg.optim.lr == pytest.approx(3e-3)
    assert cfg.optim.betas == (0.8, 0.999)
    assert cfg.data.classes == [0, 1, 2]


def test_set_switching_optimizer_then_its_own_argument():
    cfg = load_config(None, ["optim.name=rmsprop", "optim.alpha=0.9"])
    assert cfg.optim.name == "rmsprop" and cfg.optim.alpha == 0.9


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["optim.lr=-1"], "optim.lr"),
        (["optim.lr=nan"], "optim.lr"),
        (["optim.name=adamax"], "optim.name"),
        (["optim.betas.1=1.0"], "optim.betas.1"),
        (["optim.eps=0"], "optim.eps"),
        (["model.kind=transformer"], "model.kind"),
        (["model.dropout=1.0"], "model.dropout"),
        (["train.epochs=0"], "train.epochs"),
        (["train.bogus=1"], "train.bogus"),
        (
            ["optim.momentum=0.9"],
            "optim.momentum",
        ),  # adam has no momentum: one schema per optimizer
        (["optim.betas.7=0.1"], "optim.betas.7"),
        (["model.stochastic_depth=0.2"], "model.stochastic_depth"),  # needs a resnet
    ],
)
def test_mistakes_name_the_field(overrides, field):
    with pytest.raises(UserError) as err:
        load_config(None, overrides)
    line = str(err.value)
    assert line.startswith(field) and "\n" not in line


def test_yaml_syntax_error_names_the_line(write_config):
    with pytest.raises(UserError, match=r"YAML syntax error .* at line 3"):
        load_config(write_config("data: {name: spirals}\nmodel: {kind: mlp\ntrain: {}\n"))


def test_missing_file():
    with pytest.raises(UserError, match="not found"):
        load_config("/nonexistent/exp.yaml")


def test_set_needs_key_value():
    with pytest.raises(UserError, match="key=value"):
        apply_overrides({}, ["optim.lr"])


def test_known_path_for_search_spaces():
    assert known_path("optim.lr") and known_path("optim.betas.0") and known_path("model.width")
    assert not known_path("optim.nope") and not known_path("model.widht")
    assert known_path("optim.momentum", "momentum") and not known_path("optim.momentum", "adam")


def test_switching_optimizer_names_the_key_the_new_one_lacks_and_lists_its_keys():
    with pytest.raises(UserError) as err:
        validate(
            apply_overrides({"optim": {"name": "momentum", "momentum": 0.9}}, ["optim.name=lbfgs"])
        )
    message = str(err.value)
    assert message.startswith("optim.momentum: unknown key for optim.name lbfgs")
    assert "max_iter" in message and "\n" not in message
