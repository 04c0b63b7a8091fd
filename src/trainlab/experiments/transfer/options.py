"""The settings of a transfer, declared once: `trainlab transfer`'s flags and the keywords of
`transfer()` / `setup_transfer()`, with their types, ranges, defaults and help.

The command builds its flags from `TransferOptions` (commands/transfer.py, add_flags) and both
it and the Python API validate through `TransferOptions.check`: a mistake is one UserError line
naming the flag (`--lr-mult: must be in (0, 10], got 20`). What needs the pretrained network or
the config (more blocks than it has, a full-batch optimizer with --lr-mult) is checked when they
are loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from trainlab import names
from trainlab.errors import UserError, excerpt

DEFAULT_UNFREEZE = 1  # finetune: the last block
DEFAULT_LR_MULT = 0.1  # finetune: the unfrozen blocks' learning rate times this
MAX_LR_MULT = 10.0


def flag_of(field: str) -> str:
    """The command-line spelling of a TransferOptions field (`lr_mult` -> `--lr-mult`)."""
    extra = TransferOptions.model_fields[field].json_schema_extra
    flag = extra.get("flag") if isinstance(extra, dict) else None
    return str(flag) if flag else "--" + field.replace("_", "-")


def _path(value: Any) -> Any:
    """A path given as str or os.PathLike, kept as the text the user wrote."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _unfreeze(value: Any) -> int | str | None:
    """`N` (a whole number of last blocks, >= 0) or `all`, as an int, a digit string or `all`."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text == "all":
        return "all"
    if text is not None and text.isdigit():
        return int(text)
    raise ValueError(f"must be a number of blocks (0, 1, ...) or all, got {excerpt(value)}")


def _lr_mult(value: Any) -> float | None:
    """A multiplier in (0, MAX_LR_MULT], as a number or its text."""
    if value is None:
        return None
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0 < number <= MAX_LR_MULT):
        got = f"{number:g}" if not math.isnan(number) else excerpt(value)
        raise ValueError(f"must be in (0, {MAX_LR_MULT:g}], got {got}")
    return number


PathText = Annotated[str, BeforeValidator(_path)]


class TransferOptions(BaseModel):
    """`trainlab transfer`'s eleven flags; a field's `flag` is its spelling where it is not
    `--field-name`, `metavar` its placeholder in --help."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: PathText = Field(
        description="run directory of the pretrained network (its best.pt)",
        json_schema_extra={"flag": "--from", "metavar": "RUN_DIR"},
    )
    mode: names.literal(names.TRANSFER_MODES) = Field(
        "linear",
        description="linear: train the new head only (default); finetune: also the last "
        "--unfreeze blocks (the default when --unfreeze or --lr-mult is given)",
    )
    unfreeze: Annotated[int | str | None, BeforeValidator(_unfreeze)] = Field(
        None,
        description=f"finetune: how many of the last blocks to train (default "
        f"{DEFAULT_UNFREEZE}; all: the whole network)",
        json_schema_extra={"metavar": "N|all"},
    )
    lr_mult: Annotated[float | None, BeforeValidator(_lr_mult)] = Field(
        None,
        description=f"finetune: learning-rate multiplier of the unfrozen blocks (default "
        f"{DEFAULT_LR_MULT:g}; at most {MAX_LR_MULT:g})",
    )
    solver: names.literal(names.TRANSFER_SOLVERS) | None = Field(
        None,
        description="linear: how the head is fitted: lbfgs (default) solves the convex "
        "problem on cached features, l2 chosen on validation; optim uses the "
        "config's optimizer, epochs and batch size",
    )
    normalize: names.literal(names.TRANSFER_NORMALIZATIONS) = Field(
        "pretrained",
        description="normalize inputs with the pretraining data's statistics (default) or "
        "the new training split's",
    )
    list_blocks: bool = Field(False, description="show the pretrained network's blocks and exit")
    head: str | None = Field(
        None,
        description="plugin models: the nn.Linear replaced by the new head, a dotted module "
        "name (default: the model's last nn.Linear)",
        json_schema_extra={"metavar": "NAME"},
    )
    overrides: list[str] = Field(
        [],
        description="override a config field by dotted path (repeatable)",
        json_schema_extra={"flag": "--set", "metavar": "KEY=VALUE"},
    )
    out: PathText | None = Field(
        None, description="run directory (default runs/<config stem>-<time>)"
    )
    resume: bool = Field(False, description="continue the transfer run in --out")

    @model_validator(mode="before")
    @classmethod
    def _mode_from_flags(cls, data: Any) -> Any:
        """No mode given: --unfreeze or --lr-mult mean finetune, otherwise linear."""
        if isinstance(data, dict) and data.get("mode") is None:
            tuning = data.get("unfreeze") is not None or data.get("lr_mult") is not None
            data = {**data, "mode": "finetune" if tuning else "linear"}
        return data

    @model_validator(mode="after")
    def _together(self) -> TransferOptions:
        if self.mode == "linear" and self.unfreeze is not None:
            raise ValueError("--unfreeze: only with --mode finetune (linear trains the head only)")
        if self.mode == "linear" and self.lr_mult is not None:
            raise ValueError("--lr-mult: only with --mode finetune (linear trains the head only)")
        if self.mode != "linear" and self.solver is not None:
            raise ValueError(
                "--solver: only with --mode linear (finetune trains with the config's optimizer)"
            )
        if self.resume and self.out is None:
            raise ValueError("--resume: give the run directory to continue with --out")
        return self

    @classmethod
    def check(cls, **values: Any) -> TransferOptions:
        """Validate; a mistake is a UserError of one line naming the flag."""
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise UserError(_one_line(err)) from None

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> TransferOptions:
        """`check` on the entries of `values` that are fields (a function's keywords, parsed
        flags); None stands for the default."""
        return cls.check(
            **{k: v for k, v in values.items() if k in cls.model_fields and v is not None}
        )

    @property
    def finetune_lr_mult(self) -> float | None:
        """The unfrozen blocks' multiplier a finetune uses (None in linear mode)."""
        if self.mode == "linear":
            return None
        return DEFAULT_LR_MULT if self.lr_mult is None else self.lr_mult


def choices(field: str) -> tuple[str, ...] | None:
    """The names a TransferOptions field accepts (None: not a list of names)."""
    return names.choices_of(TransferOptions.model_fields[field].annotation)


def _one_line(err: ValidationError) -> str:
    """`--flag: what is allowed, got ...` for the first mistake."""
    e = err.errors()[0]
    field = next((str(p) for p in e["loc"] if str(p) in TransferOptions.model_fields), None)
    if e["type"] == "value_error":
        message = str(e.get("ctx", {}).get("error", e["msg"]))
        named = message.startswith("--") or field is None  # a check across flags names its own
        return message if named else f"{flag_of(field)}: {message}"
    flag = flag_of(field) if field else "transfer"
    if e["type"] == "missing":
        return f"{flag}: required"
    if e["type"] == "literal_error" and field is not None:
        return names.one_of(flag, choices(field) or (), e.get("input"))
    if e["type"] == "extra_forbidden":
        allowed = ", ".join(TransferOptions.model_fields)
        return f"{e['loc'][0]}: not a transfer setting; allowed: {allowed}"
    got = e.get("input")
    return f"{flag}: {e['msg'][:1].lower()}{e['msg'][1:]} (got {excerpt(got)})"
