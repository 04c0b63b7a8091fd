"""`trainlab dashboard [DIR]`: the runs and studies under DIR, live in the browser (read-only).

Binds 127.0.0.1 unless --host says otherwise (then warns that others can read the runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainlab.train.state import Callback

DEFAULT_DIR = "runs"
DEFAULT_PORT = 8050


def hint(root: str = DEFAULT_DIR) -> str:
    """The one line `trainlab train` and `trainlab search` print so a user knows where to look."""
    arg = "" if root.rstrip("/") == DEFAULT_DIR else f" {root}"
    return f"watch it live: trainlab dashboard{arg}  (then open http://127.0.0.1:{DEFAULT_PORT}/)"


class DashboardHint(Callback):
    """Prints `hint` on stderr when training starts (not before: a mistake stays one line)."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)

    def on_train_start(self, trainer) -> None:  # noqa: ANN001
        sys.stderr.write(hint(self.root) + "\n")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from trainlab.dashboard.server import Dashboard  # the web server loads only for this command

    board = Dashboard(args.dir, args.host, args.port)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(
            f"trainlab dashboard: warning: listening on {args.host}: anyone who can reach this "
            "machine can read these runs (read-only)\n"
        )
    sys.stderr.write(f"trainlab dashboard: {board.root} at {board.url} (Ctrl-C to stop)\n")
    board.run()
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser(
        "dashboard",
        help="watch runs and studies live in the browser (read-only)",
        description=__doc__,
    )
    p.add_argument("dir", nargs="?", default=DEFAULT_DIR, help="runs directory (default runs/)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8050)")
    p.set_defaults(func=cmd_dashboard)
