"""`trainlab dashboard --storage URL`: studies kept on a journal or PostgreSQL beside DIR's, a
trial whose folder is gone fetched from the study's artifact store (or said to be elsewhere),
and a bad --storage refused in one line with nothing made."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import optuna
import pytest
import yaml
from dashboard_http import get, get_json
from pg_server import free_port, new_database

from trainlab.cli import main
from trainlab.commands.dashboard import storage_hint
from trainlab.dashboard.server import Dashboard
from trainlab.errors import UserError
from trainlab.search.study import open_storage
from trainlab.search.study.urls import masked

EXPERIMENT = """
data: {name: spirals}
model: {kind: mlp, width: 8, depth: 1}
optim: {name: adam, lr: 1e-2}
train: {epochs: 2, batch_size: 128}
"""
SEARCH = {
    "strategy": "random",
    "trials": 2,
    "workers": 1,
    "seed": 3,
    "space": {"optim.lr": "loguniform(1e-3, 1e-1)"},
}


@pytest.fixture(scope="module")
def journal_study(tmp_path_factory):
    """A real `trainlab search` of 2 trials on a journal (artifact store beside its log); it
    prints the dashboard command for that storage."""
    tmp = tmp_path_factory.mktemp("journal")
    cfg = tmp / "exp.yaml"
    cfg.write_text(EXPERIMENT + yaml.safe_dump({"search": SEARCH}))
    url = f"journal:///{tmp}/shared/study.log"
    out = tmp / "runs" / "search" / "shared"
    args = ["search", str(cfg), "--storage", url, "--study", "shared", "--out", str(out)]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(args) == 0
    assert f"trainlab dashboard --storage {url}" in err.getvalue()
    return tmp, url


def test_a_journal_study_is_shown_and_a_removed_trial_is_fetched(journal_study):
    tmp, url = journal_study
    board = Dashboard(tmp / "runs", port=0, storages=[url], cache=tmp / "cache").start()
    try:
        (row,) = get_json(board, "/api/studies")
        assert row["name"] == "shared" and row["database"] == url and row["trials"] == 2
        assert row["status"] == "finished"
        study = get_json(board, "/api/studies/shared")
        assert [len(t["curve"]) for t in study["trials"]] == [2, 2]
        assert study["trials"][0]["run"] == "search/shared/trials/0000"  # here: served as is
        assert study["elsewhere"] is None
        # the trial's folder is gone from this machine: fetched from the artifact store
        shutil.rmtree(tmp / "runs" / "search" / "shared" / "trials" / "0000")
        study = get_json(board, "/api/studies/shared")
        name = study["trials"][0]["run"]
        assert name.startswith("@fetched/shared-") and name.endswith("/trials/0000")
        assert not (tmp / "cache").exists()  # nothing is fetched until the trial is opened
        run = get_json(board, f"/api/runs/{name}")
        assert run["name"] == name and len(run["metrics"]) == 2
        assert run["result"]["val_accuracy"] == pytest.approx(study["trials"][0]["value"])
        assert all(p.startswith(name + "/") for p in run["pictures"])
        status, body = get(board, f"/files/{name}/result.json")
        assert status == 200 and json.loads(body) == run["result"]
        assert get(board, "/files/@fetched/../../etc/passwd.json")[0] in (403, 404)
    finally:
        board.stop()


def test_a_trial_with_no_reachable_files_keeps_its_numbers(journal_study, tmp_path):
    """DIR is elsewhere and the artifact store is not here: the numbers come from the storage
    and the page says, in one line, where the files are."""
    _, url = journal_study
    store = Path(json.loads(_user_attrs(url, "shared"))["trainlab:artifacts"])
    store.rename(store.with_name("moved"))
    try:
        board = Dashboard(tmp_path, port=0, storages=[url], cache=tmp_path / "cache").start()
        try:
            study = get_json(board, "/api/studies/shared")
        finally:
            board.stop()
    finally:
        store.with_name("moved").rename(store)
    assert [t["run"] for t in study["trials"]] == [None, None]
    assert all(t["value"] is not None and len(t["curve"]) == 2 for t in study["trials"])
    assert study["elsewhere"].startswith("2 trials' files are on another machine")
    assert "\n" not in study["elsewhere"]


def _user_attrs(url: str, name: str) -> str:
    return json.dumps(optuna.load_study(study_name=name, storage=open_storage(url)).user_attrs)


@pytest.mark.parametrize(
    "url, says",
    [
        ("journal:///{tmp}/typo/none.log", "--storage: no journal"),
        ("sqlite:///{tmp}/typo/none.db", "--storage: no study database"),
        ("journal://relative.log", "--storage: journal://relative.log is not a journal URL"),
        ("postgresql+mysql://x", "--storage: postgresql+mysql://x is not a PostgreSQL URL"),
        ("not-a-url", "--storage: not-a-url is not a storage URL"),
    ],
)
def test_a_bad_storage_is_one_line_and_makes_nothing(tmp_path, monkeypatch, capsys, url, says):
    monkeypatch.chdir(tmp_path)
    url = url.format(tmp=tmp_path)
    assert main(["dashboard", "--storage", url, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert sorted(tmp_path.iterdir()) == []  # no journal, database, folder or runs/


def test_a_postgres_study_is_shown_with_its_password_masked(postgres_url, tmp_path):
    # a database of its own: the session's server also holds the search tests' studies
    url = new_database(postgres_url, "dashboard").replace("trainlab@", "trainlab:s3cret@")
    study = optuna.create_study(storage=open_storage(url), study_name="pg", direction="maximize")
    trial = study.ask({"optim.lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
    trial.report(0.5, 1)
    study.tell(trial, 0.5)
    running = study.ask()
    running.report(0.25, 1)
    board = Dashboard(tmp_path / "runs", port=0, storages=[url], need_root=False).start()
    try:
        status, body = get(board, "/api/studies")
        assert status == 200 and b"s3cret" not in body
        (row,) = json.loads(body)
        assert row["database"] == masked(url) and "trainlab:****@" in row["database"]
        assert row["status"] == "running" and row["trials"] == 2
        detail = get_json(board, "/api/studies/pg")
        assert [t["curve"] for t in detail["trials"]] == [[[1, 0.5]], [[1, 0.25]]]
        assert detail["trials"][0]["run"] is None and "2 trials' files" in detail["elsewhere"]
    finally:
        board.stop()
    closed = url.replace(url.split("@")[1].split("/")[0], f"127.0.0.1:{free_port()}")
    with pytest.raises(UserError, match=r"--storage: cannot open .*trainlab:\*\*\*\*@"):
        Dashboard(tmp_path, port=0, storages=[closed])  # nothing listens: one line, no password
    hint = storage_hint("postgresql://me:pw@db.lab:5432/studies")
    assert "trainlab dashboard --storage postgresql://me:****@db.lab:5432/studies" in hint
