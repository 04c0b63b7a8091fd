"""The run directory, one owner: the only code that knows a run's file names.

A run directory (`--out DIR`, default ``runs/<config stem>-<time>``) holds:

    config.yaml     the resolved config (written once, atomically)
    metrics.jsonl   one JSON object per finished epoch (appended, fsynced)
    steps.jsonl     the loss of every optimizer step (optional)
    result.json     the result, the same object `--json` prints (written when the run ends)
    last.pt         the resumable state; best.pt the best epoch's weights (torch, atomic);
                    ema.pt the Polyak average (train.ema)
    curves.png      the curves; env.json what produced the run; plugins.json where its plugins
                    were looked up
    members/N/      an ensemble's members (each a run directory); snapshots/snapshot-<k>.pt a
                    snapshot ensemble

Writers are atomic (a temporary file in the same folder, fsynced, then renamed), so a kill leaves
the old file or the new one, never half of one. Readers are tolerant, with one rule for every
JSON-lines file: a line that is not one JSON object ends the file's readable part (a kill cuts the
last line short; nothing after a damaged line is trusted). A study directory
(``runs/search/<study>/``) holds ``trials/<n>/`` run directories, ``best.yaml`` and the plots.

A leaf above the standard library: no torch, no Optuna (the dashboard reads runs through it).
Checkpoint contents are the engine's (trainlab.engine.checkpoints); this module only names them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from trainlab.errors import UserError
from trainlab.locking import LOCK_NAME, DirLock

# -------------------------------------------------------------------------- the file names
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
RESULT = "result.json"
LAST = "last.pt"
BEST = "best.pt"
EMA = "ema.pt"
CURVES = "curves.png"
ENV = "env.json"
PLUGINS = "plugins.json"
MEMBERS = "members"
SNAPSHOTS = "snapshots"
# a study directory
BEST_YAML = "best.yaml"
TRIALS = "trials"
# the runs folder's study database: the default --storage of search, ensemble and compare
STUDIES_DB = "trainlab.db"
DEFAULT_STORAGE = f"sqlite:///runs/{STUDIES_DB}"

#: what a search trial's run directory keeps by default (what `trainlab ensemble --study` reads)
TRIAL_KEEPS = (BEST, RESULT, CONFIG, METRICS, PLUGINS)
INTERRUPTED = "interrupted"  # the stopped_reason of a run that can go on (`--resume`)
# a `trainlab compare` folder: its verdict (the object --json prints), its picture, and per config
# a folder <config>/ of seed runs <config>/seed-<s>/
COMPARE_MARK = "compare.json"
COMPARE_PICTURE = "compare.png"
SEED_PREFIX = "seed-"


# -------------------------------------------------------------------------- atomic writers
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a kill leaves the old file or the new one, never a part."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write_with(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_with(path: Path, write: Callable[[str], None]) -> None:
    """`write(tmp_path)` fills a temporary file beside `path`, which then replaces `path`
    (for writers that want a file name: torch.save, matplotlib's savefig)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


#: the errors of a write that a full disk (or quota) causes; EIO is what the engine makes of
#: torch.save's C++ "unexpected pos" (trainlab.engine.checkpoints)
WRITE_FAILED = (errno.ENOSPC, errno.EDQUOT, errno.EIO)


def _mount_of(path: Path) -> Path:
    """The mount point of the file system holding `path` (what a user calls the disk)."""
    p = Path(os.path.abspath(path))
    while not p.exists() or not os.path.ismount(p):
        if p == p.parent:
            break
        p = p.parent
    return p


@contextlib.contextmanager
def full_disk_is_resumable(run_path: Path) -> Iterator[None]:
    """A write that fails for want of space while a run writes `run_path` is one line naming the
    disk (a UserError: exit 2), not a traceback. Every writer of a run is atomic or tolerant of
    a cut line, so the run directory stays resumable: `--resume` after space is freed redoes the
    epoch that could not be saved and gives the numbers of an uninterrupted run."""
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_FAILED:
            raise
        disk = _mount_of(run_path)
        try:
            free = f", {shutil.disk_usage(disk).free / 2**20:.0f} MiB free"
        except OSError:
            free = ""
        raise UserError(
            f"--out: cannot write {err.filename or run_path} ({err.strerror}) on the disk "
            f"mounted at {disk}{free}; {run_path} is saved up to its last finished epoch: free "
            "space and continue with --resume"
        ) from None


# -------------------------------------------------------------------------- tolerant readers
def parse_jsonl(text: str) -> list[dict[str, Any]]:
    """The rows of a JSON-lines text up to the first line that is not one JSON object.

    Tried first as one JSON array (one C call: 200,000 step lines in a fraction of a second),
    taken when the N lines gave N objects; otherwise line by line, stopping at the damaged one."""
    lines = text.splitlines()
    try:
        whole = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        whole = None
    if whole is not None and len(whole) == len(lines) and all(isinstance(r, dict) for r in whole):
        return whole
    rows: list[dict[str, Any]] = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            break  # a line cut short by a kill: everything after it is not trusted
        if not isinstance(row, dict):
            break
        rows.append(row)
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """`parse_jsonl` of a file; [] when it does not exist or cannot be read."""
    try:
        return parse_jsonl(Path(path).read_text())
    except (OSError, UnicodeDecodeError):
        return []


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON file holding one object, or None (missing, unreadable, damaged, not an object)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def finished_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's result.json if the run finished: an interrupted, half-written or foreign file
    counts as missing."""
    result = read_json_object(Path(run_dir) / RESULT)
    if result is None or result.get("stopped_reason") in (None, INTERRUPTED):
        return None
    return result


# -------------------------------------------------------------------------- where runs go
def default_run_dir(config_path: str | Path | None, root: str | Path = "runs") -> Path:
    stem = Path(config_path).stem if config_path else "run"
    return Path(root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_out_dir(path: Path, field: str = "--out") -> None:
    """Refuse in one line, before anything is made, a directory that cannot be made or written:
    a file in its place or above it, a read-only file system, no permission. The test is a
    probe folder made and removed in the directory or its nearest existing parent (permissions
    alone do not tell: root ignores them, and /sys or /proc refuse even root)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{field}: {path} is a file; choose a directory")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{field}: cannot create {path} ({parent} is a file)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".trainlab-probe-", dir=parent))
    except OSError as err:
        raise UserError(f"{field}: cannot write {path} ({err.strerror or err})") from None


def is_run(path: Path) -> bool:
    """A folder is a run directory when it holds a config.yaml."""
    return (Path(path) / CONFIG).is_file()


def latest_run_dir(config_path: str | Path | None, root: str | Path = "runs") -> Path | None:
    """The newest run of this config under `root` (`--resume` without `--out`): a folder named
    ``<stem>-YYYYMMDD-HHMMSS`` exactly, so ``sp.yaml`` never picks ``sp-wide-...``."""
    stem = Path(config_path).stem if config_path else "run"
    found = sorted(
        p
        for p in Path(root).glob(f"{stem}-*")
        if _is_timestamp(p.name[len(stem) + 1 :]) and is_run(p)
    )
    return found[-1] if found else None


def _is_timestamp(text: str) -> bool:
    date, dash, clock = text.partition("-")
    return bool(dash) and len(date) == 8 and len(clock) == 6 and (date + clock).isdigit()


def config_dirs(config_path: str | Path) -> tuple[str, ...]:
    """Where a config file's plugins are looked up besides sys.path: its folder, and those a
    plugins.json beside it records (a search's best.yaml, a run's config.yaml)."""
    folder = Path(config_path).resolve().parent
    return tuple(dict.fromkeys([str(folder), *RunDir(folder).plugin_dirs()]))


# -------------------------------------------------------------------------- one run directory
class RunDir:
    """One run directory: its paths, atomic writes and tolerant reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # the files, by what they are
    config = property(lambda self: self.path / CONFIG)
    metrics = property(lambda self: self.path / METRICS)
    steps = property(lambda self: self.path / STEPS)
    result = property(lambda self: self.path / RESULT)
    last = property(lambda self: self.path / LAST)
    best = property(lambda self: self.path / BEST)
    curves = property(lambda self: self.path / CURVES)
    env = property(lambda self: self.path / ENV)
    plugins = property(lambda self: self.path / PLUGINS)
    ema = property(lambda self: self.path / EMA)
    members_dir = property(lambda self: self.path / MEMBERS)
    snapshots_dir = property(lambda self: self.path / SNAPSHOTS)

    def snapshot(self, k: int) -> Path:
        """The k-th snapshot of a snapshot ensemble (1-based)."""
        return self.snapshots_dir / f"snapshot-{k}.pt"

    def member(self, index: int) -> RunDir:
        return RunDir(self.members_dir / str(index))

    def members(self) -> list[RunDir]:
        """The ensemble's member run directories, in member order."""
        if not self.members_dir.is_dir():
            return []
        found = [p for p in self.members_dir.iterdir() if p.name.isdigit() and p.is_dir()]
        return [RunDir(p) for p in sorted(found, key=lambda p: int(p.name))]

    def snapshots(self) -> list[Path]:
        return sorted(self.snapshots_dir.glob("*.pt")) if self.snapshots_dir.is_dir() else []

    # life cycle
    def exists(self) -> bool:
        return is_run(self.path)

    def is_ensemble(self) -> bool:
        """A `train.ensemble` run: members/ and no weights of its own."""
        return self.members_dir.is_dir() and not self.best.exists()

    def create(self, resume: bool) -> bool:
        """Make the directory; refuse to reuse one without resume. True when resuming."""
        check_out_dir(self.path)
        if self.path.exists() and any(p.name != LOCK_NAME for p in self.path.iterdir()):
            if not resume:
                raise UserError(
                    f"--out: {self.path} already exists; pass --resume to continue it "
                    "or choose another directory"
                )
            return True
        if resume and not self.path.exists():
            raise UserError(f"--resume: no run directory at {self.path}")
        self.path.mkdir(parents=True, exist_ok=True)
        return False

    @contextlib.contextmanager
    def created(self, resume: bool) -> Iterator[bool]:
        """`create` (yields True when resuming) for a run that then writes it: when the run
        fails, a directory this call made and the run left without a file is removed (a plugin
        that does not import leaves no empty runs/<name>-<time>/); one that existed is kept."""
        existed = self.path.exists()
        resuming = self.create(resume)
        try:
            yield resuming
        except BaseException:
            if not existed and self.path.is_dir() and not _has_files(self.path):
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    def lock(self) -> DirLock:
        """The lock a process holds while it writes this run (`with run.lock(): ...`)."""
        return DirLock(
            self.path,
            f"--out: {self.path} is in use by a running trainlab (pid {{pid}}); wait for it to "
            "finish or choose another --out",
        )

    def finished_result(self) -> dict[str, Any] | None:
        return finished_result(self.path)

    def kind(self) -> str:
        """run, ensemble (members/), transfer (a transfer section in its config), compare (a
        `trainlab compare` folder) or trial (under a study's trials/)."""
        if self.path.parent.name == TRIALS:
            return "trial"
        if self.is_ensemble():
            return "ensemble"
        if (self.path / COMPARE_MARK).is_file():
            return "compare"
        try:
            text = self.config.read_text()
        except OSError:
            return "run"
        return "transfer" if "\ntransfer:" in "\n" + text else "run"

    # JSON files
    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self / name, json.dumps(obj, indent=2) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads((self / name).read_text())

    def write_config(self, text: str) -> None:
        atomic_write_text(self.config, text)

    def read_config_text(self) -> str | None:
        """config.yaml's text; None when missing, unreadable or empty (a marker cut by a kill
        counts as absent)."""
        try:
            text = self.config.read_text()
        except (OSError, UnicodeDecodeError):
            return None
        return text if text.strip() else None

    # JSON-lines files
    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        return read_jsonl(self / name)

    def append_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            with open(self / name, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())

    def truncate_jsonl(self, name: str, keep: Callable[[dict[str, Any]], bool]) -> list[dict]:
        """Keep the rows for which keep(row) holds (resume drops what came after the checkpoint)."""
        rows = [r for r in self.read_jsonl(name) if keep(r)]
        atomic_write_text(self / name, "".join(json.dumps(r) + "\n" for r in rows))
        return rows

    # plugins.json
    def plugin_dirs(self) -> tuple[str, ...]:
        """The folders plugins.json records (none for a run without one)."""
        data = read_json_object(self.plugins)
        return tuple(str(d) for d in (data or {}).get("search_dirs", []))

    def search_dirs(self, given: Iterable[str | Path], resuming: bool) -> tuple[str, ...]:
        """Where this run's plugins are looked up besides sys.path: the `given` folders (the
        config file's), absolute, and when resuming also those the run recorded."""
        dirs = [str(Path(d).resolve()) for d in given]
        return tuple(dict.fromkeys([*dirs, *(self.plugin_dirs() if resuming else ())]))

    def record_plugin_dirs(self, dirs: Sequence[str], uses_plugins: bool) -> None:
        """plugins.json, when the config names a plugin: the folders its plugins were looked up
        in, so eval, ensemble, transfer and --resume of this run find them from anywhere."""
        if dirs and uses_plugins:
            self.write_json(PLUGINS, {"search_dirs": list(dirs)})

    def prune(self, keep: tuple[str, ...] | None) -> None:
        """Delete every file of the directory but `keep` (None keeps everything)."""
        if keep is None or not self.path.is_dir():
            return
        for entry in self.path.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _has_files(folder: Path) -> bool:
    """Whether anything but (empty) folders lies under `folder`."""
    return any(not p.is_dir() or p.is_symlink() for p in folder.rglob("*"))


def study_trial_dir(study_dir: Path, number: int) -> Path:
    """A trial's run directory in its study directory."""
    return Path(study_dir) / TRIALS / f"{number:04d}"


# -------------------------------------------------------------------------- a compare folder
def seed_dir(config_dir: Path, seed: int) -> Path:
    """The run of one seed of one config in a `trainlab compare` folder."""
    return Path(config_dir) / f"{SEED_PREFIX}{seed}"


def _seed_of(path: Path) -> int | None:
    tail = path.name.removeprefix(SEED_PREFIX)
    return int(tail) if tail != path.name and tail.isdigit() else None


def is_comparison(path: Path) -> bool:
    """A `trainlab compare` folder: its compare.json, or (still running) a config folder of
    seed runs (<config>/config.yaml beside <config>/seed-0/)."""
    if is_run(path):
        return False
    if (Path(path) / COMPARE_MARK).is_file():
        return True
    try:
        return any(is_run(d) and is_run(seed_dir(d, 0)) for d in Path(path).iterdir() if d.is_dir())
    except OSError:
        return False


def seed_runs(path: Path) -> list[tuple[str, list[Path]]]:
    """A comparison's configs (folder names) and their seed runs, in seed order."""
    groups = []
    for d in sorted(p for p in Path(path).iterdir() if p.is_dir() and is_run(p)):
        seeds = [r for r in d.iterdir() if r.is_dir() and _seed_of(r) is not None and is_run(r)]
        groups.append((d.name, sorted(seeds, key=_seed_of)))
    return groups
