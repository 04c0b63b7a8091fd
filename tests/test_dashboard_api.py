"""The dashboard's JSON API over a real server: shapes, downsampling, path safety, read-only,
and a search writing its SQLite study while the dashboard polls it is neither blocked nor hurt."""

from __future__ import annotations

import hashlib
import json
import math
import socket
import threading
import time
from pathlib import Path

import optuna
import pytest
from dashboard_http import get, get_json

from trainlab.cli import main
from trainlab.dashboard.server import Dashboard
from trainlab.dashboard.stepcurve import MAX_POINTS
from trainlab.locking import DirLock
from trainlab.search import study as studies

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"optim.lr": "loguniform(1e-4, 1)", "optim.betas.0": "beta(0.8, 0.99)"}
DISTS = {
    "optim.lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
    "1-optim.betas.0": optuna.distributions.FloatDistribution(0.01, 0.2, log=True),
}


def write_run(path: Path, epochs: int, steps: int, finished: bool = True, spike_at: int = -1):
    path.mkdir(parents=True)
    path.joinpath("config.yaml").write_text(
        f"data: {{name: spirals}}\noptim: {{name: adam, lr: {0.01 * (1 + epochs)}}}\n"
    )
    rows = [
        {"epoch": e, "train_accuracy": 0.5 + e / 100, "val_accuracy": 0.4 + e / 100, "lr": 0.01}
        for e in range(1, epochs + 1)
    ]
    path.joinpath("metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    losses = [(1e6 if s == spike_at else 2.0 / math.sqrt(s), s) for s in range(1, steps + 1)]
    path.joinpath("steps.jsonl").write_text(
        "".join(f'{{"step": {s}, "loss": {v}}}\n' for v, s in losses)
    )
    if finished:
        result = {
            "val_accuracy": 0.4 + epochs / 100,
            "test_accuracy": 0.5,
            "stopped_reason": "completed",
            "advice": [{"code": "try_decay", "message": "the loss plateaued"}],
        }
        path.joinpath("result.json").write_text(json.dumps(result))
    path.joinpath("curves.png").write_bytes(b"\x89PNG\r\n\x1a\nrun-picture")


def add_trials(url, name: str, n: int, study_dir: Path) -> None:  # noqa: ANN001
    """n finished trials of a coarse-to-fine-like study, as the driver records them (`url`: a
    storage URL or an opened storage)."""
    storage = studies.open_storage(url) if isinstance(url, str) else url
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.set_user_attr(
            studies.SIGNATURE_ATTR, {"space": SPACE, "strategy": "coarse-to-fine", "experiment": ""}
        )
        study.set_user_attr(studies.DIR_ATTR, str(study_dir.resolve()))
    start = len(study.trials)
    box = {"optim.lr": {"low": 1e-3, "high": 1e-1}, "optim.betas.0": {"low": 0.9, "high": 0.95}}
    for i in range(start, start + n):
        t = study.ask(DISTS)
        t.set_user_attr("round", i % 2)
        study._storage.set_trial_system_attr(t._trial_id, "trainlab:round", i % 2)
        study._storage.set_trial_system_attr(t._trial_id, "trainlab:box", box)
        for epoch in (1, 2):
            t.report(0.3 + 0.1 * epoch + 0.001 * i, epoch)
        study.tell(t, 0.5 + 0.001 * i)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash") / "runs"
    write_run(root / "alpha", epochs=3, steps=50_000, spike_at=30_001)
    write_run(root / "beta", epochs=2, steps=10, finished=False)
    write_run(root / "ens", epochs=2, steps=10)
    write_run(root / "ens" / "members" / "0", epochs=2, steps=10)
    (root / "ens" / "result.json").write_text(
        json.dumps({"stopped_reason": "completed", "ensemble_test_accuracy": 0.9, "advice": []})
    )
    study_dir = root / "search" / "toy"
    write_run(study_dir / "trials" / "0000", epochs=2, steps=10)
    add_trials(f"sqlite:///{root}/trainlab.db", "toy", 6, study_dir)
    (root / "lr-find").mkdir()
    (root / "lr-find" / "exp.png").write_bytes(b"\x89PNG\r\n\x1a\nlr-find")
    outside = root.parent / "secret.png"
    outside.write_bytes(b"\x89PNG\r\n\x1a\nTOP-SECRET")
    (root / "alpha" / "leak.png").symlink_to(outside)
    board = Dashboard(root, port=0).start()
    yield board, root
    board.stop()


def test_runs_index_lists_runs_with_status_and_not_trials(served):
    board, _ = served
    runs = {r["name"]: r for r in get_json(board, "/api/runs")}
    assert set(runs) == {"alpha", "beta", "ens"}  # members and trials are shown on their pages
    assert runs["alpha"] == {
        **runs["alpha"],
        "status": "completed",
        "epoch": 3,
        "val_accuracy": pytest.approx(0.43),
        "test_accuracy": 0.5,
        "advice": ["try_decay"],
    }
    assert runs["beta"]["status"] in ("running", "interrupted")  # just written, no result
    assert runs["beta"]["test_accuracy"] is None and runs["beta"]["val_accuracy"] == pytest.approx(
        0.42
    )


def test_run_detail_downsamples_keeping_the_spike_and_the_ends(served):
    board, _ = served
    run = get_json(board, "/api/runs/alpha")
    steps = run["steps"]
    assert steps["total"] == 50_000
    assert len(steps["step"]) <= MAX_POINTS == 2000
    assert len(steps["loss"]) == len(steps["smoothed"]) == len(steps["step"])
    assert steps["step"][0] == 1 and steps["step"][-1] == 50_000
    assert 1e6 in steps["loss"] and steps["step"][steps["loss"].index(1e6)] == 30_001
    assert steps["step"] == sorted(steps["step"])
    assert [m["epoch"] for m in run["metrics"]] == [1, 2, 3]
    assert run["advice_all"][0]["code"] == "try_decay"
    assert run["config_values"]["optim.name"] == "adam"
    assert "alpha/curves.png" in run["pictures"]
    ens = get_json(board, "/api/runs/ens")
    assert [m["name"] for m in ens["members"]] == ["ens/members/0"]
    assert ens["averaged"] == {"ensemble_test_accuracy": 0.9}


def test_a_held_lock_means_running(served):
    board, root = served
    lock = DirLock(root / "alpha", "busy")
    lock.acquire()
    try:
        assert get_json(board, "/api/runs/alpha")["status"] == "running"
    finally:
        lock.release()
    assert get_json(board, "/api/runs/alpha")["status"] == "completed"


def test_a_damaged_line_ends_what_the_dashboard_reads_as_the_trainer_does(tmp_path):
    """One rule for every reader (trainlab.rundir.parse_jsonl): a line that is not exactly one
    JSON object ends the readable part, even one holding two objects."""
    root = tmp_path / "runs"
    write_run(root / "cut", epochs=1, steps=3, finished=False)
    row = {"train_accuracy": 0.6, "val_accuracy": 0.5, "lr": 0.01}
    with (root / "cut" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"epoch": 2, **row}) + ", " + json.dumps({"epoch": 3, **row}) + "\n")
        f.write(json.dumps({"epoch": 4, **row}) + "\n")
    board = Dashboard(root, port=0).start()
    try:
        assert [m["epoch"] for m in get_json(board, "/api/runs/cut")["metrics"]] == [1]
        (entry,) = get_json(board, "/api/runs")
        assert entry["name"] == "cut" and entry["epoch"] == 1
    finally:
        board.stop()


def test_study_index_and_detail(served):
    board, _ = served
    (row,) = get_json(board, "/api/studies")
    assert row["name"] == "toy" and row["trials"] == 6 and row["status"] == "finished"
    assert row["best_value"] == pytest.approx(0.505) and row["best_trial"] == 5
    s = get_json(board, "/api/studies/toy")
    assert [d["path"] for d in s["space"]] == ["optim.lr", "optim.betas.0"]
    t = s["trials"][0]
    assert t["state"] == "complete" and t["curve"] == [[1, pytest.approx(0.4)], [2, 0.5]]
    assert 0.8 <= t["params"]["optim.betas.0"] <= 0.99  # the config's beta, not 1 - beta
    assert {t["group"] for t in s["trials"]} == {0, 1} and s["grouping"] == "round"
    assert s["boxes"][1]["optim.lr"] == [1e-3, 1e-1]
    assert s["leaderboard"][0]["trial"] == 5 and s["best"]["trial"] == 5
    assert s["trials"][0]["run"] == "search/toy/trials/0000"
    assert get(board, "/api/studies/nope")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/../secret.png",
        "/api/runs/%2e%2e/%2e%2e/etc",
        "/files/../secret.png",
        "/files/%2e%2e/secret.png",
        "/files/..%2fsecret.png",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/alpha/leak.png",  # a symlink pointing out of DIR
        "/files/alpha/./../../secret.png",
        "/static/../../../secret.png",
        "/static/%2e%2e/server.py",
    ],
)
def test_nothing_outside_dir_is_served(served, path):
    board, _ = served
    status, body = get(board, path)
    assert status in (403, 404), (status, body[:100])
    assert b"TOP-SECRET" not in body and b"root:" not in body


def test_pictures_under_dir_are_served_and_nothing_writes(served):
    board, root = served
    assert get_json(board, "/api/pictures") == ["lr-find/exp.png"]  # not the runs' own
    status, body = get(board, "/files/alpha/curves.png")
    assert status == 200 and body.endswith(b"run-picture")
    assert get(board, "/files/alpha/best.pt")[0] == 404  # only pictures and text records
    for method in ("POST", "PUT", "DELETE"):
        assert get(board, "/api/runs/alpha", method)[0] == 405
    db = root / "trainlab.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest(), sorted(p.name for p in root.iterdir())
    for _ in range(3):
        get_json(board, "/api/studies/toy"), get_json(board, "/api/runs")
    assert (
        hashlib.sha256(db.read_bytes()).hexdigest(),
        sorted(p.name for p in root.iterdir()),
    ) == before


def test_a_search_writing_its_study_is_not_blocked_while_the_dashboard_polls(tmp_path):
    """The writer uses the driver's storage (30 s busy timeout) and records 20 trials while the
    dashboard reads the same SQLite file as fast as it can: no write fails or waits long, every
    trial is recorded, and every poll sees a consistent, growing study."""
    root = tmp_path / "runs"
    root.mkdir()
    url = f"sqlite:///{root}/trainlab.db"
    add_trials(url, "live", 1, root / "search" / "live")
    board = Dashboard(root, port=0).start()
    errors, slowest, done = [], [0.0], threading.Event()

    def writer() -> None:
        try:
            storage = studies.open_storage(url)  # the driver's storage: 30 s busy timeout
            for _ in range(20):
                t0 = time.perf_counter()
                add_trials(storage, "live", 1, root / "search" / "live")
                slowest[0] = max(slowest[0], time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(repr(exc))
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    try:
        while not done.is_set():
            s = get_json(board, "/api/studies/live")
            complete = [t for t in s["trials"] if t["state"] == "complete"]
            assert all(len(t["curve"]) == 2 and t["value"] is not None for t in complete)
            assert all(t["state"] in ("complete", "running") for t in s["trials"])
            seen.append(len(complete))
    finally:
        thread.join()
        board.stop()
    assert errors == []
    assert slowest[0] < 2.0
    assert len(seen) >= 3 and seen == sorted(seen)
    storage = studies.open_storage(url)
    assert len(optuna.load_study(study_name="live", storage=storage).trials) == 21


def test_command_mistakes_are_one_line(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["dashboard", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--port: {port} is in use" in err


def test_another_host_is_said_and_train_prints_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Dashboard, "run", lambda self: None)  # bind, announce, do not serve
    assert main(["dashboard", str(tmp_path), "--host", "0.0.0.0", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and "(read-only)" in err
    spirals = Path(__file__).resolve().parents[1] / "examples" / "spirals-mlp.yaml"
    out = tmp_path / "mine" / "r1"
    assert main(["train", str(spirals), "--set", "train.epochs=1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"trainlab dashboard {tmp_path / 'mine'}" in err


def test_a_poll_reads_only_what_was_appended_and_sends_only_what_changed(tmp_path, monkeypatch):
    """metrics.jsonl and steps.jsonl are read on from where the last poll stopped: an unchanged
    poll parses nothing, an appended epoch parses that line only; `?since=E,S` gets only the
    epochs after E and no step curve while the steps are still S."""
    import trainlab.dashboard.tail as tail

    parsed: list[int] = []
    parse = tail.parse_jsonl
    monkeypatch.setattr(tail, "parse_jsonl", lambda text: parsed.append(len(text)) or parse(text))
    root = tmp_path / "runs"
    write_run(root / "grow", epochs=3, steps=3000, finished=False)
    board = Dashboard(root, port=0).start()
    try:
        first = get_json(board, "/api/runs/grow")
        assert first["metrics_total"] == 3 and first["steps"]["total"] == 3000
        parsed.clear()
        again = get_json(board, "/api/runs/grow?since=3,3000")
        assert parsed == []  # nothing read again
        assert again["metrics"] == [] and again["metrics_from"] == 3
        assert again["steps"] == {"total": 3000, "unchanged": True}
        assert again["epoch"] == 3 and again["val_accuracy"] == pytest.approx(0.43)
        line = json.dumps({"epoch": 4, "val_accuracy": 0.9, "train_accuracy": 0.9}) + "\n"
        with (root / "grow" / "metrics.jsonl").open("a") as f:
            f.write(line)
        with (root / "grow" / "steps.jsonl").open("a") as f:
            f.write('{"step": 3001, "loss": 0.5}\n')
        grown = get_json(board, "/api/runs/grow?since=3,3000")
        assert sorted(parsed)[:2] == [len('{"step": 3001, "loss": 0.5}\n'), len(line)]
        assert [m["epoch"] for m in grown["metrics"]] == [4] and grown["metrics_total"] == 4
        assert grown["steps"]["total"] == 3001 and grown["steps"]["step"][-1] == 3001
        assert grown["epoch"] == 4 and grown["val_accuracy"] == 0.9
        whole = get_json(board, "/api/runs/grow")  # without since: everything, as before
        assert [m["epoch"] for m in whole["metrics"]] == [1, 2, 3, 4]
        assert get(board, "/api/runs/grow?since=x")[0] == 400
    finally:
        board.stop()


def test_the_step_curve_is_bounded_and_the_same_read_at_once_or_as_it_grows(tmp_path):
    """Only the downsampled curve is kept (never the rows): at most MAX_POINTS points whatever
    the run's length, each bucket's extremes and both ends, and a file read in pieces as it
    grows gives the curve read at once (the smoothed loss carried across the pieces)."""
    from trainlab.dashboard.stepcurve import StepCurve
    from trainlab.dashboard.tail import Tail
    from trainlab.smoothing import smooth

    losses = [1e6 if s == 30_001 else 2.0 / math.sqrt(s) for s in range(1, 60_001)]
    lines = [f'{{"step": {s}, "loss": {v}}}\n' for s, v in enumerate(losses, 1)]
    whole, grown = tmp_path / "whole.jsonl", tmp_path / "grown.jsonl"
    whole.write_text("".join(lines))
    at_once = Tail(StepCurve).read(whole)
    growing = Tail(StepCurve)
    for a in range(0, len(lines), 7_777):
        with grown.open("a") as f:
            f.write("".join(lines[a : a + 7_777]))
        curve = growing.read(grown)
        assert curve.kept.shape[1] <= MAX_POINTS
    a, b = at_once.points(), curve.points()
    assert a["step"] == b["step"] and a["loss"] == b["loss"] and len(a["step"]) <= MAX_POINTS
    assert b["smoothed"] == pytest.approx(a["smoothed"], rel=1e-9)
    assert a["step"][0] == 1 and a["step"][-1] == 60_000 and 1e6 in a["loss"]
    expected = smooth(losses, 0.98)
    assert a["smoothed"] == pytest.approx([expected[int(s) - 1] for s in a["step"]], rel=1e-9)


def write_comparison(folder: Path, finished: bool = True) -> None:
    """A `trainlab compare` folder as compare() leaves it: <config>/config.yaml beside its seed
    runs, and (once finished) compare.json and compare.png."""
    for key in ("a", "b"):
        (folder / key).mkdir(parents=True)
        (folder / key / "config.yaml").write_text("data: {name: spirals}\n")
        for s in (0, 1):
            write_run(folder / key / f"seed-{s}", epochs=2, steps=0)
    if finished:
        pair = {"a": "a", "b": "b", "diff": 0.01, "ci_low": -0.1, "ci_high": 0.12}
        pair.update(p_value=0.5, better=None, verdict="no difference between a and b")
        configs = [{"name": k, "mean": 0.5, "std": 0.0, "n": 2, "runs": k} for k in "ab"]
        report = {"configs": configs, "pairs": [pair], "seeds": [0, 1], "metric": "test_accuracy"}
        (folder / "compare.json").write_text(json.dumps(report))
        (folder / "compare.png").write_bytes(b"\x89PNG\r\n\x1a\ncompare")


def test_a_compare_folder_is_a_comparison_with_its_verdicts_picture_and_runs(tmp_path):
    """Not an interrupted run per config: one entry of kind compare, whose detail is the
    comparison, its picture and links to every seed run (which open as runs)."""
    root = tmp_path / "runs"
    write_comparison(root / "cmp")
    write_comparison(root / "going", finished=False)
    board = Dashboard(root, port=0).start()
    try:
        rows = {r["name"]: r for r in get_json(board, "/api/runs")}
        assert set(rows) == {"cmp", "going"}  # not cmp/a, cmp/b: their configs
        assert rows["cmp"]["kind"] == rows["going"]["kind"] == "compare"
        assert rows["cmp"]["status"] == "completed" and rows["going"]["status"] == "interrupted"
        assert rows["cmp"]["runs"] == 4 and rows["cmp"]["error"] is None
        cmp = get_json(board, "/api/runs/cmp")
        assert cmp["comparison"]["pairs"][0]["verdict"] == "no difference between a and b"
        assert cmp["picture"] == "cmp/compare.png"
        assert [g["config"] for g in cmp["groups"]] == ["a", "b"]
        names = [r["name"] for r in cmp["groups"][0]["runs"]]
        assert names == ["cmp/a/seed-0", "cmp/a/seed-1"]
        assert get_json(board, "/api/runs/" + names[1])["test_accuracy"] == 0.5
        assert get_json(board, "/api/runs/going")["comparison"] is None
    finally:
        board.stop()


def test_importances_and_each_trials_best_epoch(tmp_path):
    """Parameter importances (Optuna's fANOVA) arrive on a later poll (computed in a thread,
    the page never waits); a diverged trial reports the val accuracy of its best epoch beside
    its best epoch's test accuracy, not its collapsed last one."""
    root = tmp_path / "runs"
    root.mkdir()
    url = f"sqlite:///{root}/trainlab.db"
    add_trials(url, "imp", 8, root / "search" / "imp")
    study = optuna.load_study(study_name="imp", storage=studies.open_storage(url))
    t = study.ask(DISTS)
    t.report(0.6, 1)
    t.report(0.1, 2)
    t.set_user_attr("outcome", "diverged")
    t.set_user_attr("test_accuracy", 0.58)
    study.tell(t, state=optuna.trial.TrialState.PRUNED)
    board = Dashboard(root, port=0).start()
    try:
        deadline = time.monotonic() + 120
        while True:
            s = get_json(board, "/api/studies/imp")
            if s["importances"]["params"] or time.monotonic() > deadline:
                break
            assert s["importances"]["note"] == "computing the importances..."
            time.sleep(0.5)
        found = s["importances"]
        assert {p["path"] for p in found["params"]} == {"optim.lr", "optim.betas.0"}
        assert found["trials"] == 8 and sum(p["importance"] for p in found["params"]) == (
            pytest.approx(1.0)
        )
        diverged = s["trials"][-1]
        assert diverged["state"] == "diverged" and diverged["value"] == pytest.approx(0.1)
        assert diverged["best_value"] == pytest.approx(0.6)
        row = next(r for r in s["leaderboard"] if r["trial"] == diverged["number"])
        assert row["best_value"] == pytest.approx(0.6) and row["test_accuracy"] == 0.58
        assert s["trials"][0]["best_value"] == s["trials"][0]["value"]
    finally:
        board.stop()
