"""The search space: dotted config paths, each with a distribution sampled on the right scale.

A distribution string such as ``loguniform(1e-4, 1e-1)`` becomes a `Dimension`: it knows its
Optuna distribution in the *transformed* space the samplers work in, and converts between Optuna
values (what the study stores) and config values (what the experiment uses and what we report).

Kinds and their scales (the lecture: sample on the scale where effort should be spread evenly):

| kind              | Optuna param           | Optuna distribution                          |
|-------------------|------------------------|----------------------------------------------|
| uniform(a, b)     | ``<path>``             | FloatDistribution(a, b)                      |
| loguniform(a, b)  | ``<path>``             | FloatDistribution(a, b, log=True)            |
| int(a, b)         | ``<path>``             | IntDistribution(a, b)                        |
| logint(a, b)      | ``<path>``             | IntDistribution(a, b, log=True)              |
| choice([x, y])    | ``<path>``             | CategoricalDistribution((x, y))              |
| beta(a, b)        | ``1-<path>``           | FloatDistribution(1 - b, 1 - a, log=True)    |

A ``beta`` dimension is an exponential-average coefficient: Optuna samples ``1 - beta`` on a log
scale under the param name ``"1-" + path`` (e.g. ``1-optim.betas.0``), so 0.9..0.999 spends as much
effort on 0.99..0.999 as on 0.9..0.99. Config values are always beta itself.

The "transformed space" of a dimension is log10 of the Optuna value for log distributions (also
for beta, where the Optuna value is 1 - beta) and the Optuna value itself otherwise. Samplers
draw uniformly there, space grid points evenly there, and zoom boxes there.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from trainlab.dotted import set_path, with_values
from trainlab.errors import UserError

KINDS = ("uniform", "loguniform", "int", "logint", "choice", "beta")
LOG_KINDS = ("loguniform", "logint", "beta")
BETA_PARAM_PREFIX = "1-"
_USAGE = (
    "uniform(a, b), loguniform(a, b), int(a, b), logint(a, b), choice([x, y, ...]) or beta(a, b)"
)
_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\((.*)\)\s*$", re.DOTALL)

Choice = str | int | float | bool | None


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class DistributionSpec:
    """A parsed distribution string: its kind and bounds (or choices), in config values."""

    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Choice, ...] = ()

    def __str__(self) -> str:
        if self.kind == "choice":
            return f"choice([{', '.join(_format_choice(c) for c in self.choices)}])"
        return f"{self.kind}({self.low:g}, {self.high:g})"


def parse_distribution(text: str) -> DistributionSpec:
    """Parse ``kind(args)``; raise ValueError (without the field name) on any mistake."""
    if not isinstance(text, str):
        raise ValueError(f"must be a distribution string such as {_USAGE}, got {text!r}")
    match = _CALL.match(text)
    if match is None:
        raise ValueError(f"expected a distribution such as loguniform(1e-4, 1e-1), got {text!r}")
    kind, args = match.group(1).lower(), match.group(2).strip()
    if kind not in KINDS:
        raise ValueError(f"unknown distribution {match.group(1)!r}; use {_USAGE}")
    if kind == "choice":
        return _parse_choice(args, text)
    parts = [p.strip() for p in args.split(",")] if args else []
    if len(parts) != 2:
        raise ValueError(f"{kind} takes 2 numbers (low, high), got {len(parts)} in {text!r}")
    low, high = (_parse_number(p, kind, text) for p in parts)
    if kind in ("int", "logint"):
        if not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"{kind} needs integer bounds, got {text!r}")
        low, high = int(low), int(high)
    if not low < high:
        raise ValueError(f"needs low < high, got {text!r}")
    if kind in ("loguniform", "logint") and low <= 0:
        raise ValueError(f"{kind} needs low > 0 (it samples on a log scale), got {text!r}")
    if kind == "beta" and not (0 < low and high < 1):
        raise ValueError(f"beta needs bounds inside (0, 1), got {text!r}")
    return DistributionSpec(kind, low, high)


def _parse_number(token: str, kind: str, text: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{kind} bound {token!r} is not a number in {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{kind} bounds must be finite, got {text!r}")
    return value


def _parse_choice(args: str, text: str) -> DistributionSpec:
    if args.startswith("[") != args.endswith("]"):
        raise ValueError(f"choice has unbalanced brackets in {text!r}")
    if args.startswith("["):
        args = args[1:-1].strip()
    choices = tuple(_parse_choice_item(item) for item in _split_items(args, text)) if args else ()
    if not choices:
        raise ValueError(f"choice needs at least one value, got {text!r}")
    seen: list[Choice] = []
    for c in choices:
        if any(type(c) is type(s) and c == s for s in seen):
            raise ValueError(f"choice lists {_format_choice(c)} twice in {text!r}")
        seen.append(c)
    return DistributionSpec("choice", choices=choices)


def _split_items(args: str, text: str) -> list[str]:
    """Split on commas outside quotes."""
    items, current, quote = [], [], ""
    for ch in args:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if quote:
        raise ValueError(f"choice has an unclosed quote in {text!r}")
    items.append("".join(current).strip())
    if any(item == "" for item in items):
        raise ValueError(f"choice has an empty item in {text!r}")
    return items


def _parse_choice_item(item: str) -> Choice:
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    lowered = item.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    for convert in (int, float):
        try:
            return convert(item)
        except ValueError:
            pass
    return item


def _format_choice(c: Choice) -> str:
    return repr(c) if isinstance(c, str) else str(c)


# --------------------------------------------------------------------------- transformed space


def _log_dist(dist: BaseDistribution) -> bool:
    return isinstance(dist, FloatDistribution | IntDistribution) and dist.log


def to_transformed(dist: BaseDistribution, value: float) -> float:
    """Optuna value -> coordinate in the transformed space (log10 on log scales)."""
    return math.log10(value) if _log_dist(dist) else float(value)


def from_transformed(dist: FloatDistribution | IntDistribution, t: float) -> float | int:
    """Coordinate in the transformed space -> Optuna value inside the distribution."""
    value = 10.0**t if dist.log else t
    return _snap(dist, value)


def transformed_bounds(dist: FloatDistribution | IntDistribution) -> tuple[float, float]:
    """The distribution's bounds in the transformed space."""
    return to_transformed(dist, dist.low), to_transformed(dist, dist.high)


def _snap(dist: FloatDistribution | IntDistribution, value: float) -> float | int:
    """Round to the distribution's step (ints, stepped floats) and clip into its bounds."""
    low, high = dist.low, dist.high
    if isinstance(dist, IntDistribution):
        k = round((value - low) / dist.step)
        return int(min(max(low + k * dist.step, low), high))
    if dist.step is not None:
        value = low + round((value - low) / dist.step) * dist.step
    return float(min(max(value, low), high))


def sample_value(
    dist: BaseDistribution,
    rng: np.random.Generator,
    low: float | None = None,
    high: float | None = None,
    choices: Iterable[Choice] | None = None,
) -> Any:
    """Draw one Optuna value uniformly in the transformed space.

    `low`/`high` (Optuna values inside the distribution) narrow the range, `choices` narrows a
    categorical. Integers are drawn from [low - 0.5, high + 0.5] and rounded, so every integer,
    endpoints included, gets its fair share (on the log scale for log ints).
    """
    if isinstance(dist, CategoricalDistribution):
        allowed = list(dist.choices) if choices is None else list(choices)
        return allowed[int(rng.integers(len(allowed)))]
    if not isinstance(dist, FloatDistribution | IntDistribution):
        raise TypeError(f"cannot sample {type(dist).__name__}")
    lo = dist.low if low is None else max(low, dist.low)
    hi = dist.high if high is None else min(high, dist.high)
    # Discrete values own the half-step around them (log ints have low >= 1, so lo - 0.5 > 0).
    half = 0.5 * dist.step if isinstance(dist, IntDistribution) or dist.step else 0.0
    lo_t, hi_t = to_transformed(dist, lo - half), to_transformed(dist, hi + half)
    value = from_transformed(dist, float(rng.uniform(lo_t, hi_t)))
    return min(max(value, lo), hi)


# --------------------------------------------------------------------------- dimensions


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: a dotted config path and its distribution."""

    name: str
    spec: DistributionSpec

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def low(self) -> float | int | None:
        """Lower bound in config values (None for choice)."""
        return self.spec.low

    @property
    def high(self) -> float | int | None:
        """Upper bound in config values (None for choice)."""
        return self.spec.high

    @property
    def choices(self) -> tuple[Choice, ...]:
        return self.spec.choices

    @property
    def log(self) -> bool:
        """Whether the transformed space (and the plot axis) is logarithmic."""
        return self.kind in LOG_KINDS

    @property
    def is_categorical(self) -> bool:
        return self.kind == "choice"

    @property
    def param_name(self) -> str:
        """The Optuna param name: the path, or ``1-<path>`` for beta (Optuna stores 1 - beta)."""
        return BETA_PARAM_PREFIX + self.name if self.kind == "beta" else self.name

    @property
    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of the param, in the sampler's (transformed) terms."""
        s = self.spec
        if s.kind == "uniform":
            return FloatDistribution(float(s.low), float(s.high))
        if s.kind == "loguniform":
            return FloatDistribution(float(s.low), float(s.high), log=True)
        if s.kind in ("int", "logint"):
            return IntDistribution(int(s.low), int(s.high), log=s.kind == "logint")
        if s.kind == "beta":
            return FloatDistribution(_complement(s.high), _complement(s.low), log=True)
        return CategoricalDistribution(s.choices)

    def to_config_value(self, optuna_value: Any) -> Any:
        """Optuna param value -> config value (beta = 1 - value, clipped into the beta bounds)."""
        if self.kind == "beta":
            return float(min(max(1.0 - float(optuna_value), self.low), self.high))
        if self.kind in ("int", "logint"):
            return int(optuna_value)
        if self.kind in ("uniform", "loguniform"):
            return float(optuna_value)
        return optuna_value

    def to_optuna_value(self, config_value: Any) -> Any:
        """Config value -> Optuna param value (inside the Optuna distribution)."""
        if self.kind == "choice":
            if config_value not in self.choices:
                raise ValueError(f"{self.name}: {config_value!r} is not one of {self.choices}")
            return config_value
        dist = self.distribution
        value = _complement(float(config_value)) if self.kind == "beta" else config_value
        return _snap(dist, value)

    def transform(self, optuna_value: Any) -> float:
        """Optuna value -> transformed coordinate (log10 for log scales; 1 - beta for beta)."""
        return to_transformed(self.distribution, optuna_value)

    def untransform(self, t: float) -> Any:
        """Transformed coordinate -> Optuna value (rounded for ints, clipped to the bounds)."""
        return from_transformed(self.distribution, t)

    @property
    def transformed_bounds(self) -> tuple[float, float]:
        return transformed_bounds(self.distribution)

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this param; return the config value."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            value = trial.suggest_categorical(self.param_name, list(dist.choices))
        elif isinstance(dist, IntDistribution):
            value = trial.suggest_int(self.param_name, dist.low, dist.high, log=dist.log)
        else:
            value = trial.suggest_float(self.param_name, dist.low, dist.high, log=dist.log)
        return self.to_config_value(value)


def _complement(x: float) -> float:
    """1 - x to 12 significant digits, so 1 - 0.999 reads 0.001 (not 0.0010000000000000009)."""
    return float(f"{1.0 - x:.12g}")


# --------------------------------------------------------------------------- the space


class Space:
    """An ordered set of dimensions, addressed by dotted path or by Optuna param name."""

    def __init__(self, dims: Iterable[Dimension]) -> None:
        self.dims: tuple[Dimension, ...] = tuple(dims)
        self.by_path: dict[str, Dimension] = {d.name: d for d in self.dims}
        self.by_param: dict[str, Dimension] = {d.param_name: d for d in self.dims}

    def __len__(self) -> int:
        return len(self.dims)

    def __iter__(self):
        return iter(self.dims)

    def __contains__(self, path: object) -> bool:
        return path in self.by_path

    def __getitem__(self, path: str) -> Dimension:
        return self.by_path[path]

    @property
    def paths(self) -> list[str]:
        return [d.name for d in self.dims]

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna param name -> distribution (the relative search space of our samplers)."""
        return {d.param_name: d.distribution for d in self.dims}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask the trial for every dimension; return dotted path -> config value."""
        return {d.name: d.suggest(trial) for d in self.dims}

    def config_values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna params (e.g. ``trial.params``) -> dotted path -> config value.

        Params that are not dimensions of this space are left out.
        """
        return {
            d.name: d.to_config_value(params[d.param_name])
            for d in self.dims
            if d.param_name in params
        }


def parse_space(space: Mapping[str, str], known_path: Callable[[str], bool]) -> Space:
    """Build a `Space` from ``{dotted path: distribution string}``.

    `known_path` says whether a dotted path exists in the experiment config schema. Mistakes
    raise `UserError` naming ``search.space.<path>``.
    """
    if not space:
        raise UserError(
            "search.space: is empty; give dotted paths with distributions, "
            "e.g. optim.lr: loguniform(1e-4, 1e-1)"
        )
    dims = []
    for path, text in space.items():
        field = f"search.space.{path}"
        if not isinstance(path, str) or not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", path):
            raise UserError(f"{field}: not a dotted path such as optim.lr or optim.betas.0")
        if not known_path(path):
            raise UserError(f"{field}: not a field of the experiment config")
        try:
            spec = parse_distribution(text)
        except ValueError as exc:
            raise UserError(f"{field}: {exc}") from None
        dims.append(Dimension(path, spec))
    return Space(dims)


# --------------------------------------------------------------------------- applying values


def apply_overrides(
    config_dict: Mapping[str, Any], values: Mapping[str, Any], *, where: str = "search.space"
) -> dict[str, Any]:
    """A copy of `config_dict` with each dotted path set to its value (trainlab.dotted).

    A list the config does not have cannot be indexed (give the whole list in the config); a
    path that cannot be set raises `UserError` naming ``<where>.<path>``.
    """
    return with_values(config_dict, values, prefix=where)


def drop_unused(
    values: Mapping[str, Any],
    config_dict: Mapping[str, Any],
    applies: Callable[[str, dict[str, Any]], bool],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split sampled values into those that apply to the sampled config and those that do not.

    `applies(path, sampled_config)` is asked with the config that has every sampled value set
    (those that can be set), so a key such as ``optim.betas.0`` is judged against the sampled
    ``optim.name``. Unused values are not an error: the caller records them on the trial.
    """
    sampled = copy.deepcopy(dict(config_dict))
    for path, value in values.items():
        try:
            set_path(sampled, path, value)
        except UserError:
            pass  # its container does not exist in this config; `applies` decides
    used: dict[str, Any] = {}
    unused: dict[str, Any] = {}
    for path, value in values.items():
        (used if applies(path, sampled) else unused)[path] = value
    return used, unused
