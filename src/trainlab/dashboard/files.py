"""Paths from requests, kept under the served directory, and small cached file reads.

One resolver, `contained`, decides what the dashboard may read: a path whose real location
(every symlink followed) is outside the served directory is never read, whatever points there.
A name from a URL is refused (`inside`) when it is absolute, has a `..` part or resolves outside
the root; a name no file can have (a part over NAME_MAX bytes, or over PATH_MAX in all) is no
file. `FileCache` reads only through `contained`, so every run file, study file and picture the
server opens stays in DIR (or the fetch cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

NAME_MAX = 255  # bytes of one path part (Linux, macOS)
PATH_MAX = 4096  # bytes of a whole path


class OutsideRoot(Exception):
    """A requested name that would leave the served directory (HTTP 403)."""


def contained(root: Path, path: Path, base: str | None = None) -> Path | None:
    """`path` with every symlink followed, when that real place is `root` or under it (root's
    own symlinks followed too; `base`: root's real path when the caller knows it); None when it
    leaves root or cannot be resolved."""
    try:
        base = base or os.path.realpath(root)
        real = os.path.realpath(path)
    except (OSError, ValueError):  # a NUL byte, a loop of links on some platforms
        return None
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return Path(real)


def inside(root: Path, name: str) -> Path:
    """`root/name` resolved, or OutsideRoot when `name` leaves `root` in any way;
    FileNotFoundError for a name too long to be a file's."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        raise OutsideRoot(name)
    parts = name.split("/")
    if any(p in ("..", ".") for p in parts) or Path(name).is_absolute():
        raise OutsideRoot(name)
    if len(name.encode()) > PATH_MAX or any(len(p.encode()) > NAME_MAX for p in parts):
        raise FileNotFoundError(name)
    path = contained(root, Path(root) / name)
    if path is None:
        raise OutsideRoot(name)
    return path


def relative_name(root: Path, path: Path) -> str:
    """The name a run or file has in URLs: its path under root, with `/` (ValueError when it
    is not under root)."""
    return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()


def served_files(root: Path, directory: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Names of the files in `directory` with these suffixes that `inside` would serve."""
    names = []
    for p in sorted(directory.glob("*")):
        if p.suffix not in suffixes or not p.is_file():
            continue
        try:
            names.append(relative_name(root, inside(root, relative_name(root, p))))
        except (OutsideRoot, ValueError, OSError):
            continue  # a symlink out of DIR, or a folder outside it: never offered
    return names


def stat_key(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None when it does not exist: what caches key on."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size


class FileCache:
    """Parsed contents of files under `root`, re-read only when a file's mtime or size changed.
    A file that resolves outside `root` reads as missing (`contained`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = os.path.realpath(root)  # a root later swapped for a link: all refused
        self._store: dict[tuple[Path, str], tuple[tuple[int, int], Any]] = {}

    def real(self, path: Path) -> Path | None:
        """`contained(root, path)`."""
        return contained(self.root, path, self.base)

    def allowed(self, path: Path) -> bool:
        """Whether `path` (file or folder) really lies under root."""
        return self.real(path) is not None

    def refused(self, folder: Path, names: Iterable[str]) -> list[str]:
        """Those of `names` that exist in `folder` but resolve outside root (links out, or a
        folder outside): one resolution for the folder, then only its links are followed."""
        here = [n for n in names if os.path.lexists(folder / n)]
        if not self.allowed(folder):
            return here
        return [n for n in here if os.path.islink(folder / n) and not self.allowed(folder / n)]

    def get(self, path: Path, parse: Callable[[Path], Any], default: Any = None) -> Any:
        real = self.real(path)
        key = stat_key(real) if real is not None else None
        if key is None:
            return default
        slot = (path, parse.__name__)
        hit = self._store.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            value = parse(real)
        except (OSError, ValueError):
            return default  # a file being replaced or cut short: the next poll reads it whole
        self._store[slot] = (key, value)
        return value


def read_text(path: Path) -> str:
    return path.read_text()
