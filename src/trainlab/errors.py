"""Errors and warnings that name a user's mistake.

`UserError` is a `ValueError`, so the Python API raises a plain ValueError; the CLI turns it into
one line on stderr and exit status 2 (no traceback). `DataWarning` is a Python warning that the
CLI prints as one line (the run goes on). `excerpt` keeps a bad value short in either.

Messages are written in the CLI's words (``--out: runs/x already exists; pass --resume``). The
Python API's functions (`worded_for_python`, applied by trainlab.api) reword them with the
arguments a Python caller passed (``out: runs/x already exists; pass resume=True``), unless the
CLI called them (`cli_wording`, set by trainlab.cli.main).
"""

from __future__ import annotations

import contextlib
import functools
import re
import reprlib
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

EXCERPT_CHARS = 80  # the most of a user's value that an error line shows

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 2, 4, 4, 4
_repr.maxstring = _repr.maxother = EXCERPT_CHARS


class UserError(ValueError):
    """A mistake in the user's input: the message names the field and what is allowed."""


class DataWarning(UserWarning):
    """Data the run can use but that is probably not what the user meant (one line)."""


def warn(message: str) -> None:
    """Issue a `DataWarning` (the CLI shows it as `trainlab COMMAND: warning: message`)."""
    warnings.warn(message, DataWarning, stacklevel=2)


# ------------------------------------------------------------------ CLI words -> Python words
#: flags that take no value: the Python argument is set to True (``--resume`` -> ``resume=True``)
SWITCHES = ("resume", "keep-all", "until-decided", "baseline")
#: flags whose Python argument has another name
RENAMED = {"set": "overrides"}
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
_cli: ContextVar[bool] = ContextVar("trainlab_cli_wording", default=False)
F = TypeVar("F", bound=Callable[..., Any])


def python_wording(message: str) -> str:
    """`message` with each CLI flag named as the Python argument: at the start (the field at
    fault) ``--out:`` -> ``out:``, elsewhere ``--out`` -> ``out=...``; a switch is
    ``resume=True`` in either place; ``--set`` is ``overrides`` (``--set x: ...`` ->
    ``overrides: x: ...``)."""

    def word(match: re.Match[str]) -> str:
        flag = match.group(1)
        name = RENAMED.get(flag, flag.replace("-", "_"))
        if flag in SWITCHES:
            return f"{name}=True"
        if match.start() > 0:
            return f"{name}=..."
        return name + (":" if message[match.end() : match.end() + 1] == " " else "")

    return _FLAG.sub(word, message)


@contextlib.contextmanager
def cli_wording() -> Iterator[None]:
    """While inside, the Python API leaves messages in the CLI's words (trainlab.cli.main)."""
    token = _cli.set(True)
    try:
        yield
    finally:
        _cli.reset(token)


def worded_for_python(function: F) -> F:
    """`function` raising its `UserError`s in the Python API's words (`python_wording`), unless
    called by the CLI (`cli_wording`); the exception and its traceback are otherwise kept."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except UserError as err:
            if not _cli.get() and err.args and isinstance(err.args[0], str):
                err.args = (python_wording(err.args[0]), *err.args[1:])
            raise

    return call  # type: ignore[return-value]


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A bounded repr of a value: nested containers are cut, then the text (a huge YAML alias
    expansion costs no more than a small value)."""
    text = _repr.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
