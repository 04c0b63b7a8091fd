"""One process at a time in a directory: an exclusive flock on `<dir>/.lock`.

The kernel drops a flock when its process dies (kill -9 included), so a lock left by a killed
run never blocks `--resume` (its file stays behind, meaning nothing); a clean release removes
the file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from trainlab.errors import UserError

LOCK_NAME = ".lock"


class DirLock:
    """An exclusive, non-blocking flock on `<directory>/.lock`.

    `busy` is the one-line UserError message when another process holds it; `{pid}` in it is
    replaced by the holder's pid (written into the file by the holder).
    """

    def __init__(self, directory: str | Path, busy: str) -> None:
        self.path = Path(directory) / LOCK_NAME
        self.busy = busy
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise UserError(self.busy.replace("{pid}", holder)) from None
            if self._is_current(fd):
                break
            os.close(fd)  # the holder released and removed the file we opened: take the new one
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still held: no one can have taken it
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
