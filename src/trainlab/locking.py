"""One process at a time in a directory: an exclusive flock on `<dir>/.lock`.

The kernel drops a flock when its process dies (kill -9 included), so a lock left by a killed
run never blocks `--resume`; the file stays behind, empty of meaning, holding the last pid.
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(self.busy.replace("{pid}", holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
