"""Storage URLs as commands show them and as the driver gets them: a password never printed.

A URL is split once, here, and both the masking and the database driver use that split: the
user part (``USER:PASSWORD``) ends at the LAST ``@`` before the query (a host cannot hold an
``@``, a password can), so ``postgresql://u:p@ss@host/db`` has the password ``p@ss``. The
driver gets the URL with its user and password percent-encoded (`for_driver`), so it cannot
split it elsewhere and put part of the password into a host name its errors print.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote

from trainlab.errors import UserError


class Parts(NamedTuple):
    """``SCHEME://USER:PASSWORD@REST``; `password` is None without a ``:`` in the user part,
    `user` None without an ``@``; both as written (percent-encoding kept)."""

    scheme: str
    user: str | None
    password: str | None
    rest: str  # host, port, database, query


def split(url: str) -> Parts:
    """The one split of `url` (module docstring); never raises."""
    scheme, sep, after = url.partition("://")
    if not sep:
        return Parts("", None, None, url)
    head, query_sep, query = after.partition("?")
    userinfo, at, rest = head.rpartition("@")
    if not at:
        return Parts(scheme, None, None, after)
    user, colon, password = userinfo.partition(":")
    return Parts(scheme, user, password if colon else None, rest + query_sep + query)


def masked(url: str) -> str:
    """`url` with the password of its user part (``USER:PASSWORD@``) shown as ``****``."""
    parts = split(url)
    if parts.password is None:
        return url
    return f"{parts.scheme}://{parts.user}:****@{parts.rest}"


def masked_in(text: str, url: str) -> str:
    """`text` (a message naming `url`, in any spelling) with the URL's password as ``****``."""
    password = split(url).password
    if not password:
        return text
    for spelling in {password, unquote(password), quote(unquote(password), safe="")}:
        text = text.replace(f":{spelling}@", ":****@")
        if len(spelling) >= 4:  # a bare password anywhere (a short one would mangle words)
            text = text.replace(spelling, "****")
    return text


def for_driver(url: str, flag: str = "--storage") -> str:
    """`url` as the database driver gets it: user and password percent-encoded (the split
    above). A host with an unclosed ``[`` (or a stray ``]``) is a mistake: one line."""
    parts = split(url)
    host = parts.rest.partition("/")[0]
    if ("[" in host or "]" in host) and not re.fullmatch(r"\[[^\[\]]+\](:[^\[\]]*)?", host):
        raise UserError(
            f"{flag}: {masked(url)} has a host with an unclosed '[' "
            "(an IPv6 address is written [ADDRESS]:PORT)"
        )
    if parts.user is None:
        return url
    user = quote(unquote(parts.user), safe="")
    if parts.password is None:
        return f"{parts.scheme}://{user}@{parts.rest}"
    password = quote(unquote(parts.password), safe="")
    return f"{parts.scheme}://{user}:{password}@{parts.rest}"
