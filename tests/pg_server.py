"""A throw-away PostgreSQL 15 server for the tests of shared studies (conftest's postgres_url)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.getuid() == 0 else args


def postgres_server() -> Iterator[str]:
    """Start a server on 127.0.0.1 and a free port (initdb + pg_ctl), yield its URL (user
    trainlab, trust auth, database postgres), stop it and remove its folder."""
    root = Path(tempfile.mkdtemp(prefix="trainlab-pg-"))
    if os.getuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "trainlab"])
        + ["--auth=trust", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w"]
    subprocess.run(as_postgres([*ctl, "-o", opts, "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://trainlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres([*ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str, name: str) -> str:
    """Create the empty database `name` on the server of `server_url`; its URL."""
    host, port = server_url.split("@")[1].split("/")[0].split(":")
    createdb = [str(PG_BIN / "createdb"), "-h", host, "-p", port, "-U", "trainlab", name]
    subprocess.run(createdb, check=True, capture_output=True)
    return server_url.rsplit("/", 1)[0] + "/" + name
