"""Settings declared once: every list of names a config or a command accepts is trainlab.names'
(config Literals, argparse choices, name -> builder tables), transfer's flags are one validated
model, and optim.lr reaches the update by one path (lr-find included)."""

import pytest
import torch

from trainlab import config, names, schedules
from trainlab.cli import build_parser, main
from trainlab.data import sources
from trainlab.engine.build import make_optimizer
from trainlab.errors import UserError
from trainlab.experiments import lr_find
from trainlab.experiments.transfer import TransferOptions, setup_transfer, transfer
from trainlab.nn import models
from trainlab.optim import registry


def _choices(command: str, flag: str) -> tuple[str, ...]:
    """The argparse choices of `trainlab COMMAND FLAG`."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    action = next(a for a in sub.choices[command]._actions if flag in a.option_strings)
    return tuple(action.choices)


def _literal(model: type, field: str) -> tuple[str, ...] | None:
    return names.choices_of(model.model_fields[field].annotation)


@pytest.mark.parametrize(
    "what, derived, listed",
    [
        ("optim.name", lambda: tuple(config.OPTIM_SCHEMAS), names.OPTIMIZERS),
        ("optim registry", lambda: tuple(registry.OPTIMIZERS), names.OPTIMIZERS),
        ("schedule.name", lambda: _literal(config.ScheduleConfig, "name"), names.SCHEDULES),
        ("schedule builders", lambda: tuple(schedules._BUILDERS), names.SCHEDULES),
        ("schedule.per", lambda: _literal(config.ScheduleConfig, "per"), names.SCHEDULE_PER),
        ("train.tta", lambda: _literal(config.TrainConfig, "tta"), names.TTA_MODES),
        ("eval --tta", lambda: _choices("eval", "--tta"), names.TTA_MODES),
        ("train.precision", lambda: _literal(config.TrainConfig, "precision"), names.PRECISIONS),
        ("train.device", lambda: _literal(config.TrainConfig, "device"), names.DEVICES),
        ("model.pool", lambda: _literal(config.ModelConfig, "pool"), names.POOLS),
        ("model.kind builders", lambda: tuple(models.BUILDERS), names.MODEL_KINDS),
        ("data.name", lambda: sources.EMBEDDED + sources.USER_FORMATS, config.DATA_NAMES),
        ("transfer --mode", lambda: _choices("transfer", "--mode"), names.TRANSFER_MODES),
        ("transfer --solver", lambda: _choices("transfer", "--solver"), names.TRANSFER_SOLVERS),
        (
            "transfer --normalize",
            lambda: _choices("transfer", "--normalize"),
            names.TRANSFER_NORMALIZATIONS,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_list_of_names_is_the_one_in_trainlab_names(what, derived, listed):
    assert derived() == listed, what


def test_a_table_that_misses_a_name_fails_at_import():
    with pytest.raises(AssertionError, match="the table lists"):
        names.covers({"sgd": 1}, ("sgd", "adam"), "optimizers")
    assert names.choices_of(names.literal(("a", "b")) | None) == ("a", "b")
    assert names.choices_of(int | None) is None


# --- transfer's flags: one model ---------------------------------------------------------------
@pytest.mark.parametrize(
    "flags, words",
    [
        (["--lr-mult", "20"], "--lr-mult: must be in (0, 10], got 20"),
        (["--lr-mult", "abc"], "--lr-mult: must be in (0, 10]"),
        (["--unfreeze", "two"], "--unfreeze: must be a number of blocks"),
        (["--mode", "linear", "--lr-mult", "0.5"], "--lr-mult: only with --mode finetune"),
        (["--resume"], "--resume: give the run directory to continue with --out"),
        (["--mode", "sideways"], "argument --mode: invalid choice"),
        (["--normalize", "old"], "argument --normalize: invalid choice"),
    ],
)
def test_a_bad_transfer_flag_is_one_line_naming_it_exit_2(tmp_path, capsys, flags, words):
    """Checked before anything is loaded: the run directory does not even exist."""
    argv = ["transfer", "--from", str(tmp_path / "nowhere"), "new.yaml", *flags]
    try:
        rc = main(argv)
    except SystemExit as exited:  # argparse's own checks (choices) exit from parse_args
        rc = exited.code
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_the_python_api_checks_the_same_model_before_loading(tmp_path):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(UserError, match=r"^--unfreeze: only with --mode finetune"):
        setup_transfer(nowhere, {}, unfreeze=1)
    with pytest.raises(UserError, match=r"^--normalize: must be one of pretrained, new"):
        setup_transfer(nowhere, {}, normalize="old")
    with pytest.raises(UserError, match=r"^--resume: give the run directory"):
        transfer(nowhere, {}, resume=True)
    options = TransferOptions.check(source=nowhere, unfreeze="ALL", lr_mult="0.5", mode=None)
    assert (options.mode, options.unfreeze, options.lr_mult) == ("finetune", "all", 0.5)
    assert options.source == str(nowhere) and options.finetune_lr_mult == 0.5
    assert TransferOptions.check(source="r", mode="finetune").finetune_lr_mult == 0.1


# --- optim.lr: one path --------------------------------------------------------------------------
def test_the_base_lr_is_the_optimizers_and_each_group_has_its_multiple():
    cfg = config.validate({"optim": {"name": "momentum", "lr": 0.03}})
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = make_optimizer(model, cfg, {"1.": 0.1})
    assert opt.defaults["lr"] == 0.03 and opt.defaults["momentum"] == 0.9
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert [lrs[id(p)] for p in model.parameters()] == pytest.approx([0.03, 0.03, 0.003, 0.003])


def test_lr_find_builds_the_runs_optimizer_at_exactly_each_lr(write_config, monkeypatch):
    """The optimizer lr-find scales is the run's own (make_optimizer) with optim.lr = lr: every
    group's lr is exactly lr (it was lr * 0.01 / 0.01, one ulp off, for sgd's default 0.01)."""
    seen = []

    def fake_range_test(model, batches, make, **kwargs):
        opt = make(model.parameters(), 1e-7)
        seen.append(([g["lr"] for g in opt.param_groups], opt.defaults, type(opt)))
        raise UserError("stop here")

    monkeypatch.setattr(lr_find, "lr_range_test", fake_range_test)
    cfg = write_config("data: {name: spirals}\nmodel: {width: 8}\noptim: {name: sgd}\n")
    with pytest.raises(UserError, match="stop here"):
        lr_find.run_lr_find(str(cfg), [], steps=20, start_lr=1e-7, end_lr=1.0, out=None)
    ((lrs, defaults, cls),) = seen
    assert lrs and all(lr == 1e-7 for lr in lrs) and defaults["lr"] == 1e-7
    assert cls.__module__.startswith("trainlab.optim")
