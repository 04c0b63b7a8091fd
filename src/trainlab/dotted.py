"""Dotted paths into nested configs: `optim.betas.0` names one value (digits index lists).

The one implementation behind `--set`, `train.members`, search spaces and sampled trials. A path
that cannot be set raises `UserError` naming the field; tuples on the way become lists.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from trainlab.errors import UserError, excerpt

_MISSING = object()


def keys_of(path: str, field: str | None = None) -> list[str]:
    """The segments of a dotted path; an empty segment is a mistake naming `field`."""
    keys = path.split(".")
    if not all(keys):
        raise UserError(f"{field or path}: not a dotted path such as optim.lr or optim.betas.0")
    return keys


def get_path(root: Any, path: str, default: Any = _MISSING) -> Any:
    """The value at `path`, or `default` where the path does not exist (KeyError without one)."""
    node = root
    for key in path.split("."):
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list | tuple) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif default is _MISSING:
            raise KeyError(path)
        else:
            return default
    return node


def set_path(
    root: dict[str, Any],
    path: str,
    value: Any,
    *,
    field: str | None = None,
    missing_list: Callable[[str], list[Any]] | None = None,
) -> None:
    """Set `path` in `root` in place, creating missing sections on the way.

    A missing list that the path indexes comes from `missing_list(its dotted path)` (the
    config's default, say); without it that is a mistake. Errors name `field` (default: path).
    """
    field = field or path
    keys = keys_of(path, field)
    node: Any = root
    for depth, key in enumerate(keys):
        where = ".".join(keys[:depth]) or "the config"
        last = depth == len(keys) - 1
        if isinstance(node, dict):
            if last:
                node[key] = value
                return
            child = node.get(key)
            if child is None:
                child = _new_container(keys, depth, field, missing_list)
            elif isinstance(child, tuple):
                child = list(child)
            node[key] = child
            node = child
        elif isinstance(node, list):
            if not key.isdigit():
                raise UserError(f"{field}: {where} is a list; use an index such as {where}.0")
            if int(key) >= len(node):
                raise UserError(
                    f"{field}: index {key} is past the end of {where} (length {len(node)})"
                )
            if last:
                node[int(key)] = value
                return
            if isinstance(node[int(key)], tuple):
                node[int(key)] = list(node[int(key)])
            node = node[int(key)]
        else:
            raise UserError(f"{field}: {where} is a value ({excerpt(node)}), not a section or list")


def _new_container(
    keys: list[str], depth: int, field: str, missing_list: Callable[[str], list[Any]] | None
) -> dict[str, Any] | list[Any]:
    """What to put where a path goes through a missing key: a section, or the list it indexes."""
    if not keys[depth + 1].isdigit():
        return {}
    at = ".".join(keys[: depth + 1])
    if missing_list is None:
        raise UserError(f"{field}: the config has no list at {at} to index; give the whole list")
    return list(missing_list(at))


def with_values(
    root: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    prefix: str = "",
    missing_list: Callable[[str], list[Any]] | None = None,
) -> dict[str, Any]:
    """A deep copy of `root` with each dotted path of `values` set (errors name prefix.path)."""
    result = copy.deepcopy(dict(root))
    for path, value in values.items():
        field = f"{prefix}.{path}" if prefix else path
        set_path(result, path, value, field=field, missing_list=missing_list)
    return result
