"""Requests to a test's Dashboard server, as a browser would send them."""

from __future__ import annotations

import http.client
import json

from trainlab.dashboard.server import Dashboard


def request(
    board: Dashboard, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A raw request (the path goes to the server exactly as written, no client clean-up):
    status, headers (lower-case names) and body. `headers` may set Host."""
    conn = http.client.HTTPConnection("127.0.0.1", board.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def get(board: Dashboard, path: str, method: str = "GET") -> tuple[int, bytes]:
    """A raw request's status and body."""
    status, _, body = request(board, path, method)
    return status, body


def get_json(board: Dashboard, path: str):
    """The JSON body of a 200 answer (anything else fails the test, with the body's start)."""
    status, body = get(board, path)
    assert status == 200, (path, status, body[:200])
    return json.loads(body)
