"""The run directory: what a run leaves on disk, written so that a crash loses nothing.

Layout: config.yaml, metrics.jsonl, steps.jsonl, result.json, last.pt,
best.pt, curves.png, env.json, plugins.json (where the run's plugins were looked up), and
members/ or snapshots/ where used. Checkpoints and JSON files
are written to a temporary file first and renamed into place.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from trainlab.config import is_plugin
from trainlab.errors import UserError
from trainlab.locking import LOCK_NAME, DirLock
from trainlab.version import __version__

PLUGINS_FILE = "plugins.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save through a temporary file; loadable with weights_only=True."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"run: no checkpoint {path.name} in {path.parent}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or foreign file is the user's to fix, not a bug
        first_line = (str(err).strip().splitlines() or [""])[0]  # torch's message runs many lines
        raise UserError(
            f"run: cannot read checkpoint {path} ({type(err).__name__}: {first_line})"
        ) from None


def default_run_dir(config_path: str | Path | None, root: str | Path = "runs") -> Path:
    stem = Path(config_path).stem if config_path else "run"
    return Path(root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def latest_run_dir(config_path: str | Path | None, root: str | Path = "runs") -> Path | None:
    """The newest runs/<stem>-* directory, for `--resume` without `--out`."""
    stem = Path(config_path).stem if config_path else "run"
    found = sorted(Path(root).glob(f"{stem}-*"), key=lambda p: p.name)
    found = [p for p in found if (p / "config.yaml").exists()]
    return found[-1] if found else None


def config_dirs(config_path: str | Path) -> tuple[str, ...]:
    """Where a config file's plugins are looked up besides sys.path: its folder, and those a
    plugins.json beside it records (a search's best.yaml, a run's config.yaml)."""
    folder = Path(config_path).resolve().parent
    return tuple(dict.fromkeys([str(folder), *RunDir(folder).plugin_dirs()]))


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device) -> dict[str, Any]:
    """env.json: what produced the run (versions, commit, device, threads)."""
    return {
        "trainlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class RunDir:
    """Paths and small file operations of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def create(self, resume: bool) -> bool:
        """Make the directory; refuse to reuse one without resume. True when resuming."""
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

    def lock(self) -> DirLock:
        """The lock a process holds while it writes this run (`with run.lock(): ...`)."""
        return DirLock(
            self.path,
            f"--out: {self.path} is in use by a running trainlab (pid {{pid}}); wait for it to "
            "finish or choose another --out",
        )

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self / name, json.dumps(obj, indent=2) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads((self / name).read_text())

    def append_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            with open(self / name, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())

    def plugin_dirs(self) -> tuple[str, ...]:
        """The folders plugins.json records (none for a run without one)."""
        if not (self / PLUGINS_FILE).is_file():
            return ()
        return tuple(str(d) for d in self.read_json(PLUGINS_FILE).get("search_dirs", []))

    def search_dirs(self, given: Iterable[str | Path], resuming: bool) -> tuple[str, ...]:
        """Where this run's plugins are looked up besides sys.path: the `given` folders (the
        config file's), absolute, and when resuming also those the run recorded."""
        dirs = [str(Path(d).resolve()) for d in given]
        return tuple(dict.fromkeys([*dirs, *(self.plugin_dirs() if resuming else ())]))

    def record_plugin_dirs(self, dirs: Sequence[str], cfg_names: Iterable[str]) -> None:
        """plugins.json, when the config names a plugin (`cfg_names`: model.kind, data.name):
        the folders its plugins were looked up in, so eval, ensemble, transfer and --resume of
        this run find them from any current directory."""
        if dirs and any(is_plugin(n) for n in cfg_names):
            self.write_json(PLUGINS_FILE, {"search_dirs": list(dirs)})

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self / name
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything after it is not trusted
        return rows

    def truncate_jsonl(self, name: str, keep: Any) -> list[dict[str, Any]]:
        """Keep the rows for which keep(row) holds (resume drops what came after the checkpoint)."""
        rows = [r for r in self.read_jsonl(name) if keep(r)]
        atomic_write_text(self / name, "".join(json.dumps(r) + "\n" for r in rows))
        return rows
