"""Errors that name a user's mistake.

`UserError` is a `ValueError`, so the Python API raises a plain ValueError; the CLI turns it into
one line on stderr and exit status 2 (no traceback).
"""


class UserError(ValueError):
    """A mistake in the user's input: the message names the field and what is allowed."""
