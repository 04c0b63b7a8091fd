"""Issue 27's cases through the CLI: nothing crashes, nothing hangs, nothing is silently wrong.
Each mistake is one line on stderr naming the option and exit status 2; no password printed."""

import pytest

from trainlab.cli import main

SEARCH = """data: {name: spirals}
model: {kind: mlp, width: 8, depth: 1}
train: {epochs: 1, batch_size: 32, log_steps: false}
search: {strategy: random, trials: 1, space: {optim.lr: "loguniform(1e-3, 1e-1)"}}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def one_line(capsys, code: int, command: str, start: str) -> str:
    """The one stderr line of a refused command (exit status 2)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"trainlab {command}: {start}"), lines
    return lines[0]


# ------------------------------------------------------------------------------ storage URLs
@pytest.mark.parametrize(
    "url, secret",
    [
        ("postgresql://u:p@ss@127.0.0.1:1/db", ("p@ss", "ss@")),  # the driver split at the 1st @
        ("postgresql://u:se:cr@et@127.0.0.1:1/db", ("se:cr", "cr@", "et@")),
        ("postgresql://u:pa/ss@127.0.0.1:1/db", ("pa/ss", "ss@")),
    ],
)
def test_a_password_with_at_is_never_printed(tmp_path, capsys, url, secret):
    (tmp_path / "s.yaml").write_text(SEARCH)
    line = one_line(capsys, main(["search", "s.yaml", "--storage", url]), "search", "--storage:")
    assert "u:****@127.0.0.1:1/db" in line and "127.0.0.1" in line, line
    assert not any(part in line for part in secret), line
    assert not (tmp_path / "runs").exists()


def test_an_unclosed_bracket_in_the_host_is_one_line(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SEARCH)
    code = main(["search", "s.yaml", "--storage", "postgresql://u:p@ss@[::1/db"])
    line = one_line(capsys, code, "search", "--storage:")
    assert "unclosed '['" in line and "p@ss" not in line and "ss@" not in line, line
