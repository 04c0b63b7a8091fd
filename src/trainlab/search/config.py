"""The ``search:`` section of an experiment config (validated with pydantic v2).

Every check names its field (``search.trials: must be >= 1, got 0``). Checks that depend on an
earlier field (``epochs_per_round`` needs ``rounds``) are field validators reading the earlier
fields, so the error location is always the field at fault. `load_search_config` turns a
pydantic error into one `UserError` line with the config's `format_validation_error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from trainlab import names
from trainlab.config import format_validation_error
from trainlab.errors import UserError
from trainlab.search.space import parse_distribution

Strategy = names.literal(names.STRATEGIES)
PrunerName = names.literal(names.PRUNERS)
Executor = names.literal(names.EXECUTORS)


def _distribution_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"must be a distribution string such as loguniform(1e-4, 1e-1), got {value!r}"
        )
    return value


FLOW_STYLE = (
    "YAML flow style {a: f(x, y)} splits at the comma: write search.space in block style, one "
    "'path: distribution' per line"
)


def _check_distribution(value: str) -> str:
    try:
        parse_distribution(value)  # raises ValueError with the reason
    except ValueError as exc:
        if value.count("(") > value.count(")"):  # cut at a comma: a flow-style mapping
            raise ValueError(f"{exc}; {FLOW_STYLE}") from None
        raise
    return value


DistributionString = Annotated[
    str, BeforeValidator(_distribution_string), AfterValidator(_check_distribution)
]


def _at_least(minimum: int):
    def check(value: int | None) -> int | None:
        if value is not None and value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return check


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return value


def _integer(value: Any) -> Any:
    """Accept integers written like floats (YAML reads ``1e3`` as a string)."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value


AtLeast0 = Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(0))]
AtLeast1 = Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(1))]
AtLeast2 = Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(2))]
Fraction = Annotated[float, AfterValidator(_fraction)]


class SearchConfig(BaseModel):
    """How to search: the strategy, its budget and settings, the pruner and the space, and
    the re-test of the best configs with new seeds that follows the search (`retest`).

    Field order matters: validators of later fields read earlier ones.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = "auto"  # best of trainlab's on the HPO tables (docs/search.md)
    trials: AtLeast1 = 20  # the study's total; --resume continues up to it
    workers: AtLeast1 = 1
    executor: Executor = "local"
    seed: AtLeast0 = 0
    space: dict[str, DistributionString] = {}
    # parallel search without timing (docs/search.md, "Parallel search is reproducible: the
    # lag"): the same seed gives the same study with any number of workers, which seldom wait up
    # to lag + 1 workers; 0: each trial sees every earlier one (a sequential search)
    lag: AtLeast0 = 1  # trials: trial n is proposed and pruned from those numbered < n - lag

    # early stopping of bad trials on per-epoch validation accuracy (Optuna pruners)
    pruner: PrunerName = "none"
    pruner_startup_trials: AtLeast0 = 5  # median: trials that finish before any pruning
    pruner_warmup_epochs: AtLeast0 = 1  # median: epochs of a trial before it may be pruned
    halving_min_epochs: AtLeast1 = 1  # successive halving: epochs of the first rung
    halving_reduction_factor: AtLeast2 = 3  # successive halving: 1/factor promoted per rung

    # coarse-to-fine
    rounds: AtLeast1 | None = Field(default=None, validate_default=True)  # see resolved_rounds
    trials_per_round: AtLeast1 | None = None  # default: trials // rounds
    epochs_per_round: list[AtLeast1] | None = None  # default: the config's epochs every round
    keep_top: AtLeast1 | None = None  # the next box bounds the best keep_top trials of a round
    zoom_margin: Annotated[float, AfterValidator(_at_least(0))] = 0.25  # x box width, each side
    zoom_min_width: Fraction = 0.1  # a new box spans at least this fraction of the full range

    # block-coordinate
    blocks: list[list[str]] | None = None  # default: the learning rate, then the rest
    trials_per_block: AtLeast1 | None = None  # default: trials // number of blocks

    # grid
    grid_points: AtLeast1 | None = None  # points per numeric dimension; default fits `trials`

    # tpe
    tpe_startup_trials: AtLeast0 = 10  # random trials before TPE models the results

    # re-test the best settings (the lecture's "re-test occasionally", a guard against a lucky
    # seed): after the search, each of the best `retest` configs is trained again with
    # `retest_seeds` new training seeds (derived from `seed`, the same for every config, none
    # equal to a re-tested trial's own), on the same workers, in <study dir>/retest/<NNNN>-seed<S>/;
    # the report gives each config's mean, std, min and max of validation and test accuracy, its
    # rank by re-test mean, and the best against each other config paired by seed (as compare)
    retest: AtLeast0 = 0  # K: how many of the best complete trials (0: no re-test)
    retest_seeds: AtLeast1 = 3  # R: new seeds per re-tested config

    @field_validator("rounds")
    @classmethod
    def _round_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        trials = info.data.get("trials")
        if value is None:
            return value
        if info.data.get("strategy") == "coarse-to-fine" and trials is not None and trials < value:
            raise ValueError(
                f"coarse-to-fine runs at least one trial per round: {value} rounds need"
                f" search.trials >= {value}, got {trials}"
            )
        return value

    @field_validator("epochs_per_round")
    @classmethod
    def _one_per_round(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        rounds = info.data.get("rounds")
        if value is not None and rounds is not None and len(value) != rounds:
            raise ValueError(
                f"needs one entry per round (search.rounds = {rounds}), got {len(value)}"
            )
        trials = info.data.get("trials")
        coarse = info.data.get("strategy") == "coarse-to-fine"
        if value is not None and rounds is None and coarse and trials and trials < len(value):
            raise ValueError(
                f"gives {len(value)} rounds; coarse-to-fine runs at least one trial per round:"
                f" search.trials must be >= {len(value)}, got {trials}"
            )
        return value

    @field_validator("blocks")
    @classmethod
    def _blocks_in_space(
        cls, value: list[list[str]] | None, info: ValidationInfo
    ) -> list[list[str]] | None:
        if value is None:
            return value
        space = info.data.get("space")
        seen: set[str] = set()
        for block in value:
            if not block:
                raise ValueError("a block is empty; list one or more dotted paths per block")
            for path in block:
                if space is not None and path not in space:
                    raise ValueError(f"{path} is not in search.space")
                if path in seen:
                    raise ValueError(f"{path} is in two blocks")
                seen.add(path)
        return value

    def resolved_rounds(self) -> int:
        """Coarse-to-fine rounds: ``rounds``, else one per ``epochs_per_round`` entry, else from
        the budget: ``trials // 10`` between 1 and 3 (each round at least 10 trials; 20 trials:
        2 rounds of 10, 50: 3 rounds of 16). Measured on bench/hpo_tables.py's development tasks:
        at 20 trials, 3 rounds of 6 zoom on noise (regret 0.057/0.021 against 0.048/0.014 for 2
        rounds of 10 keeping the top 2)."""
        if self.rounds is not None:
            return self.rounds
        if self.epochs_per_round:
            return len(self.epochs_per_round)
        return min(3, max(1, self.trials // 10))

    def one_round_note(self) -> str | None:
        """The line that says coarse-to-fine will not zoom: its rounds follow from a budget
        under 20 trials (`resolved_rounds`), which makes one round of plain random search."""
        if self.strategy != "coarse-to-fine" or self.rounds or self.epochs_per_round:
            return None
        if self.resolved_rounds() > 1:
            return None
        return (
            f"search.strategy: coarse-to-fine with {self.trials} trials runs one round (plain "
            "random search); it zooms from 20 trials, or set search.rounds"
        )

    def round_size(self) -> int:
        """Coarse-to-fine: trials per round (default: trials // rounds, at least 1)."""
        return self.trials_per_round or max(1, self.trials // self.resolved_rounds())

    def resolved_keep_top(self) -> int:
        """Coarse-to-fine: best trials the next box bounds (default: 2 for rounds of fewer than
        16 trials, else 3)."""
        return self.keep_top or (2 if self.round_size() < 16 else 3)

    def resolved_blocks(
        self, paths: list[str], kinds: Mapping[str, str] | None = None
    ) -> list[list[str]]:
        """Block-coordinate groups, in order, covering every path of the space.

        Default: the learning rate first (``*.lr`` paths), then everything else; in a space with
        no ``lr`` path, the first block is the log-scale real dimensions (``loguniform``: the
        learning rates and regularization strengths the lecture tunes first, whatever their
        names), then everything else. Paths the user left out of `blocks` form one last block,
        so every dimension gets tuned. `kinds` (path -> distribution kind) defaults to the
        ``space`` strings.
        """
        if self.blocks is None:
            first = [p for p in paths if p == "lr" or p.endswith(".lr")]
            if not first:
                kinds = kinds or {p: _kind(self.space.get(p)) for p in paths}
                first = [p for p in paths if kinds.get(p) == "loguniform"]
            rest = [p for p in paths if p not in first]
            groups = [first, rest] if first else [rest]
        else:
            listed = {p for block in self.blocks for p in block}
            groups = [list(b) for b in self.blocks] + [[p for p in paths if p not in listed]]
        return [g for g in groups if g]

    def block_size(self, n_blocks: int) -> int:
        """Block-coordinate: trials per block (default: trials // number of blocks, at least 1)."""
        return self.trials_per_block or max(1, self.trials // n_blocks)


def _kind(text: str | None) -> str | None:
    return parse_distribution(text).kind if text else None


def load_search_config(data: dict[str, Any] | None) -> SearchConfig:
    """Validate a ``search:`` section (None or {} gives the defaults); raise one-line UserError."""
    try:
        return SearchConfig.model_validate(data or {})
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, "search")) from None
