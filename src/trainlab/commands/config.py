"""`trainlab config CONFIG [--set K=V ...]`: the resolved config with every default, as a run
saves it; `trainlab config --fields [SECTION]`: each field with its type, default, allowed values
and the comment the schema gives it (LightningCLI's `--print_config`, for trainlab's schema).

Everything is read off the pydantic models of trainlab.config and trainlab.search.config (the
one declaration of each setting); nothing here lists a field by hand.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel

from trainlab.commands.output import add_common, add_set, console, emit_json
from trainlab.errors import UserError

_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def optimizer_schemas() -> dict[str, type[BaseModel]]:
    """optim.name -> the schema of its section (one per optimizer)."""
    from trainlab.config import OptimConfig  # heavy: torch loads only when the command runs

    union = typing.get_args(OptimConfig)[0]
    return {
        name: schema
        for schema in typing.get_args(union)
        for name in typing.get_args(schema.model_fields["name"].annotation)
    }


def sections() -> dict[str, type[BaseModel]]:
    """SECTION -> schema: data, data.loader, model, optim.<name> for each optimizer, schedule,
    train, search."""
    from trainlab.config import ExperimentConfig  # heavy: torch loads only when it runs
    from trainlab.search.config import SearchConfig  # heavy: Optuna, with the search section

    found: dict[str, type[BaseModel]] = {}
    for name, field in ExperimentConfig.model_fields.items():
        if name == "optim":
            found.update({f"optim.{o}": s for o, s in optimizer_schemas().items()})
        elif name == "search":
            found["search"] = SearchConfig
        else:
            found[name] = field.annotation
            for sub, subfield in field.annotation.model_fields.items():
                if isinstance(subfield.annotation, type) and issubclass(
                    subfield.annotation, BaseModel
                ):
                    found[f"{name}.{sub}"] = subfield.annotation
    return found


def _comments(schema: type[BaseModel]) -> dict[str, str]:
    """The comment on each field's line of the class body (the schema's units and meaning),
    from the schema and the classes it extends."""
    found: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
            if m and m.group(1) in schema.model_fields:
                found[m.group(1)] = m.group(2).strip()
    return found


def describe_type(annotation: Any, metadata: list[Any] = ()) -> str:
    """A field's type in words: `float > 0`, `one of relu, gelu`, `int >= 1 or null`."""
    bounds = [
        f"{word} {_number(getattr(m, key))}"
        for m in metadata
        for key, word in _BOUNDS.items()
        if getattr(m, key, None) is not None
    ]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        more = [x for e in extra for x in getattr(e, "metadata", [e])]
        return describe_type(inner, [*metadata, *more])
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        text = " | ".join(describe_type(a, metadata) for a in args)
        return text + (" or null" if len(args) < len(typing.get_args(annotation)) else "")
    name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    if origin is not None:
        name = str(annotation).replace("typing.", "")
    return f"{name} {', '.join(bounds)}" if bounds else name


def _number(value: Any) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def field_rows(schema: type[BaseModel]) -> list[dict[str, Any]]:
    """One row per field: name, type, default, comment."""
    comments = _comments(schema)
    rows = []
    for name, field in schema.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = "(section)"
        rows.append(
            {
                "field": name,
                "type": describe_type(field.annotation, list(field.metadata)),
                "default": default,
                "comment": comments.get(name, ""),
            }
        )
    return rows


def fields(section: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """SECTION -> its field rows, for one section (`optim` gives every optimizer's) or all."""
    known = sections()
    if section is None:
        return {name: field_rows(schema) for name, schema in known.items()}
    chosen = {n: s for n, s in known.items() if n == section or n.startswith(section + ".")}
    if not chosen:
        raise UserError(
            f"--fields: unknown section {section!r}; choose one of "
            + ", ".join(sorted({n.split(".")[0] for n in known}))
        )
    return {name: field_rows(schema) for name, schema in chosen.items()}


def cmd_config(args: argparse.Namespace) -> int:
    if args.fields is not None:
        if args.config is not None:
            raise UserError("--fields: lists the schema; give it without a CONFIG")
        found = fields(args.fields or None)
        if args.json:
            emit_json({"sections": found})
            return 0
        from rich.table import Table  # the table only when printed

        out = console(False)
        for name, rows in found.items():
            table = Table(title=name, title_justify="left")
            for col in ("field", "type", "default", "meaning"):
                table.add_column(col, overflow="fold")
            for r in rows:
                table.add_row(r["field"], r["type"], json.dumps(r["default"]), r["comment"])
            out.print(table)
        return 0
    if args.config is None:
        raise UserError("CONFIG: give a config file, or --fields [SECTION] for the schema")
    from trainlab.config import load_config, to_yaml  # heavy: torch loads only when it runs

    cfg = load_config(args.config, args.set)
    if args.json:
        emit_json(cfg.model_dump(mode="json"))
    else:
        console(False).print(to_yaml(cfg), end="", markup=False, highlight=False)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser(
        "config",
        help="print a config resolved with every default, or the fields of the schema",
    )
    p.add_argument("config", nargs="?", help="experiment config (YAML)")
    add_set(p)
    p.add_argument(
        "--fields",
        nargs="?",
        const="",
        metavar="SECTION",
        help="list each field with its type, default and meaning (one section: data, model, "
        "optim, schedule, train, search)",
    )
    add_common(p)
    p.set_defaults(func=cmd_config)
