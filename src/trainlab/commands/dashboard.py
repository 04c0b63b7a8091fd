"""`trainlab dashboard [DIR] [--storage URL]`: the runs and studies under DIR, and the studies
of each --storage (sqlite:///, postgresql://, journal:///), live in the browser (read-only).

Binds 127.0.0.1 unless --host says otherwise (then warns that others can read the runs), and
answers only requests addressed to a loopback name or that --host. A --port out of 0..65535 or an
empty --host is one line, exit 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys

DEFAULT_DIR = "runs"
DEFAULT_PORT = 8050


def hint(root: str = DEFAULT_DIR, storage: str | None = None) -> str:
    """The one line `trainlab train` and `trainlab search` print so a user knows where to look
    (`storage`: a shared study's URL, shown with its password masked)."""
    arg = "" if root.rstrip("/") == DEFAULT_DIR else f" {shlex.quote(root)}"
    if storage:
        from trainlab.search.study.urls import masked  # loaded only by the commands that print it

        arg += f" --storage {masked(storage)}"
    return f"watch it live: trainlab dashboard{arg}  (then open http://127.0.0.1:{DEFAULT_PORT}/)"


def storage_hint(url: str) -> str:
    """`hint` for a study on a shared storage (PostgreSQL, journal)."""
    return hint(storage=url)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from trainlab.dashboard.server import (  # the web server loads only for this command
        Dashboard,
        is_loopback,
    )

    storages = args.storage or []
    board = Dashboard(
        args.dir or DEFAULT_DIR,
        args.host,
        args.port,
        storages=storages,
        artifacts=args.artifacts,
        need_root=args.dir is not None or not storages,  # runs/ may be missing with --storage
    )
    if not is_loopback(args.host):
        sys.stderr.write(
            f"trainlab dashboard: warning: listening on {args.host}: anyone who can reach this "
            "machine can read these runs (read-only)\n"
        )
    shown = [str(board.root)] * board.root.is_dir()
    if storages:
        from trainlab.search.study.urls import masked  # with --storage only: Optuna's package

        shown += [masked(u) for u in storages]
    sys.stderr.write(f"trainlab dashboard: {', '.join(shown)} at {board.url} (Ctrl-C to stop)\n")
    board.run()
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser(
        "dashboard",
        help="watch runs and studies live in the browser (read-only)",
        description=__doc__,
    )
    p.add_argument("dir", nargs="?", help="runs directory (default runs/)")
    p.add_argument(
        "--storage",
        action="append",
        metavar="URL",
        help="also show the studies of this storage: sqlite:///FILE, "
        "postgresql://USER@HOST:PORT/DB or journal:///ABS/PATH/FILE.log (repeatable)",
    )
    p.add_argument(
        "--artifacts",
        metavar="DIR",
        help="artifact store of a --storage study, where its trials' files are fetched from when "
        "their folders are on another machine (default: the folder the study records)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8050)")
    p.set_defaults(func=cmd_dashboard)
