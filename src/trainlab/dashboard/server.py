"""The dashboard's web server: the JSON API, the pictures under DIR and the static front-end.

Only GET (and HEAD) routes exist, so nothing can change a file. `/files/<name>` serves pictures
and text records from under DIR only (trainlab.dashboard.files.inside); the page is one HTML
file whose script draws the route it is opened on (home, run, compare, study). Runs named
`@fetched/...` are trials of --storage studies fetched into the cache folder (studies.py), served
from there under the same rules.

Every answer goes through `Guard`: a request whose Host header is not a loopback name or the
address the server was started on is refused (403: a web page on another site that rebinds its
own name to 127.0.0.1 cannot read the runs), a path longer than MAX_PATH is refused (414), and
every answer carries HEADERS (a Content-Security-Policy that allows only the page's own files:
no inline script, no other site), so a value from a run can never become code in the page.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import math
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainlab.dashboard.files import OutsideRoot, inside
from trainlab.dashboard.runs import RunReader
from trainlab.dashboard.studies import FETCHED, StudyReader
from trainlab.errors import UserError
from trainlab.rundir import is_comparison, is_run

STATIC = Path(__file__).parent / "static"
SERVED_FILES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".yaml": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "text/plain; charset=utf-8",
    ".csv": "text/plain; charset=utf-8",
}
NO_STORE = {"Cache-Control": "no-store"}
CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
MAX_PATH = 8192  # bytes of a request's path (a file's whole path is at most 4096)
WILDCARDS = ("0.0.0.0", "::")  # --host values that listen on every address of the machine


def host_name(header: str) -> str:
    """The name part of a Host header, lower-case, without port or brackets ("" when bad)."""
    header = header.strip().lower()
    if header.startswith("["):
        name, bracket, _ = header[1:].partition("]")
        return name if bracket else ""
    name, _, port = header.partition(":")
    return name if port.isdigit() or not port else ""


def is_loopback(name: str) -> bool:
    """localhost, 127.x.y.z or ::1 (a --host that only this machine can reach)."""
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """The dashboard's front door (ASGI middleware): answers only requests whose Host is a
    loopback name or `host` (any port; for a wildcard host also this machine's name and any IP
    address, which no other site's page can send), refuses over-long paths, and adds HEADERS
    to every answer (an error's included)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1") -> None:
        self.app = app
        self.names = {host.strip("[]").lower()}
        self.wildcard = host in WILDCARDS
        if self.wildcard:
            self.names.add(socket.gethostname().lower())

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if not name:
            return False
        return is_loopback(name) or name in self.names or (self.wildcard and _is_address(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        refusal = None
        if not self.allows(Headers(scope=scope).get("host", "")):
            refusal = PlainTextResponse("403: this server answers only its own address", 403)
        elif len(scope.get("raw_path") or scope["path"].encode()) > MAX_PATH:
            refusal = PlainTextResponse("414: the address is too long", 414)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:  # a bug: the 500 carries the headers too, the traceback is logged
                await PlainTextResponse("500: internal error", 500)(
                    scope, receive, send_with_headers
                )
            raise


def _clean(obj: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _json(obj: Any, status: int = 200) -> Response:
    """`obj` as JSON; what JSON has no type for (a date a YAML config holds) as its text."""
    body = json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False, default=str)
    return Response(body, status, headers=NO_STORE, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status, headers=NO_STORE)


def parse_since(text: str) -> tuple[int, int] | None:
    """`?since=E,S` (epochs and steps a page already holds) as numbers; None when it is not."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.isdigit() and len(p) < 16 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def default_cache() -> Path:
    """Where trials fetched from artifact stores are kept (one folder per user)."""
    return Path(tempfile.gettempdir()) / f"trainlab-dashboard-{os.getuid()}"


def create_app(
    root: str | Path,
    storages: list[str] | tuple[str, ...] = (),
    artifacts: str | Path | None = None,
    cache: str | Path | None = None,
    host: str = "127.0.0.1",
) -> Starlette:
    """The dashboard over `root` (a runs directory) and the studies of `storages` (URLs), whose
    trials kept on other machines are fetched from `artifacts` (or each study's store) into
    `cache` (default_cache()); it answers requests made to `host` or a loopback name (Guard)."""
    root, cache = Path(root), Path(cache) if cache is not None else default_cache()
    runs, fetched = RunReader(root), RunReader(cache, prefix=FETCHED + "/")
    studies = StudyReader(root, storages, artifacts, cache)

    def locate(name: str) -> tuple[RunReader, Path]:
        """The reader and path of a run or file name (OutsideRoot when it leaves its folder)."""
        if name.startswith(FETCHED + "/"):
            return fetched, inside(cache, name.removeprefix(FETCHED + "/"))
        return runs, inside(root, name)

    def api_runs(request: Request) -> Response:
        return _json(runs.index())

    def api_run(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            reader, path = locate(name)
        except OutsideRoot:
            return _error(403, "outside the served directory")
        except FileNotFoundError:
            return _error(404, "no run of that name")
        if reader is fetched:
            studies.fetch_run(name)  # downloaded when the trial is first opened
        if is_comparison(path):
            return _json(reader.comparison(path))
        if not is_run(path):
            return _error(404, "no run of that name")
        since = request.query_params.get("since")
        if since is None:
            return _json(reader.detail(path))
        held = parse_since(since)
        if held is None:
            return _error(400, "since: give the epochs and steps the page holds, as E,S")
        return _json(reader.detail(path, held))

    def api_pictures(request: Request) -> Response:
        return _json(runs.loose_pictures())

    def api_studies(request: Request) -> Response:
        return _json(studies.index())

    def api_study(request: Request) -> Response:
        found = studies.detail(request.path_params["name"])
        return _error(404, "no study of that name") if found is None else _json(found)

    def files(request: Request) -> Response:
        try:
            path = locate(request.path_params["name"])[1]
        except OutsideRoot:
            return _error(403, "outside the served directory")
        except FileNotFoundError:
            return _error(404, "no such picture or record")
        if path.suffix not in SERVED_FILES or not path.is_file():
            return _error(404, "no such picture or record")
        return FileResponse(path, media_type=SERVED_FILES[path.suffix], headers=NO_STORE)

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=NO_STORE)

    app = Starlette(
        routes=[
            Route("/api/runs", api_runs),
            Route("/api/runs/{name:path}", api_run),
            Route("/api/pictures", api_pictures),
            Route("/api/studies", api_studies),
            Route("/api/studies/{name:path}", api_study),
            Route("/files/{name:path}", files),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            Route("/", page),
            Route("/compare", page),
            Route("/run/{name:path}", page),
            Route("/study/{name:path}", page),
        ],
        middleware=[Middleware(Guard, host=host)],
    )
    app.state.runs, app.state.studies = runs, studies
    return app


def warm(app: Starlette) -> None:
    """Read the index and every study once (a thread at start-up), so the first page a user
    opens is served from the caches. Reading only; a failure here is left for the request."""
    try:
        app.state.runs.index()
        for row in app.state.studies.index():
            app.state.studies.detail(row["name"])
    except Exception:  # noqa: BLE001 (the same read in a request reports it)
        pass


def check_address(host: str, port: int) -> None:
    """--host and --port as a user gives them: a mistake is one line (an empty host would
    listen on every address of the machine)."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise UserError(
            f"--port: {port} is not a port; give 1 to 65535 (default 8050; 0: any free port)"
        )
    if not host.strip():
        raise UserError(
            "--host: empty; give the address to listen on (default 127.0.0.1; 0.0.0.0 for "
            "every address of this machine)"
        )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; a port in use or a host that cannot be bound is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"--port: {port} is in use on {host}; choose another --port") from None
        raise UserError(f"--host: cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"DIR: {root} is not a directory; give the runs directory (default runs/, made by "
            "trainlab train and trainlab search)"
        )
    return root


class Dashboard:
    """A dashboard server on a bound socket: `run()` serves until stopped (Ctrl-C), `start()`
    serves in a thread (tests, notebooks) and `stop()` ends it. `storages`, `artifacts`, `cache`:
    create_app's; `need_root` False lets a missing DIR be (`--storage` given, DIR not)."""

    def __init__(
        self,
        root: str | Path,
        host: str = "127.0.0.1",
        port: int = 8050,
        storages: list[str] | tuple[str, ...] = (),
        artifacts: str | Path | None = None,
        cache: str | Path | None = None,
        need_root: bool = True,
    ) -> None:
        check_address(host, port)
        self.root = check_root(root) if need_root else Path(root)
        self.app = create_app(self.root, storages, artifacts, cache, host)  # bad --storage: no port
        self.socket = bind(host, port)
        self.host, self.port = host, self.socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        threading.Thread(target=warm, args=(self.app,), daemon=True).start()
        self.server.run(sockets=[self.socket])

    def start(self) -> Dashboard:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            self.thread.join(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        self.socket.close()
