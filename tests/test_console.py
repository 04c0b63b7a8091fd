"""Tables away from a terminal (a pipe, `| tee`, a CI log): every cell on one line, compact
numbers (3 significant digits), a bounded width wider than rich's 80-column default."""

import io
import re

import pytest
import yaml
from rich.console import Console

from trainlab.cli import main
from trainlab.commands import tables
from trainlab.experiments.executors import InlineExecutor
from trainlab.search.running import driver

BASE = """
data: {name: spirals}
model: {kind: mlp, width: 16, depth: 1}
optim: {name: adamw, lr: 1e-2}
train: {epochs: 1, batch_size: 64}
"""
SPACE = {
    "optim.lr": "loguniform(1e-4, 1e-1)",
    "optim.weight_decay": "loguniform(1e-5, 1e-1)",
    "optim.betas.0": "beta(0.8, 0.99)",
    "model.dropout": "uniform(0, 0.5)",
    "train.batch_size": "choice([32, 64, 128])",
}
STATES = {"complete", "pruned", "diverged", "failed"}


def cells(line: str) -> list[str]:
    """A table line's cells (columns are at least two spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def table_after(lines: list[str], title: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the table whose title line starts with `title`."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header = next(i for i in range(start + 1, len(lines)) if lines[i].strip())
    assert set(lines[header + 1].strip()) == {"─"}  # the rule under the header
    rows = []
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        rows.append(cells(line))
    return cells(lines[header]), rows


def compact(cell: str) -> bool:
    """A number in at most 3 significant digits."""
    return float(cell) == float(f"{float(cell):.3g}")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")  # what rich assumes in a pipe or CI log
    monkeypatch.setattr(driver, "make_executor", lambda *a, **k: InlineExecutor())


def test_search_tables_stay_readable_when_stdout_is_not_a_terminal(tmp_path, capsys, in_tmp):
    spec = {"strategy": "random", "trials": 4, "seed": 0, "retest": 1, "retest_seeds": 2}
    cfg = tmp_path / "a-rather-long-study-name.yaml"
    cfg.write_text(BASE + yaml.safe_dump({"search": {**spec, "space": SPACE}}))
    assert main(["search", str(cfg)]) == 0
    lines = capsys.readouterr().out.splitlines()

    header, rows = table_after(lines, "leaderboard of a-rather-long-study-name")
    params = ["lr", "weight_decay", "betas.0", "dropout", "batch_size"]
    assert header[:3] == ["rank", "trial", "val acc"] and header[-2:] == ["s", "state"]
    assert sorted(header[3:-2]) == sorted(params)
    assert 80 < len(lines[lines.index(next(x for x in lines if "weight_decay" in x))])
    assert len(rows) == 4
    for row in rows:
        assert len(row) == len(header), row  # nothing folded into a second line
        named = dict(zip(header, row))
        assert named["state"] in STATES
        assert re.fullmatch(r"[01]\.\d{3}", named["val acc"])
        assert all(compact(named[p]) for p in params), row
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]

    header, rows = table_after(lines, "re-test of the best 1 configs")
    assert header[:3] == ["rank", "trial", "val acc"] and len(rows) == 1
    assert len(rows[0]) == len(header)
    assert re.fullmatch(r"[01]\.\d{3} ± [01]\.\d{3} \[[01]\.\d{3}, [01]\.\d{3}\]", rows[0][3])

    # one line per finished trial (a log has no live region), long lines unbroken
    assert sum(line.startswith("trial ") for line in lines) == 4
    best = [line for line in lines if line.startswith("best config: ")]
    assert len(best) == 1 and best[0].endswith("best.yaml)")
    assert max(len(line) for line in lines) <= tables.MAX_WIDTH


def test_print_table_widens_a_console_that_is_not_a_terminal_and_restores_it():
    out = io.StringIO()
    console = Console(file=out, width=80)
    wide = tables.table("wide", [("path", "left"), "value", "state"])
    wide.add_row("/a/long/run/directory/" + "x" * 70, tables.num(0.000701234), "complete")
    tables.print_table(console, wide)
    lines = out.getvalue().splitlines()
    row = next(line for line in lines if "/a/long" in line)
    assert cells(row) == ["/a/long/run/directory/" + "x" * 70, "0.000701", "complete"]
    assert console.width == 80
    assert lines[0].strip() == "wide"  # a title that fits stays the table's
    titled = tables.table("a title longer than its table: " + "t" * 80, ["x"])
    titled.add_row("1")
    out.seek(0)
    out.truncate(0)
    tables.print_table(console, titled)
    assert out.getvalue().splitlines()[0] == "a title longer than its table: " + "t" * 80
    huge = tables.table("huge", ["x"])
    huge.add_row("y" * 1000)
    out.seek(0)
    out.truncate(0)
    tables.print_table(console, huge)
    assert max(len(line) for line in out.getvalue().splitlines()) <= tables.MAX_WIDTH


@pytest.mark.parametrize(
    "value,text",
    [(0.000701234, "0.000701"), (0.94567, "0.946"), (12345.0, "1.23e+04"), (3, "3"), (None, "-")],
)
def test_numbers_have_three_significant_digits(value, text):
    assert tables.num(value) == text
