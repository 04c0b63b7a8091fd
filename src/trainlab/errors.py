"""Errors and warnings that name a user's mistake.

`UserError` is a `ValueError`, so the Python API raises a plain ValueError; the CLI turns it into
one line on stderr and exit status 2 (no traceback). `DataWarning` is a Python warning that the
CLI prints as one line (the run goes on). `excerpt` keeps a bad value short in either.
"""

from __future__ import annotations

import reprlib
import warnings
from typing import Any

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


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A bounded repr of a value: nested containers are cut, then the text (a huge YAML alias
    expansion costs no more than a small value)."""
    text = _repr.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
