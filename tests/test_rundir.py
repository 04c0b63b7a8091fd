"""trainlab.rundir, the run directory's one owner: atomic writers, the one damaged-line rule,
finished results, where `--resume` looks, what kind of folder a run is, and that no other module
spells a run's file names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from trainlab import rundir
from trainlab.errors import UserError
from trainlab.rundir import (
    RunDir,
    atomic_write_bytes,
    atomic_write_text,
    atomic_write_with,
    finished_result,
    latest_run_dir,
    parse_jsonl,
    read_jsonl,
)

SRC = Path(rundir.__file__).parent


def test_atomic_writes_leave_only_the_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_with(tmp_path / "c.pt", lambda tmp: Path(tmp).write_text("three"))
    run = RunDir(tmp_path)
    run.write_json(rundir.RESULT, {"stopped_reason": "completed"})
    run.write_config("data: {name: spirals}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.txt", "b.bin", "c.pt", rundir.RESULT, rundir.CONFIG]
    )
    assert (tmp_path / "a.txt").read_text() == "two" and (tmp_path / "c.pt").read_text() == "three"
    assert run.read_json(rundir.RESULT) == {"stopped_reason": "completed"}


def test_a_failed_write_keeps_the_old_file_and_no_temporary_one(tmp_path):
    (tmp_path / "best.pt").write_text("old")

    def fails(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_with(tmp_path / "best.pt", fails)
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]
    assert (tmp_path / "best.pt").read_text() == "old"


@pytest.mark.parametrize(
    "text, epochs",
    [
        ("", []),
        ('{"epoch": 1}\n{"epoch": 2}\n', [1, 2]),
        ('{"epoch": 1}\n{"epoch": 2}', [1, 2]),  # a whole last line without its newline
        ('{"epoch": 1}\n{"epo', [1]),  # the last line cut short by a kill
        ('{"epoch": 1}\n{"epoch": 2}, {"epoch": 3}\n{"epoch": 4}\n', [1]),  # two on one line
        ('{"epoch": 1}\n[{"epoch": 2}]\n{"epoch": 3}\n', [1]),  # not an object
        ('{"epoch": 1}\n7\n{"epoch": 3}\n', [1]),
        ('{"epoch": 1}\n\n{"epoch": 3}\n', [1]),  # an empty line is no object either
        ('{"epoch": 1}\n{"epoch": \n2}\n{"epoch": 3}\n', [1]),  # one object over two lines
    ],
)
def test_a_line_that_is_not_one_object_ends_the_readable_part(text, epochs, tmp_path):
    assert [r["epoch"] for r in parse_jsonl(text)] == epochs
    (tmp_path / rundir.METRICS).write_text(text)
    assert [r["epoch"] for r in read_jsonl(tmp_path / rundir.METRICS)] == epochs
    assert [r["epoch"] for r in RunDir(tmp_path).read_jsonl(rundir.METRICS)] == epochs


def test_missing_or_unreadable_jsonl_reads_as_nothing(tmp_path):
    assert read_jsonl(tmp_path / "missing.jsonl") == []
    (tmp_path / "bad.jsonl").write_bytes(b"\xff\xfe\x00")
    assert read_jsonl(tmp_path / "bad.jsonl") == []


@pytest.mark.parametrize(
    "content, finished",
    [
        (None, False),  # no result.json
        ('{"stopped_reason": "completed", "test_accuracy": 0.9}', True),
        ('{"stopped_reason": "diverged"}', True),  # a diverged run is a result
        ('{"stopped_reason": "interrupted"}', False),
        ('{"test_accuracy": 0.9}', False),  # no stopped_reason: not written by a finished run
        ('{"stopped_reason": "compl', False),  # damaged
        ('["completed"]', False),  # not an object
        ("", False),
    ],
)
def test_finished_result(content, finished, tmp_path):
    if content is not None:
        (tmp_path / rundir.RESULT).write_text(content)
    result = finished_result(tmp_path)
    assert (result is not None) == finished
    assert RunDir(tmp_path).finished_result() == result
    if finished:
        assert result == json.loads(content)


def test_latest_run_dir_matches_the_stem_and_a_timestamp_exactly(tmp_path):
    runs = tmp_path / "runs"
    for name in (
        "sp-20250101-000000",
        "sp-20250102-000000",
        "sp-wide-20250109-000000",  # another config whose name starts alike
        "sp-20250103-000000-copy",
        "sp-2025010-0000000",
        "sp-x0250104-000000",
    ):
        (runs / name).mkdir(parents=True)
        (runs / name / rundir.CONFIG).write_text("x: 1\n")
    (runs / "sp-20250105-000000").mkdir()  # no config.yaml: not a run
    assert latest_run_dir("conf/sp.yaml", runs) == runs / "sp-20250102-000000"
    assert latest_run_dir("sp-wide.yaml", runs) == runs / "sp-wide-20250109-000000"
    assert latest_run_dir("other.yaml", runs) is None
    assert latest_run_dir("sp.yaml", tmp_path / "nowhere") is None


def test_default_run_dir_is_found_again_by_latest_run_dir(tmp_path):
    made = rundir.default_run_dir("exp.yaml", tmp_path)
    made.mkdir()
    RunDir(made).write_config("x: 1\n")
    assert latest_run_dir("exp.yaml", tmp_path) == made


def _run(path: Path, config: str = "data: {name: spirals}\n") -> RunDir:
    path.mkdir(parents=True)
    run = RunDir(path)
    run.write_config(config)
    return run


def test_kind_of_a_plain_run_an_ensemble_a_trial_a_compare_folder_and_a_transfer(tmp_path):
    plain = _run(tmp_path / "plain")
    plain.best.write_bytes(b"")
    assert plain.kind() == "run" and not plain.is_ensemble()

    ensemble = _run(tmp_path / "ens")
    for i in (1, 0, 10):
        _run(ensemble.members_dir / str(i))
    (ensemble.members_dir / "notes").mkdir()
    assert ensemble.kind() == "ensemble" and ensemble.is_ensemble()
    assert [m.path.name for m in ensemble.members()] == ["0", "1", "10"]
    assert ensemble.member(1).path == ensemble.members_dir / "1"

    trial = _run(rundir.study_trial_dir(tmp_path / "search" / "toy", 3))
    assert trial.path == tmp_path / "search" / "toy" / rundir.TRIALS / "0003"
    assert trial.kind() == "trial"

    folder = RunDir(tmp_path / "cmp")
    folder.path.mkdir()
    (folder.path / rundir.COMPARE_MARK).write_text("{}")
    assert folder.kind() == "compare"

    moved = _run(tmp_path / "moved", "data: {name: spirals}\ntransfer: {mode: linear}\n")
    assert moved.kind() == "transfer"


def test_an_empty_or_missing_config_reads_as_none(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_config_text() is None and not run.exists()
    run.config.write_text("")
    assert run.read_config_text() is None
    run.config.write_text("  \n")
    assert run.read_config_text() is None
    run.write_config("x: 1\n")
    assert run.read_config_text() == "x: 1\n" and run.exists()


def test_create_refuses_a_file_an_existing_run_and_a_missing_resume(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UserError, match=r"^--out: .* is a file"):
        RunDir(tmp_path / "file").create(resume=False)
    with pytest.raises(UserError, match=r"^--out: .* is a file"):
        RunDir(tmp_path / "file").create(resume=True)
    assert RunDir(tmp_path / "new").create(resume=False) is False
    (tmp_path / "new" / rundir.CONFIG).write_text("x: 1\n")
    with pytest.raises(UserError, match=r"^--out: .* already exists; pass --resume"):
        RunDir(tmp_path / "new").create(resume=False)
    assert RunDir(tmp_path / "new").create(resume=True) is True
    with pytest.raises(UserError, match=r"^--resume: no run directory"):
        RunDir(tmp_path / "absent").create(resume=True)


def test_prune_keeps_only_what_it_is_told(tmp_path):
    run = _run(tmp_path / "trial")
    for name in (rundir.BEST, rundir.LAST, rundir.CURVES):
        (run / name).write_bytes(b"x")
    run.snapshots_dir.mkdir()
    run.prune(None)
    assert len(list(run.path.iterdir())) == 5
    run.prune(rundir.TRIAL_KEEPS)
    assert sorted(p.name for p in run.path.iterdir()) == sorted([rundir.BEST, rundir.CONFIG])


# ------------------------------------------------------------------ the one owner of file names
FILE_NAMES = {
    rundir.CONFIG,
    rundir.METRICS,
    rundir.STEPS,
    rundir.RESULT,
    rundir.LAST,
    rundir.BEST,
    rundir.EMA,
    rundir.CURVES,
    rundir.ENV,
    rundir.PLUGINS,
    rundir.MEMBERS,
    rundir.SNAPSHOTS,
    rundir.BEST_YAML,
}


def spelled_file_names(source: str) -> list[tuple[int, str]]:
    """(line, name) of each string constant that is a run's file name. A dict key or a
    subscript (`result["members"]`, `{"snapshots": n}`) is a JSON field that shares the
    folder's name, not a path, and is left alone."""
    tree = ast.parse(source)
    fields = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            fields.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Subscript):
            fields.add(id(node.slice))
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in FILE_NAMES and id(node) not in fields
    )


def test_the_check_finds_what_it_looks_for():
    found = spelled_file_names(
        'p = run / "best.pt"\nx = {"members": 1}\ny = r["snapshots"]\nf(d, "config.yaml")\n'
        "z = f'{p / \"result.json\"}'\ndef g(name='last.pt'): pass\n"
    )
    assert found == [(1, "best.pt"), (4, "config.yaml"), (5, "result.json"), (6, "last.pt")]


def test_only_rundir_spells_a_run_s_file_names():
    """Every other module says rundir.CONFIG, RunDir(...).best, ...: renaming a file, or asking
    where a run keeps something, is one module's business (the DESIGN's "one owner")."""
    wrong = [
        f"{path.relative_to(SRC.parent)}:{line}: {name!r}"
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "rundir.py"
        for line, name in spelled_file_names(path.read_text())
    ]
    assert wrong == []
