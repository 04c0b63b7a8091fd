"""`trainlab compare`: paired seeds, verdicts, resume, --until-decided, --study, user errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from trainlab.cli import main
from trainlab.errors import UserError
from trainlab.experiments.compare import compare
from trainlab.experiments.executors import Event

GOOD = (
    "data: {name: spirals}\nmodel: {kind: mlp, width: 32, depth: 2}\n"
    "optim: {name: adam, lr: 1e-2}\ntrain: {epochs: 4, batch_size: 64}\n"
)
SLOW = GOOD.replace("lr: 1e-2", "lr: 1e-6")  # far too low: stays near chance (1/3)


def run_cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(["compare", *argv])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_identical_configs_are_no_difference(write_config, tmp_path, capsys):
    a, b = write_config(GOOD, "a.yaml"), write_config(GOOD, "b.yaml")
    code, out, err = run_cli(
        capsys, str(a), str(b), "--seeds", "3", "--out", str(tmp_path / "cmp"), "--json"
    )
    assert code == 0
    assert [c["name"] for c in out["configs"]] == ["a", "b"]
    assert out["configs"][0]["values"] == out["configs"][1]["values"]  # same seeds, same runs
    assert len(set(out["configs"][0]["values"])) > 1  # ... but the seeds differ from each other
    (pair,) = out["pairs"]
    assert set(pair) >= {"a", "b", "diff", "ci_low", "ci_high", "p_value", "better"}
    assert pair["better"] is None and pair["diff"] == 0.0
    assert pair["verdict"].startswith("no difference")
    assert "no difference" in err
    for name in ("a", "b"):
        for s in range(3):
            assert (tmp_path / "cmp" / name / f"seed-{s}" / "result.json").is_file()
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0


def test_a_clearly_better_config_is_found_better(write_config, tmp_path, capsys):
    slow, good = write_config(SLOW, "slow.yaml"), write_config(GOOD, "good.yaml")
    code, out, _ = run_cli(
        capsys, str(slow), str(good), "--seeds", "3", "--workers", "2",
        "--out", str(tmp_path / "cmp"), "--json",
    )  # fmt: skip
    assert code == 0
    (pair,) = out["pairs"]
    assert pair["better"] == "b" and pair["diff"] > 0.3
    assert pair["ci_low"] > 0 and pair["p_value"] < 0.05
    assert pair["verdict"].startswith("good is better than slow by ")
    assert "3 paired seeds" in pair["verdict"]
    # the same from Python, in the other order: the winner is "a" now, diff is b - a
    again = compare([slow, good][::-1], seeds=3, out=tmp_path / "cmp")
    assert again["pairs"][0]["better"] == "a"
    assert again["pairs"][0]["diff"] == pytest.approx(-pair["diff"])
    assert again["configs"][0]["values"] == out["configs"][1]["values"]


def _result_times(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.glob("*/seed-*/result.json"))}


def test_rerun_and_resume_reuse_finished_runs(write_config, tmp_path):
    a, b = write_config(GOOD, "a.yaml"), write_config(SLOW, "b.yaml")
    out = tmp_path / "cmp"
    first = compare([a, b], seeds=2, out=out)
    before = _result_times(out)
    assert len(before) == 4
    messages = []
    second = compare([a, b], seeds=2, out=out, progress=lambda m, d, t: messages.append((m, d, t)))
    assert _result_times(out) == before  # nothing retrained
    assert messages == [("4 of 4 runs already done", 4, 4)]
    assert second["configs"] == first["configs"]
    # an interrupted run (no result.json) is trained again; more seeds train only the new ones
    (out / "a" / "seed-1" / "result.json").unlink()
    (out / "a" / "seed-1" / "junk").write_text("half-written")
    third = compare([a, b], seeds=3, out=out)
    after = _result_times(out)
    assert len(after) == 6
    unchanged = {k: v for k, v in before.items() if "a/seed-1" not in k}
    assert all(after[k] == v for k, v in unchanged.items())
    assert not (out / "a" / "seed-1" / "junk").exists()
    assert third["configs"][0]["values"][:2] == first["configs"][0]["values"]


class FakeExecutor:
    """Finishes each job at once with a test accuracy from `value(config, seed)`."""

    slots = 2

    def __init__(self, value):
        self.value, self.queue, self.submitted = value, [], []

    def free(self):
        return self.slots - len(self.queue)

    def submit(self, job):
        self.queue.append(job)
        self.submitted.append(job.config["train"]["seed"])

    def step(self, handle, timeout=0.5):
        for job in self.queue:
            result = {
                "test_accuracy": self.value(job.config, job.config["train"]["seed"]),
                "stopped_reason": "completed",
            }
            Path(job.out).mkdir(parents=True)
            (Path(job.out) / "result.json").write_text(json.dumps(result))
            handle(Event("done", job.number, result=result))
        self.queue = []

    def close(self, kill=False):
        pass


def _noisy(config, seed):
    """B beats A by 0.4 points on average; per-seed noise of about 0.6 points."""
    base = 0.95 + 0.006 * ((seed * 7919) % 13 - 6) / 6
    jitter = 0.006 * ((seed * 104729) % 11 - 5) / 5
    return base + (0.004 + jitter if config["optim"]["lr"] == 1e-2 else 0.0)


def test_until_decided_adds_seeds_in_batches_up_to_the_cap(write_config, tmp_path):
    a, b = write_config(SLOW, "a.yaml"), write_config(GOOD, "b.yaml")
    fake = FakeExecutor(_noisy)
    out = compare([a, b], seeds=4, until_decided=True, cap=10, out=tmp_path / "c", executor=fake)
    assert out["seeds"] == list(range(len(out["seeds"])))
    assert out["looks"] == 3  # 4, 8, 10 seeds
    assert out["confidence"] == pytest.approx(1 - 0.05 / 3)  # the level split over the looks
    # undecided at 4 and 8 seeds (at 98.3% each), decided at the cap
    assert out["seeds"] == list(range(10)) and out["decided"]
    assert out["pairs"][0]["better"] == "b"
    assert "98.33% CI" in out["pairs"][0]["verdict"]
    assert sorted(fake.submitted) == sorted(list(range(10)) * 2)  # each run once
    # one look at 8 seeds (p = 0.026) would have said "better"; the second of three looks,
    # at 98.3%, did not: the split keeps repeated looking honest
    once = compare([a, b], seeds=8, out=tmp_path / "c", executor=FakeExecutor(_noisy))
    assert once["pairs"][0]["better"] == "b"
    assert once["pairs"][0]["p_value"] == pytest.approx(0.0263, abs=1e-4)
    # with a clear difference the first look decides
    clear = FakeExecutor(lambda c, s: _noisy(c, s) + (0.05 if c["optim"]["lr"] == 1e-2 else 0))
    out2 = compare([a, b], seeds=4, until_decided=True, cap=10, out=tmp_path / "d", executor=clear)
    assert out2["decided"] and out2["seeds"] == [0, 1, 2, 3]
    assert out2["pairs"][0]["better"] == "b"


def test_until_decided_runs_to_the_cap_on_a_real_but_small_effect(write_config, tmp_path):
    a, b = write_config(SLOW, "a.yaml"), write_config(GOOD, "b.yaml")
    fake = FakeExecutor(_noisy)
    out = compare(
        [a, b], seeds=2, until_decided=True, cap=6, margin=0.0, out=tmp_path / "c", executor=fake
    )
    assert out["seeds"] == list(range(6)) and not out["decided"]
    (pair,) = out["pairs"]
    assert pair["better"] is None
    assert "no difference between a and b detectable with 6 seeds" in pair["verdict"]
    assert f"about {pair['seeds_needed']} would be needed to see" in pair["verdict"]
    assert pair["seeds_needed"] > 6


def test_holm_over_many_pairs_and_baseline_mode(write_config, tmp_path):
    cfgs = [write_config(GOOD.replace("lr: 1e-2", f"lr: {lr}"), f"c{i}.yaml")
            for i, lr in enumerate(["1e-2", "2e-2", "3e-2"])]  # fmt: skip

    def value(config, seed):
        return {1e-2: 0.90, 2e-2: 0.92, 3e-2: 0.905}[config["optim"]["lr"]] + 0.01 * (seed % 3)

    every = compare(cfgs, seeds=3, out=tmp_path / "e", executor=FakeExecutor(value))
    assert [(p["a"], p["b"]) for p in every["pairs"]] == [("c0", "c1"), ("c0", "c2"), ("c1", "c2")]
    assert every["correction"] == "holm"
    base = compare(cfgs, seeds=3, baseline=True, out=tmp_path / "e", executor=FakeExecutor(value))
    assert [(p["a"], p["b"]) for p in base["pairs"]] == [("c0", "c1"), ("c0", "c2")]
    for p in base["pairs"]:  # all differences are exact (sd 0): significant, adjusted or not
        assert p["better"] == "b" and p["p_value"] == 0.0


def test_config_at_metric_reads_another_key_of_the_same_runs(write_config, tmp_path):
    ema = write_config(GOOD.replace("batch_size: 64", "batch_size: 64, ema: 0.9"), "ema.yaml")
    out = compare([ema, f"{ema}@ema_test_accuracy"], seeds=2, out=tmp_path / "c")
    assert [c["name"] for c in out["configs"]] == ["ema", "ema@ema_test_accuracy"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir() if p.is_dir()) == ["ema"]
    runs = [json.loads((tmp_path / "c" / "ema" / f"seed-{s}" / "result.json").read_text())
            for s in range(2)]  # fmt: skip
    assert out["configs"][1]["values"] == [r["ema_test_accuracy"] for r in runs]


def _fake_study(root: Path, values: list[float]) -> tuple[Path, str]:
    """A search study in SQLite with complete trials of the given values and their folders."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from trainlab.search import study as studies

    study_dir = root / "search" / "mystudy"
    url = f"sqlite:///{root}/studies.db"
    study = optuna.create_study(storage=url, study_name="mystudy", direction="maximize")
    study.set_user_attr(studies.DIR_ATTR, str(study_dir.resolve()))
    for i, value in enumerate(values):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=value))
        trial = study_dir / "trials" / f"{i:04d}"
        trial.mkdir(parents=True)
        lr = ["1e-2", "1e-6", "5e-3"][i]
        (trial / "config.yaml").write_text(GOOD.replace("lr: 1e-2", f"lr: {lr}"))
        result = {"val_accuracy": value, "stopped_reason": "completed"}
        (trial / "result.json").write_text(json.dumps(result))
        (trial / "best.pt").write_bytes(b"")
    return study_dir, url


def test_compare_the_top_trials_of_a_study(tmp_path, capsys):
    study, url = _fake_study(tmp_path, [0.97, 0.5, 0.98])
    code, out, _ = run_cli(
        capsys, "--study", "mystudy", "--storage", url, "--top", "2", "--seeds", "2",
        "--out", str(tmp_path / "cmp"), "--json",
    )  # fmt: skip
    assert code == 0
    assert [c["name"] for c in out["configs"]] == ["0002", "0000"]  # best value first
    assert [c["config"] for c in out["configs"]] == [
        str(study / "trials" / t / "config.yaml") for t in ("0002", "0000")
    ]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["{a}"], "CONFIG"),
        (["{a}", "{b}", "--seeds", "1"], "--seeds"),
        (["{a}", "{b}", "--workers", "0"], "--workers"),
        (["{a}", "{b}", "--metric", "accuracy"], "--metric"),
        (["{a}", "{b}", "--metric", "test_loss", "--set", "x.y=1"], "x"),
        (["{a}", "{b}@val_loss"], "--metric"),
        (["{a}", "{a}"], "CONFIG"),
        (["{a}", "{b}", "--until-decided", "--seeds", "5", "--cap", "4"], "--cap"),
        (["{a}", "{b}", "--confidence", "95"], "--confidence"),
        (["{a}", "missing.yaml"], "config"),
        (["{a}", "--study", "x"], "--study"),
        (["--study", "mystudy", "--storage", "{url}", "--top", "1"], "--top"),
        (["--study", "nowhere", "--storage", "{url}"], "--study"),
    ],
)
def test_user_errors_are_one_line_exit_2(write_config, tmp_path, capsys, argv, field):
    a, b = write_config(GOOD, "a.yaml"), write_config(SLOW, "b.yaml")
    _, url = _fake_study(tmp_path, [0.9, 0.8, 0.7])
    names = {"a": a, "b": b, "url": url}
    code, out, err = run_cli(
        capsys, *[x.format(**names) for x in argv], "--out", str(tmp_path / "c")
    )
    assert code == 2 and out is None
    assert err.count("\n") == 1 and err.startswith(f"trainlab compare: {field}")


def test_a_changed_config_is_refused_in_the_same_folder(write_config, tmp_path):
    a, b = write_config(GOOD, "a.yaml"), write_config(SLOW, "b.yaml")
    fake = FakeExecutor(lambda c, s: 0.5 + 0.01 * s)
    compare([a, b], seeds=2, out=tmp_path / "c", executor=fake)
    with pytest.raises(UserError, match=r"^--out: .* holds runs of a different config"):
        compare([a, b], seeds=2, out=tmp_path / "c", overrides=["train.epochs=9"])


def test_an_empty_config_marker_left_by_a_kill_does_not_block_the_comparison(
    write_config, tmp_path
):
    """DIR/<config>/config.yaml cut to nothing (a kill while it was written) counts as absent:
    the comparison runs and writes the marker whole."""
    a, b = write_config(GOOD, "a.yaml"), write_config(SLOW, "b.yaml")
    (tmp_path / "c" / "a").mkdir(parents=True)
    (tmp_path / "c" / "a" / "config.yaml").write_text("")
    out = compare([a, b], seeds=2, out=tmp_path / "c", executor=FakeExecutor(lambda c, s: 0.5))
    assert [c["n"] for c in out["configs"]] == [2, 2]
    assert yaml.safe_load((tmp_path / "c" / "a" / "config.yaml").read_text())["optim"]["lr"] == 1e-2
    names = sorted(p.name for p in (tmp_path / "c" / "a").iterdir())
    assert names == ["config.yaml", "seed-0", "seed-1"]  # written atomically: no temporary file


def test_a_missing_metric_names_what_the_runs_have(write_config, tmp_path):
    a, b = write_config(GOOD, "a.yaml"), write_config(SLOW, "b.yaml")
    fake = FakeExecutor(lambda c, s: 0.5)
    with pytest.raises(UserError, match="no ema_test_accuracy .* they have test_accuracy"):
        compare([a, b], seeds=2, metric="ema_test_accuracy", out=tmp_path / "c", executor=fake)


def test_default_folder_is_named_after_the_configs(write_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = write_config(GOOD, "a.yaml"), write_config(SLOW, "b.yaml")
    out = compare([a, b], seeds=2, executor=FakeExecutor(lambda c, s: 0.5 + 0.1 * s))
    assert Path(out["out"]) == Path("runs/compare/a-vs-b")
    assert os.path.isfile("runs/compare/a-vs-b/compare.json")
