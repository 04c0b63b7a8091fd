"""Ensembles, snapshot ensembles and Polyak (EMA) averaging: the arithmetic, the files a run
keeps, resume, `trainlab ensemble` and its bad inputs."""

import json
import shutil
import types

import pytest
import torch
from torch import nn

import trainlab
from trainlab import schedules
from trainlab.cli import main
from trainlab.engine import load_run
from trainlab.engine.averaging import EMA, ema_update, recompute_batch_norm
from trainlab.engine.checkpoints import load_checkpoint
from trainlab.engine.evaluate import average_proba
from trainlab.errors import UserError
from trainlab.experiments.ensemble import evaluate_members
from trainlab.smoothing import debiased_decay

SPIRALS = (
    "data: {name: spirals}\nmodel: {kind: mlp, width: 32, depth: 2}\n"
    "optim: {name: adam, lr: 1e-2}\ntrain: {epochs: 4, batch_size: 64}\n"
)


def run_json(capsys, argv):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, (json.loads(captured.out) if captured.out.strip() else None), captured.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished spirals runs: A with EMA and 2 snapshots, B a narrower plain MLP."""
    root = tmp_path_factory.mktemp("runs")
    cfg = {
        "data": {"name": "spirals"},
        "model": {"kind": "mlp", "width": 32, "depth": 2},
        "optim": {"name": "adam", "lr": 1e-2},
        "train": {"epochs": 4, "batch_size": 64, "ema": 0.9, "snapshots": 2},
    }
    a = trainlab.train(cfg, out=root / "a", curves=False)
    b = trainlab.train(
        {
            **cfg,
            "model": {"kind": "mlp", "width": 16, "depth": 1},
            "train": {"epochs": 3, "batch_size": 64},
        },
        out=root / "b",
        curves=False,
    )
    return types.SimpleNamespace(root=root, a=a, b=b, cfg=cfg)


# ------------------------------------------------------------------------------------- EMA
def test_ema_update_is_the_polyak_average_by_hand():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))  # the initial weights do not count
        model.bias.fill_(0.0)
    trainer = types.SimpleNamespace(model=model, full_batch=False)
    ema = EMA(0.9)
    ema.on_train_start(trainer)
    for w, b in (([3.0, -2.0], 1.0), ([5.0, 0.0], -1.0)):  # two "optimizer steps"
        with torch.no_grad():
            model.weight.copy_(torch.tensor([w]))
            model.bias.fill_(b)
        ema.on_step_end(trainer, 0.0)
        if ema.updates == 1:  # m1 = 0.1 * w1, corrected: m1 / (1 - 0.9) = w1
            assert ema.averaged["weight"].tolist() == [[3.0, -2.0]]
    # m2 = 0.9 * m1 + 0.1 * w2 = [0.77, -0.18]; corrected: m2 / (1 - 0.81); bias: -0.01 / 0.19
    assert torch.allclose(ema.averaged["weight"], torch.tensor([[0.77 / 0.19, -0.18 / 0.19]]))
    assert torch.allclose(ema.averaged["bias"], torch.tensor([-0.01 / 0.19]))
    assert ema.updates == 2
    # the live weights are untouched, the state round-trips for resume
    assert model.weight.tolist() == [[5.0, 0.0]]
    again = EMA(0.9)
    again.load_state_dict(ema.state_dict())
    assert torch.equal(again.averaged["weight"], ema.averaged["weight"]) and again.updates == 2
    # long after the start the correction fades and the step is the plain Polyak average
    assert debiased_decay(ema.decay, 10_000) == pytest.approx(0.9)


def test_ema_update_foreach_matches_formula_on_many_tensors():
    gen = torch.Generator().manual_seed(0)
    avg = [torch.randn(5, 3, generator=gen) for _ in range(4)]
    live = [torch.randn(5, 3, generator=gen) for _ in range(4)]
    expected = [0.99 * a + 0.01 * w for a, w in zip(avg, live)]
    ema_update(avg, live, 0.99)
    for a, e in zip(avg, expected):
        assert torch.allclose(a, e, atol=1e-6)


def test_batch_norm_statistics_are_recomputed_for_the_weights():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    assert recompute_batch_norm(model, x, batch_size=64)
    with torch.no_grad():
        h = model[0](x)
    assert torch.allclose(model[1].running_mean, h.mean(0), atol=1e-5)
    assert torch.allclose(model[1].running_var, h.var(0), atol=1e-4)
    assert model[1].momentum == 0.1  # restored
    assert not recompute_batch_norm(nn.Linear(3, 3), x, 64)


def test_train_with_ema_reports_and_saves_averaged_weights(runs, capsys):
    res = runs.a.to_dict()
    assert 0.0 <= res["ema_test_accuracy"] <= 1.0 and res["ema_val_accuracy"] is not None
    ema = load_checkpoint(runs.root / "a" / "ema.pt")
    best = load_checkpoint(runs.root / "a" / "best.pt")
    assert not torch.equal(ema["model"]["blocks.0.0.weight"], best["model"]["blocks.0.0.weight"])
    # ema.pt has best.pt's layout: `trainlab ensemble --checkpoint ema.pt` reproduces the number
    rc, out, _ = run_json(
        capsys, ["ensemble", str(runs.root / "a"), "--checkpoint", "ema.pt", "--json"]
    )
    assert rc == 0 and out["test_accuracy"] == pytest.approx(res["ema_test_accuracy"])


# ------------------------------------------------------------------------------- snapshots
def test_snapshots_are_taken_at_cycle_ends_and_averaged(runs):
    run = load_run(runs.root / "a")
    files = sorted((runs.root / "a" / "snapshots").glob("snapshot-*.pt"))
    assert [f.name for f in files] == ["snapshot-1.pt", "snapshot-2.pt"]
    steps_per_epoch = -(-len(run.splits().x_train) // 64)
    ends = schedules.cycle_ends(4, steps_per_epoch, 2)
    assert [load_checkpoint(f)["step"] for f in files] == ends
    # the last snapshot is the final weights (cycle 2 ends with the run)
    last = load_checkpoint(runs.root / "a" / "last.pt")["model"]
    final = load_checkpoint(files[-1])["model"]
    assert all(torch.equal(last[k], final[k]) for k in last)
    # snapshot_test_accuracy is the accuracy of the mean of the snapshots' probabilities
    splits = run.splits()
    models = [run.network(f"snapshots/{f.name}") for f in files]
    proba = average_proba(models, splits.x_test)
    acc = (proba.argmax(1) == splits.y_test).float().mean().item()
    res = runs.a.to_dict()
    assert res["snapshots"] == 2 and res["snapshot_test_accuracy"] == pytest.approx(acc)


def test_ema_and_snapshots_survive_interrupt_and_resume(runs, tmp_path, interrupt_at):
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(runs.cfg, out=out, callbacks=[interrupt_at(3)], curves=False)
    resumed = trainlab.train(runs.cfg, out=out, resume=True, curves=False).to_dict()
    full = runs.a.to_dict()
    for key in ("test_accuracy", "ema_test_accuracy", "snapshot_test_accuracy"):
        assert resumed[key] == pytest.approx(full[key]), key
    a = load_checkpoint(runs.root / "a" / "ema.pt")["model"]
    b = load_checkpoint(out / "ema.pt")["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "snapshot-1.pt",
        "snapshot-2.pt",
    ]


# ------------------------------------------------------------------------------- ensembles
def test_ensemble_probabilities_are_exactly_the_mean():
    torch.manual_seed(0)
    models = [nn.Linear(4, 3), nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))]
    x = torch.randn(10, 4)
    y = torch.randint(0, 3, (10,))
    expected = (models[0](x).softmax(1) + models[1](x).softmax(1)) / 2
    got = average_proba(models, x, batch_size=3)  # batches of 3 give the same numbers
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(10))
    singles, acc = evaluate_members(models, x, y)
    assert acc == pytest.approx((expected.argmax(1) == y).float().mean().item())
    assert singles[0] == pytest.approx((models[0](x).argmax(1) == y).float().mean().item())


def test_ensemble_command_table_and_json(runs, capsys):
    a, b = str(runs.root / "a"), str(runs.root / "b")
    rc, out, err = run_json(capsys, ["ensemble", a, b, "--json"])
    assert rc == 0
    assert [m["run_dir"] for m in out["members"]] == [a, b]
    assert out["members"][0]["test_accuracy"] == pytest.approx(runs.a.test_accuracy)
    assert out["members"][1]["test_accuracy"] == pytest.approx(runs.b.test_accuracy)
    assert 0.0 <= out["test_accuracy"] <= 1.0 and out["size"] == 2
    assert "ensemble" in err  # the table goes to stderr with --json
    rc = main(["ensemble", a, b])
    assert rc == 0 and "ensemble" in capsys.readouterr().out


def test_train_ensemble_members_and_resume(write_config, tmp_path, capsys):
    cfg = write_config(SPIRALS)
    top = tmp_path / "ens"
    argv = [
        "train",
        str(cfg),
        "--out",
        str(top),
        "--set",
        "train.ensemble=2",
        "--set",
        "train.members=[{}, {model.width: 16}]",
        "--json",
    ]
    rc, res, _ = run_json(capsys, argv)
    assert rc == 0
    assert {"test_accuracy", "ensemble_test_accuracy", "members"} <= set(res)
    assert [m["seed"] for m in res["members"]] == [0, 1]
    assert res["test_accuracy"] == res["members"][0]["test_accuracy"]
    assert load_run(top / "members/1").config.model.width == 16
    assert load_run(top / "members/0").config.train.ensemble is None
    assert json.loads((top / "result.json").read_text()) == res
    # the same number from `trainlab ensemble` over the members (or the ensemble run itself)
    rc, ens, _ = run_json(capsys, ["ensemble", str(top), "--json"])
    assert rc == 0 and ens["test_accuracy"] == pytest.approx(res["ensemble_test_accuracy"])
    # and from `trainlab eval` of the ensemble run
    rc, ev, _ = run_json(capsys, ["eval", str(top), "--json"])
    assert rc == 0 and ev["members"] == 2
    assert ev["accuracy"] == pytest.approx(res["ensemble_test_accuracy"]) and ev["loss"] > 0
    assert main(["eval", str(top), "--tta", "flip"]) == 2
    # resume: a finished member is not retrained, a missing one is
    stamp = (top / "members/0/best.pt").stat().st_mtime_ns
    shutil.rmtree(top / "members/1")
    (top / "result.json").unlink()
    rc, again, _ = run_json(capsys, argv + ["--resume"])
    assert rc == 0 and (top / "members/0/best.pt").stat().st_mtime_ns == stamp
    assert again["ensemble_test_accuracy"] == pytest.approx(res["ensemble_test_accuracy"])


def test_ensemble_of_study_top_trials_follows_the_study_leaderboard(runs, tmp_path, capsys):
    """The top K come from the study's leaderboard (complete trials by value, then pruned ones;
    diverged ones left out), not re-ranked from the trials' result.json files."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from trainlab.search import study as studies

    study_dir = tmp_path / "search" / "mystudy"
    url = f"sqlite:///{tmp_path}/studies.db"
    study = optuna.create_study(storage=url, study_name="mystudy", direction="maximize")
    study.set_user_attr(studies.DIR_ATTR, str(study_dir.resolve()))
    complete, pruned = TrialState.COMPLETE, TrialState.PRUNED
    cases = [
        ("a", complete, 0.5, {}),
        ("b", complete, 0.9, {}),
        ("a", pruned, 0.99, {"outcome": "diverged"}),
        ("b", pruned, 0.7, {}),
    ]
    for i, (src, state, value, attrs) in enumerate(cases):
        study.add_trial(
            create_trial(
                state=state,
                value=value if state == complete else None,
                intermediate_values={1: value},
                user_attrs=attrs,
            )
        )
        d = study_dir / "trials" / f"{i:04d}"
        d.mkdir(parents=True)
        for name in ("config.yaml", "best.pt"):
            shutil.copy(runs.root / src / name, d / name)
        # result.json ranks them the other way: a filesystem ranking would pick 0000 and 0002
        result = {**getattr(runs, src).to_dict(), "val_accuracy": 1 - value}
        (d / "result.json").write_text(json.dumps(result))
    argv = ["ensemble", "--study", str(study_dir), "--storage", url, "--json"]
    rc, out, _ = run_json(capsys, [*argv, "--top", "3"])
    assert rc == 0
    assert [m["run_dir"].rsplit("/", 1)[-1] for m in out["members"]] == ["0001", "0000", "0003"]
    rc, out, _ = run_json(capsys, ["ensemble", "--study", "mystudy", "--storage", url, "--json"])
    assert rc == 0 and [m["run_dir"][-4:] for m in out["members"]] == ["0001", "0000", "0003"]
    (study_dir / "trials/0001/best.pt").unlink()  # no checkpoint: the next one in the ranking
    rc, out, _ = run_json(capsys, [*argv, "--top", "1"])
    assert rc == 0 and [m["run_dir"][-4:] for m in out["members"]] == ["0000"]


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "no_config",
        "no_checkpoint",
        "other_data",
        "wrong_model",
        "no_study",
        "top0",
        "members_too_many",
        "members_bad_path",
        "members_data",
        "snapshots_too_many",
    ],
)
def test_bad_input_is_one_line_exit_2(case, runs, tmp_path, write_config, capsys):
    a = str(runs.root / "a")
    bad = tmp_path / "bad"
    if case in ("no_checkpoint", "other_data", "wrong_model"):
        shutil.copytree(runs.root / "b", bad)
        text = (bad / "config.yaml").read_text()
        if case == "no_checkpoint":
            (bad / "best.pt").unlink()
        elif case == "other_data":
            (bad / "config.yaml").write_text(text.replace("seed: 0", "seed: 3", 1))
        else:
            (bad / "config.yaml").write_text(text.replace("width: 16", "width: 20"))
    elif case == "no_config":
        bad.mkdir()
    argv = {
        "missing": ["ensemble", a, str(tmp_path / "nope")],
        "no_config": ["ensemble", a, str(bad)],
        "no_checkpoint": ["ensemble", a, str(bad)],
        "other_data": ["ensemble", a, str(bad)],
        "wrong_model": ["ensemble", a, str(bad)],
        "no_study": ["ensemble", "--study", str(tmp_path / "nostudy")],
        "top0": ["ensemble", "--study", str(runs.root), "--top", "0"],
        "members_too_many": [
            "train",
            str(write_config(SPIRALS)),
            "--out",
            str(bad),
            "--set",
            "train.ensemble=2",
            "--set",
            "train.members=[{}, {}, {}]",
        ],
        "members_bad_path": [
            "train",
            str(write_config(SPIRALS)),
            "--out",
            str(bad),
            "--set",
            "train.ensemble=2",
            "--set",
            "train.members=[{model.widht: 3}]",
        ],
        "members_data": [
            "train",
            str(write_config(SPIRALS)),
            "--out",
            str(bad),
            "--set",
            "train.ensemble=2",
            "--set",
            "train.members=[{}, {data.seed: 5}]",
        ],
        "snapshots_too_many": [
            "train",
            str(write_config(SPIRALS)),
            "--out",
            str(bad),
            "--set",
            "train.snapshots=500",
        ],
    }[case]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    expected = {
        "missing": "does not exist",
        "no_config": "no config.yaml",
        "no_checkpoint": "no checkpoint best.pt",
        "other_data": "data.seed",
        "wrong_model": "does not fit",
        "no_study": "--study",
        "top0": "--top",
        "members_too_many": "train.members",
        "members_bad_path": "train.members.0",
        "members_data": "train.members.1: data.seed",
        "snapshots_too_many": "train.snapshots: must be <=",
    }[case]
    assert expected in err
    if case.startswith("members"):
        assert not bad.exists()  # refused before anything was written


def test_ensemble_refuses_a_given_model(tmp_path):
    with pytest.raises(UserError, match="train.ensemble"):
        trainlab.train(
            {"data": {"name": "spirals"}, "train": {"ensemble": 2, "epochs": 1}},
            out=tmp_path / "x",
            model=nn.Linear(2, 3),
        )


def test_each_member_sees_the_data_normalized_as_it_was_trained(runs, tmp_path, capsys):
    # a2 = a with its input statistics shifted by delta and the first layer's bias compensating:
    # the same function of the raw inputs, so only the saved normalizer tells them apart (as for
    # a transfer run that keeps its pretrained network's statistics)

    a, a2 = runs.root / "a", tmp_path / "a2"
    shutil.copytree(a, a2)
    ckpt = torch.load(a2 / "best.pt", weights_only=True)
    mean, std = ckpt["normalizer"]["mean"], ckpt["normalizer"]["std"]
    delta = torch.full_like(mean, 0.7)
    first = next(k for k, v in ckpt["model"].items() if k.endswith("weight") and v.ndim == 2)
    weight = ckpt["model"][first]
    ckpt["model"][first.replace("weight", "bias")] += weight @ (delta / std).reshape(-1)
    ckpt["normalizer"]["mean"] = mean + delta
    torch.save(ckpt, a2 / "best.pt")
    rc, out, _ = run_json(capsys, ["ensemble", str(a), str(a2), "--json"])
    assert rc == 0
    accs = [m["test_accuracy"] for m in out["members"]]
    assert accs == pytest.approx([runs.a.test_accuracy] * 2)
    assert out["test_accuracy"] == pytest.approx(runs.a.test_accuracy)
