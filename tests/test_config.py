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


def test_the_optimizer_defaults_written_as_data_are_the_classes_own():
    """trainlab.optimizer_defaults (read by the config without torch) holds each optimizer
    class's constructor defaults: argument for argument, in order, of the same type; and every
    config default is the class's with the lecture's settings on top."""
    import inspect

    from trainlab import optimizer_defaults
    from trainlab.optim import registry

    assert set(optimizer_defaults.CLASS_DEFAULTS) == set(registry.CLASSES)
    for name, cls in registry.CLASSES.items():
        params = inspect.signature(cls.__init__).parameters
        own = [(k, p.default) for k, p in params.items() if k not in ("self", "params")]
        written = list(optimizer_defaults.CLASS_DEFAULTS[name].items())
        assert written == own, name
        assert [type(v) for _, v in written] == [type(v) for _, v in own], name
    for name in registry.OPTIMIZERS:
        assert registry.defaults(name) == optimizer_defaults.defaults(name)
        section = validate({"optim": {"name": name}}).optim.model_dump(exclude={"name"})
        want = {k: v for k, v in registry.defaults(name).items() if k in section}
        assert section == want, name


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


# ------------------------------------------------------------------- one dotted-path module
@pytest.mark.parametrize(
    "path, message",
    [
        ("optim.betas.x", "optim.betas is a list; use an index such as optim.betas.0"),
        ("optim.betas.5", "index 5 is past the end of optim.betas (length 2)"),
        ("optim.name.x", "optim.name is a value ('adam'), not a section or list"),
        ("model..width", "not a dotted path such as optim.lr or optim.betas.0"),
    ],
)
def test_set_and_search_space_share_one_dotted_path_semantics(path, message):
    """`--set` and a search space's values go through trainlab.dotted: the same mistakes give
    the same message, each naming its own field."""
    from trainlab.search.space import apply_overrides as space_overrides

    base = {"optim": {"name": "adam", "betas": [0.9, 0.999]}}
    with pytest.raises(UserError) as by_set:
        apply_overrides(dict(base), [f"{path}=1"])
    with pytest.raises(UserError) as by_space:
        space_overrides(base, {path: 1})
    assert str(by_set.value) == f"{path}: {message}"
    assert str(by_space.value) == f"search.space.{path}: {message}"


def test_dotted_get_and_set():
    from trainlab.dotted import get_path, set_path, with_values

    root = {"optim": {"betas": (0.9, 0.999)}, "train": {"members": [{"a": 1}]}}
    assert get_path(root, "optim.betas.1") == 0.999 and get_path(root, "train.members.0.a") == 1
    assert get_path(root, "optim.nope", None) is None
    with pytest.raises(KeyError):
        get_path(root, "train.members.1")
    out = with_values(root, {"optim.betas.0": 0.8, "train.members.0.a": 2, "model.width": 8})
    assert out == {
        "optim": {"betas": [0.8, 0.999]},
        "train": {"members": [{"a": 2}]},
        "model": {"width": 8},
    }
    assert root["optim"]["betas"] == (0.9, 0.999) and root["train"]["members"][0]["a"] == 1
    with pytest.raises(UserError, match="the config has no list at optim.betas"):
        set_path({"optim": {}}, "optim.betas.0", 0.8)
    filled = {"optim": {}}
    set_path(filled, "optim.betas.0", 0.8, missing_list=lambda at: [0.9, 0.999])
    assert filled == {"optim": {"betas": [0.8, 0.999]}}


def test_one_validation_error_format_with_a_bounded_excerpt():
    from pydantic import ValidationError

    from trainlab.config import ExperimentConfig, format_validation_error
    from trainlab.search import config as search_config

    assert search_config.format_validation_error is format_validation_error
    with pytest.raises(ValidationError) as err:
        ExperimentConfig.model_validate({"train": {"members": [["x" * 10_000] * 10_000]}})
    line = format_validation_error(err.value)
    assert line.startswith("train.members.0: input should be a valid dictionary (got [")
    assert len(line) < 200
    with pytest.raises(ValidationError) as err:
        search_config.SearchConfig.model_validate({"strategy": "Bayes"})
    assert format_validation_error(err.value, "search").startswith(
        "search.strategy: input should be 'grid'"
    )


def test_a_huge_unknown_key_or_value_is_cut_in_the_message():
    with pytest.raises(UserError) as err:
        validate({"train": {"x" * 10**6: 1}})
    assert str(err.value) == f"train.{'x' * 37}...: unknown key"
    with pytest.raises(UserError) as err:
        validate({"model": {"kind": "y" * 10**6}})
    assert str(err.value).startswith("model.kind: must be one of") and len(str(err.value)) < 200


def test_plugin_names_and_their_args():
    cfg = validate({"model": {"kind": "mymodels:build", "args": {"hidden": 64}}})
    assert cfg.model.kind == "mymodels:build" and cfg.model.args == {"hidden": 64}
    cfg = validate({"data": {"name": "mydata:load", "args": {"n": 10}}})
    assert cfg.data.args == {"n": 10} and cfg.data.loader.workers == 0
    # a saved, fully written config of a plugin run loads again
    assert validate(cfg.model_dump(mode="json")) == cfg
    for raw, start in [
        ({"model": {"kind": "mymodels:build", "width": 64}}, "model.width: a plugin model"),
        ({"model": {"kind": "mymodels:build", "dropout": 0.5}}, "model.dropout: a plugin model"),
        ({"model": {"kind": "mlp", "args": {"a": 1}}}, "model.args: only for a plugin"),
        ({"model": {"kind": ":build"}}, "model.kind: an import path is"),
        ({"model": {"kind": "transformer"}}, "model.kind: must be one of mlp, cnn, resnet"),
        ({"data": {"name": "digits", "args": {"a": 1}}}, "data.args: only for a plugin"),
        ({"data": {"name": "mnist"}}, "data.name: must be one of spirals"),
        ({"data": {"name": "mydata:"}}, "data.name: an import path is"),
        ({"data": {"loader": {"workers": -1}}}, "data.loader.workers: input should be"),
        ({"train": {"precision": "fp16"}}, "train.precision: fp16 needs train.device cuda"),
        ({"train": {"precision": "int8"}}, "train.precision: input should be"),
    ]:
        with pytest.raises(UserError) as err:
            validate(raw)
        assert str(err.value).startswith(start), str(err.value)
    assert validate({"train": {"precision": "bf16"}}).train.precision == "bf16"
    assert known_path("model.args.hidden") and known_path("data.args.n")
