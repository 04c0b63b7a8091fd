"""Whether a run or study is being written now, found without touching its lock.

A running trainlab holds an flock on `<dir>/.lock` (trainlab.locking). Trying that lock, even
shared and for a moment, could make a starting run fail to take it, so the dashboard only looks:
Linux lists held flocks in /proc/locks (by inode); elsewhere the pid written in the file is
checked. A run whose metrics changed in the last RECENT_SECONDS also counts as running.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from trainlab.locking import LOCK_NAME

RECENT_SECONDS = 30.0  # a finished-less run whose metrics changed this recently is running


def held_flock_inodes() -> set[int] | None:
    """Inodes with an flock held on this machine, or None where /proc/locks is not readable."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[-3].count(":") == 2:
            found.add(int(fields[-3].rsplit(":", 1)[1]))
    return found


def _pid_alive(lock: Path) -> bool:
    try:
        pid = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_held(directory: Path, held: set[int] | None) -> bool:
    """Whether a process holds `<directory>/.lock` (`held`: from held_flock_inodes())."""
    lock = directory / LOCK_NAME
    try:
        inode = os.stat(lock).st_ino
    except OSError:
        return False  # a clean release removes the file
    return inode in held if held is not None else _pid_alive(lock)


def recently_changed(path: Path, now: float | None = None) -> bool:
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return False
    return (now if now is not None else time.time()) - mtime < RECENT_SECONDS
