"""Storage URLs as commands show them: a PostgreSQL password never printed."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def masked(url: str) -> str:
    """`url` with the password of its user part (``USER:PASSWORD@``) shown as ``****``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:****@{host}"))


def masked_in(text: str, url: str) -> str:
    """`text` (a message naming `url`, in any spelling) with the URL's password as ``****``."""
    password = urlsplit(url).password
    return text.replace(f":{password}@", ":****@") if password else text
