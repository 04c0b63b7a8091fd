"""The dashboard's safety over a real server: nothing outside DIR is read through a symlink,
every answer carries the Content-Security-Policy, only requests addressed to this server are
answered (DNS rebinding), one damaged run never takes a page down, and a bad --port, --host or
an over-long URL is a clear answer, never a 500 or a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from dashboard_http import get, get_json, request
from test_dashboard_api import add_trials, write_run

from trainlab.cli import main
from trainlab.dashboard.runs import RunReader
from trainlab.dashboard.server import CSP, Dashboard, Guard

optuna.logging.set_verbosity(optuna.logging.WARNING)

SECRETS = (b"TOP-SECRET", b"0.1234567", b"777777", b"0.31415")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("safety")
    root, outside = tmp / "runs", tmp / "outside"
    outside.mkdir()
    # the secrets: files and a run outside DIR that links inside DIR point to
    (outside / "secret.yaml").write_text("token: TOP-SECRET-CONFIG\n")
    (outside / "secret.json").write_text(
        json.dumps({"stopped_reason": "completed", "test_accuracy": 0.1234567, "advice": []})
    )
    (outside / "secret.jsonl").write_text('{"epoch": 777777, "val_accuracy": 0.31415}\n')
    (outside / "best.yaml").write_text("# TOP-SECRET-BEST\n")
    write_run(outside / "run", epochs=2, steps=3)
    (outside / "run" / "config.yaml").write_text("note: TOP-SECRET-MEMBER\n")
    add_trials(f"sqlite:///{outside}/other.db", "hidden-TOP-SECRET", 1, outside / "search")

    write_run(root / "good", epochs=3, steps=10)
    write_run(root / "linkcfg", epochs=2, steps=3)
    (root / "linkcfg" / "config.yaml").unlink()
    (root / "linkcfg" / "config.yaml").symlink_to(outside / "secret.yaml")
    write_run(root / "linkres", epochs=2, steps=3)
    (root / "linkres" / "result.json").unlink()
    (root / "linkres" / "result.json").symlink_to(outside / "secret.json")
    write_run(root / "linkmetrics", epochs=2, steps=3, finished=False)
    (root / "linkmetrics" / "metrics.jsonl").unlink()
    (root / "linkmetrics" / "metrics.jsonl").symlink_to(outside / "secret.jsonl")
    write_run(root / "ens", epochs=2, steps=3)
    write_run(root / "ens" / "members" / "0", epochs=2, steps=3)
    (root / "ens" / "members" / "1").symlink_to(outside / "run")
    study_dir = root / "search" / "toy"
    add_trials(f"sqlite:///{root}/trainlab.db", "toy", 2, study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "best.yaml").symlink_to(outside / "best.yaml")
    (root / "other.db").symlink_to(outside / "other.db")

    # damaged runs: each must show as itself, with why, and hurt no other
    write_run(root / "badline", epochs=3, steps=3)
    lines = (root / "badline" / "metrics.jsonl").read_text().splitlines()
    (root / "badline" / "metrics.jsonl").write_text(f"{lines[0]}\n[1, 2]\n{lines[2]}\n")
    write_run(root / "badadvice", epochs=2, steps=3)
    result = {"stopped_reason": "completed", "test_accuracy": 0.5, "advice": "lower the lr"}
    (root / "badadvice" / "result.json").write_text(json.dumps(result))
    write_run(root / "badresult", epochs=2, steps=3)
    (root / "badresult" / "result.json").write_text("[1, 2]")
    write_run(root / "badyaml", epochs=2, steps=3)
    (root / "badyaml" / "config.yaml").write_text("optim: {name: adam\n")
    write_run(root / "listcfg", epochs=2, steps=3)
    (root / "listcfg" / "config.yaml").write_text("- 1\n- 2\n")
    write_run(root / "datecfg", epochs=2, steps=3)
    (root / "datecfg" / "config.yaml").write_text("when: 2024-01-01\n")
    write_run(root / "badsteps", epochs=2, steps=3)
    (root / "badsteps" / "steps.jsonl").write_text('{"step": "x", "loss": 1}\n{"step": 2}\n')
    board = Dashboard(root, port=0).start()
    yield board, root
    board.stop()


def test_files_linking_outside_dir_are_never_read(served):
    board, _ = served
    runs = {r["name"]: r for r in get_json(board, "/api/runs")}
    for name in ("linkcfg", "linkres", "linkmetrics"):
        assert "links outside the served directory" in runs[name]["error"]
    assert runs["linkres"]["test_accuracy"] is None and runs["linkmetrics"]["epoch"] is None
    assert runs["good"]["error"] is None
    ens = get_json(board, "/api/runs/ens")
    assert [m["name"] for m in ens["members"]] == ["ens/members/0"]  # not the link out
    assert get(board, "/api/runs/ens/members/1")[0] == 403
    assert [s["name"] for s in get_json(board, "/api/studies")] == ["toy"]  # other.db: a link
    assert get_json(board, "/api/studies/toy")["best_yaml"] is None
    paths = ["/api/runs", "/api/pictures", "/api/studies", "/api/studies/toy"]
    paths += [f"/api/runs/{name}" for name in runs]
    for path in paths:
        status, body = get(board, path)
        assert status == 200 and not any(s in body for s in SECRETS), (path, body[:300])


def test_a_damaged_run_shows_as_itself_with_why_and_the_others_untouched(served):
    board, _ = served
    runs = {r["name"]: r for r in get_json(board, "/api/runs")}
    assert runs["good"] == {
        **runs["good"],
        "kind": "run",
        "error": None,
        "status": "completed",
        "epoch": 3,
        "advice": ["try_decay"],
    }
    assert runs["ens"]["kind"] == "ensemble"
    assert runs["badline"]["epoch"] == 1 and runs["badline"]["error"] is None  # the rule
    assert "advice is not a list" in runs["badadvice"]["error"]
    assert runs["badadvice"]["advice"] == [] and runs["badadvice"]["status"] == "completed"
    assert runs["badresult"]["error"] == "result.json is not a JSON object"
    assert "config.yaml is not valid YAML" in runs["badyaml"]["error"]
    assert runs["listcfg"]["error"] == "config.yaml is a list, not a mapping of settings"
    for name, row in runs.items():
        assert row["error"] is None or "\n" not in row["error"]
        run = get_json(board, f"/api/runs/{name}")  # every run page answers
        assert run["error"] == row["error"] and isinstance(run["metrics"], list)
    bad = get_json(board, "/api/runs/badyaml")
    assert bad["config"] == "optim: {name: adam\n" and bad["config_values"] == {}
    assert [m["epoch"] for m in bad["metrics"]] == [1, 2]
    assert get_json(board, "/api/runs/badadvice")["advice_all"] == []
    assert get_json(board, "/api/runs/datecfg")["config_values"] == {"when": "2024-01-01"}
    assert get_json(board, "/api/runs/badsteps")["steps"]["step"] == [1, 2]
    assert get(board, "/")[0] == 200


def test_an_unforeseen_failure_is_that_runs_error(served, monkeypatch):
    board, _ = served
    steps, summary = RunReader.steps, RunReader._summary

    def fire(path: Path) -> None:
        if path.name == "good":
            raise RuntimeError("disk on fire\nsecond line")

    def broken_steps(self, path):  # noqa: ANN001, ANN202
        fire(path)
        return steps(self, path)

    def broken_summary(self, path, held):  # noqa: ANN001, ANN202
        fire(path)
        return summary(self, path, held)

    monkeypatch.setattr(RunReader, "steps", broken_steps)
    run = get_json(board, "/api/runs/good")
    assert run["error"] == "cannot be read: RuntimeError: disk on fire" and run["name"] == "good"
    monkeypatch.setattr(RunReader, "_summary", broken_summary)
    runs = {r["name"]: r for r in get_json(board, "/api/runs")}
    assert runs["good"]["error"] == "cannot be read: RuntimeError: disk on fire"
    assert runs["linkcfg"]["status"] == "completed" and runs["ens"]["error"] is None


@pytest.mark.parametrize(
    "path",
    ["/", "/run/good", "/api/runs", "/api/runs/good", "/api/studies/nope", "/static/app.js"]
    + ["/files/good/curves.png", "/files/../x.png", "/api/runs/" + "a" * 5000],
)
def test_every_answer_carries_the_content_security_policy(served, path):
    board, _ = served
    status, headers, _ = request(board, path)
    assert headers["content-security-policy"] == CSP, (path, status)
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP


def test_no_page_holds_inline_script_or_markup_from_data():
    static = Path(__file__).resolve().parents[1] / "src" / "trainlab" / "dashboard" / "static"
    html = (static / "index.html").read_text()
    assert html.count("<script") == html.count("<script src=") and " on" not in html.lower()
    for js in static.glob("*.js"):
        text = js.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in text, (js.name, sink)


@pytest.mark.parametrize(
    "host,status",
    [
        ("evil.example", 403),
        ("evil.example:8050", 403),
        ("127.0.0.1.evil.example", 403),
        ("localhost.evil.example:80", 403),
        ("", 403),
        ("localhost:8050", 200),
        ("LOCALHOST", 200),
        ("127.0.0.1:1", 200),
        ("127.3.4.5:8050", 200),
        ("[::1]:8050", 200),
    ],
)
def test_only_requests_addressed_to_this_server_are_answered(served, host, status):
    board, _ = served
    for path in ("/", "/api/runs", "/static/app.js"):
        got, headers, body = request(board, path, headers={"Host": host})
        assert got == status, (host, path, body[:100])
        assert headers["content-security-policy"] == CSP


def test_the_host_given_is_answered_and_a_wildcard_answers_addresses():
    assert Guard(None, "myhost.lan").allows("MyHost.lan:8050")
    assert not Guard(None, "myhost.lan").allows("10.0.0.5:8050")
    assert Guard(None, "::1").allows("[::1]") and Guard(None, "10.0.0.5").allows("10.0.0.5")
    anywhere = Guard(None, "0.0.0.0")
    assert anywhere.allows("10.0.0.5:8050") and anywhere.allows("[fe80::1]:8050")
    assert not anywhere.allows("evil.example:8050")


@pytest.mark.parametrize(
    "path",
    ["/api/runs/" + "a" * 100_000, "/files/" + "a" * 100_000, "/run/" + "a" * 100_000]
    + ["/api/runs/" + "a" * 5000, "/files/" + "a" * 5000 + ".png", "/api/runs/a/" + "b" * 300],
)
def test_a_very_long_url_is_no_such_thing(served, path):
    board, _ = served
    status, _ = get(board, path)
    assert status in (404, 414)


@pytest.mark.parametrize(
    "args,says",
    [
        (["--port", "99999"], "--port: 99999 is not a port"),
        (["--port", "-1"], "--port: -1 is not a port"),
        (["--host", ""], "--host: empty"),
        (["--host", "  "], "--host: empty"),
    ],
)
def test_a_bad_port_or_host_is_one_line(tmp_path, capsys, monkeypatch, args, says):
    monkeypatch.setattr(Dashboard, "run", lambda self: None)  # a mistake taken: never serve
    assert main(["dashboard", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
