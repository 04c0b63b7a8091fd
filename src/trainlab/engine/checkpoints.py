"""A run's torch files: checkpoints written atomically and read back with weights_only, and
env.json's contents (what produced the run). Where they go is trainlab.rundir's to say.
"""

from __future__ import annotations

import errno
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from trainlab.errors import UserError
from trainlab.rundir import atomic_write_with
from trainlab.version import __version__

#: what torch.save's C++ writer says when a write fails (a full disk): "unexpected pos N vs M"
#: from an iostream error
TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "iostream error")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save through a temporary file; loadable with weights_only=True. torch reports a
    write that failed (a full disk) as a C++ RuntimeError: it is raised as the OSError it is
    (EIO, the file named), which trainlab.rundir.full_disk_is_resumable turns into one line."""
    try:
        atomic_write_with(path, lambda tmp: torch.save(state, tmp))
    except RuntimeError as err:
        said = f"{err} {err.__context__ or ''}"
        if not any(mark in said for mark in TORCH_WRITE_FAILED):
            raise
        raise OSError(
            errno.EIO, "torch.save could not write it: is the disk full?", str(path)
        ) from err


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


def git_commit() -> str | None:
    """The commit of the git checkout holding trainlab's sources (None outside one): read from
    the repository's files (HEAD, the ref it names, packed-refs), which costs no process; `git
    rev-parse HEAD` answers when the layout is one this reader does not know."""
    here = Path(__file__).resolve().parent
    try:
        found = _read_head(here)
    except (OSError, ValueError, UnicodeDecodeError):
        found = None
    return found if found is not None else _git_rev_parse(here)


def _read_head(start: Path) -> str | None:
    """HEAD's commit from the files of the repository above `start` (a worktree's `.git` file
    included); None when no repository is found or the layout is not understood."""
    for folder in (start, *start.parents):
        dot = folder / ".git"
        if dot.is_dir():
            git_dir = dot
            break
        if dot.is_file():
            text = dot.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = (folder / text.removeprefix("gitdir:").strip()).resolve()
            break
    else:
        return None
    common = git_dir
    if (git_dir / "commondir").is_file():  # a linked worktree: refs live in the main .git
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    head = (git_dir / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head if _is_sha(head) else None
    ref = head.removeprefix("ref:").strip()
    for base in (git_dir, common):
        if (base / ref).is_file():
            sha = (base / ref).read_text().strip()
            return sha if _is_sha(sha) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _is_sha(sha):
                return sha
    return None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _git_rev_parse(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
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
