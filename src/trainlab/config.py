"""Experiment configs: YAML + `--set` overrides, validated by pydantic.

Defaults follow the lecture, so a three-line config trains something sensible. Every section refuses
unknown keys, and the optimizer section has one schema per optimizer (`optim.name` picks it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trainlab import names
from trainlab.dotted import get_path, set_path
from trainlab.errors import UserError, excerpt
from trainlab.optimizer_defaults import FULL_BATCH, defaults


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


MAX_SCALAR = 1e30  # hyperparameters become float32 scalars (max 3.4e38), times 1/(1 - beta)


def _representable(value: float) -> float:
    if value > MAX_SCALAR:
        raise ValueError(
            f"must be at most {MAX_SCALAR:g} (beyond it float32 arithmetic overflows), "
            f"got {value:g}"
        )
    return value


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False), AfterValidator(_representable)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_representable)]


def _probability(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {value:g}")
    return value


Probability = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_probability)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what numpy and torch generators all accept


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be an integer >= 1, got {value}")
    return value


def _positive_norm(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be a number > 0 (or null: no clipping), got {value:g}")
    return _representable(value)


def _val_fraction(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"must be in (0, 1), got {value:g}: the validation split picks the best epoch and "
            "stops early"
        )
    return value


def is_plugin(name: str) -> bool:
    """`package.module:attribute` names the user's own code (a model factory or data function)."""
    return ":" in name


def _plugin_path(value: str) -> str:
    module, _, attr = value.partition(":")
    if not module.strip() or not attr.strip() or ":" in attr:
        raise ValueError(f"an import path is package.module:attribute, got {excerpt(value)}")
    return value


# ----------------------------------------------------------------------------------------- data
class LoaderConfig(Section):
    """How a streamed data set (a plugin's torch Dataset, an image folder) reaches the model."""

    workers: Annotated[int, Field(ge=0)] = 0  # DataLoader worker processes (0: in the trainer)
    prefetch: Annotated[int, Field(ge=1)] = 2  # batches loaded ahead per worker
    stats_examples: Annotated[int, Field(ge=1)] = 10_000  # examples read for mean/std


DATA_NAMES = names.DATA_SETS + names.DATA_FORMATS


class DataConfig(Section):
    # a built-in name (DATA_NAMES), or "package.module:function" returning the user's data
    name: str = "mnist1d"
    args: dict[str, Any] = {}  # keyword arguments of a plugin data function
    loader: LoaderConfig = LoaderConfig()
    path: str | None = None  # file or folder for user data
    seed: Seed = 0  # data generation and split seed (the same data set for every training seed)
    val_fraction: Annotated[float, AfterValidator(_val_fraction)] = 0.1  # of the training split
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2  # for sets without a fixed test split
    classes: list[int] | None = None  # keep these labels only, relabelled 0..k-1
    per_class: Annotated[int, Field(ge=1)] | None = None  # at most this many train examples/class
    resize: list[int] | None = None  # images to [H, W]
    label_column: int | str = -1  # CSV: index or header name of the label column
    augment: list[str | dict[str, Any]] = []  # batch augmentations, see trainlab.data.augment

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if is_plugin(v):
            return _plugin_path(v)
        if v not in DATA_NAMES and v != "file":
            raise ValueError(
                f"must be one of {', '.join(DATA_NAMES)} or package.module:function, "
                f"got {excerpt(v)}"
            )
        return v

    @model_validator(mode="after")
    def _args_for_plugins(self) -> DataConfig:
        if self.args and not is_plugin(self.name):
            raise ValueError("data.args: only for a plugin data.name (package.module:function)")
        return self

    @field_validator("resize")
    @classmethod
    def _resize(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or min(v) < 1):
            raise ValueError("must be [height, width] with positive sizes")
        return v


# ---------------------------------------------------------------------------------------- model
MODEL_KINDS = names.MODEL_KINDS


class ModelConfig(Section):
    # a built-in family (MODEL_KINDS), or "package.module:factory" called as
    # factory(input_shape, num_classes, **args) -> nn.Module giving (N, num_classes) logits
    kind: str = "mlp"
    args: dict[str, Any] = {}  # keyword arguments of a plugin factory (searchable: model.args.x)
    width: Annotated[int, Field(ge=1)] = 128  # hidden units (mlp) or channels of the first stage
    depth: Annotated[int, Field(ge=1)] = 2  # hidden layers (mlp), conv stages (cnn), res. blocks
    kernel_size: Annotated[int, Field(ge=1)] = 5  # conv kernel (cnn, resnet)
    activation: names.literal(names.ACTIVATIONS) = "relu"
    norm: names.literal(names.NORMS) = "none"
    dropout: Probability = 0.0  # drop probability p of hidden activations (inverted dropout)
    channel_dropout: Probability = 0.0  # drop probability of whole feature maps (conv models)
    drop_connect: Probability = 0.0  # drop probability of single weights (DropConnect)
    stochastic_depth: Probability = 0.0  # drop probability of the last residual block
    pool: names.literal(names.POOLS) = "max"  # downsampling between conv stages

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if is_plugin(v):
            return _plugin_path(v)
        if v not in MODEL_KINDS:
            raise ValueError(
                f"must be one of {', '.join(MODEL_KINDS)} or package.module:factory, "
                f"got {excerpt(v)}"
            )
        return v

    @model_validator(mode="after")
    def _plugin_fields(self) -> ModelConfig:
        """A plugin builds its own layers: a built-in field it cannot honour is refused, not
        ignored (compared with the default, so a saved, fully written config loads again)."""
        if not is_plugin(self.kind):
            if self.args:
                raise ValueError(
                    "model.args: only for a plugin model.kind (package.module:factory); "
                    f"{self.kind} takes width, depth, ..."
                )
            return self
        for name, field in type(self).model_fields.items():
            if name not in ("kind", "args") and getattr(self, name) != field.default:
                raise ValueError(
                    f"model.{name}: a plugin model ({self.kind}) builds its own layers; pass "
                    f"settings to it as model.args.<name> instead"
                )
        return self


# ------------------------------------------------------------------------------------ optimizers
Betas = tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]]
# Every default below is the optimizer's own (torch's) with the lecture's settings on top, from
# one place that imports no torch: trainlab.optimizer_defaults (docs/optimizers.md lists where
# they differ).
_D = {name: defaults(name) for name in names.OPTIMIZERS}


class _Optim(Section):
    lr: PositiveFloat
    weight_decay: NonNegFloat = 0.0  # coupled L2 inside the optimizer (decoupled for adamw)

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments for trainlab.optim.create (everything but the name)."""
        return self.model_dump(exclude={"name"})


class SGDConfig(_Optim):
    name: Literal["sgd"]
    lr: PositiveFloat = _D["sgd"]["lr"]


class MomentumConfig(_Optim):
    name: Literal["momentum", "nesterov"]
    lr: PositiveFloat = _D["momentum"]["lr"]
    momentum: Probability = _D["momentum"]["momentum"]  # friction rho
    dampening: Probability = float(_D["momentum"]["dampening"])


class AdagradConfig(_Optim):
    name: Literal["adagrad"]
    lr: PositiveFloat = _D["adagrad"]["lr"]
    lr_decay: NonNegFloat = float(_D["adagrad"]["lr_decay"])
    initial_accumulator_value: NonNegFloat = float(_D["adagrad"]["initial_accumulator_value"])
    eps: PositiveFloat = _D["adagrad"]["eps"]


class RMSpropConfig(_Optim):
    name: Literal["rmsprop"]
    lr: PositiveFloat = _D["rmsprop"]["lr"]
    alpha: Probability = _D["rmsprop"]["alpha"]  # the lecture's decay_rate
    eps: PositiveFloat = _D["rmsprop"]["eps"]
    momentum: Probability = float(_D["rmsprop"]["momentum"])
    centered: bool = _D["rmsprop"]["centered"]


class AdamConfig(_Optim):
    name: Literal["adam"]
    lr: PositiveFloat = _D["adam"]["lr"]
    betas: Betas = _D["adam"]["betas"]
    eps: PositiveFloat = _D["adam"]["eps"]
    amsgrad: bool = _D["adam"]["amsgrad"]


class AdamWConfig(AdamConfig):
    name: Literal["adamw"]  # type: ignore[assignment]
    weight_decay: NonNegFloat = _D["adamw"]["weight_decay"]


class LBFGSConfig(Section):
    name: Literal["lbfgs"]
    lr: PositiveFloat = float(_D["lbfgs"]["lr"])
    max_iter: Annotated[int, Field(ge=1)] = _D["lbfgs"]["max_iter"]  # per step (one per epoch)
    history_size: Annotated[int, Field(ge=1)] = _D["lbfgs"]["history_size"]
    line_search_fn: Literal["strong_wolfe"] | None = _D["lbfgs"]["line_search_fn"]
    tolerance_grad: PositiveFloat = _D["lbfgs"]["tolerance_grad"]
    tolerance_change: PositiveFloat = _D["lbfgs"]["tolerance_change"]

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"})


class NewtonConfig(Section):
    name: Literal["newton"]
    lr: PositiveFloat = float(_D["newton"]["lr"])
    damping: NonNegFloat = _D["newton"]["damping"]

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"})


OptimConfig = Annotated[
    SGDConfig
    | MomentumConfig
    | AdagradConfig
    | RMSpropConfig
    | AdamConfig
    | AdamWConfig
    | LBFGSConfig
    | NewtonConfig,
    Field(discriminator="name"),
]
#: optim.name -> its schema (the union's members by their name tags), checked at import to have
#: exactly the names of trainlab.names.OPTIMIZERS
OPTIM_SCHEMAS: dict[str, type[Section]] = names.covers(
    {
        tag: schema
        for schema in get_args(get_args(OptimConfig)[0])
        for tag in get_args(schema.model_fields["name"].annotation)
    },
    names.OPTIMIZERS,
    "trainlab.config.OPTIM_SCHEMAS",
)
DEFAULT_OPTIMIZER = "adam"  # the lecture: "Adam is a good default choice in many cases"
OPTIMIZER_NAMES = names.OPTIMIZERS


# -------------------------------------------------------------------------------------- schedule
class ScheduleConfig(Section):
    name: names.literal(names.SCHEDULES) = "constant"  # the lecture: start without decay
    warmup_epochs: NonNegFloat = 0.0
    milestones: list[float] = []  # step: epochs where lr *= gamma (default: 50% and 75% of the run)
    gamma: Annotated[float, Field(gt=0, le=1)] | None = None  # step: factor per milestone (0.1);
    #                                                     exponential: factor per epoch (0.95)
    decay: NonNegFloat = 1.0  # inverse_time: lr0 / (1 + decay * epoch)
    cycles: Annotated[int, Field(ge=1)] = 1  # cosine_restarts
    final_lr_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0  # cosine floor, fraction of lr0
    # update the lr every optimizer step or every epoch
    per: names.literal(names.SCHEDULE_PER) = "step"


# ----------------------------------------------------------------------------------------- train
class TrainConfig(Section):
    epochs: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 128
    seed: Seed = 0
    patience: Annotated[int, Field(ge=1)] | None = None  # early stopping on val accuracy (epochs)
    device: names.literal(names.DEVICES) = "cpu"
    threads: Annotated[int, Field(ge=1)] | None = None  # torch intra-op threads (default: all)
    l2: NonNegFloat = 0.0  # adds l2/2 * sum(w^2) to the loss
    l1: NonNegFloat = 0.0  # adds l1 * sum(|w|) to the loss
    no_decay: list[str] = ["bias", "norm"]  # parameters exempt from l2/l1/weight decay
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    log_steps: bool = True  # write steps.jsonl with the loss of every step
    diverge_factor: Annotated[float, Field(gt=1)] = 3.0  # stop when loss > factor * initial loss
    tta: names.literal(names.TTA_MODES) = "none"
    ema: Annotated[float, Field(ge=0, lt=1)] | None = None  # Polyak averaging decay
    snapshots: Annotated[int, Field(ge=2)] | None = None  # snapshot ensemble of M cosine cycles
    ensemble: Annotated[int, Field(ge=2)] | None = None  # train N members with different seeds
    members: list[dict[str, Any]] = []  # per-member overrides, {dotted.path: value}
    tensorboard: bool = False
    # clip the global gradient norm (all trainable parameters) to this before each optimizer step
    clip_grad_norm: (
        Annotated[float, Field(allow_inf_nan=False), AfterValidator(_positive_norm)] | None
    ) = None
    accumulate: Annotated[int, AfterValidator(_at_least_one)] = 1  # minibatches per optimizer step
    # arithmetic of the forward/backward pass: fp32, bf16 (autocast, CPU and CUDA) or fp16
    # (autocast with a gradient scaler, CUDA only); weights and optimizer state stay fp32
    precision: names.literal(names.PRECISIONS) = "fp32"
    # one run on many processes (--nproc, torchrun): batch norm synchronized across processes
    # (SyncBatchNorm, CUDA) instead of per-process statistics; the optimizer state sharded over
    # the processes (torch's ZeroRedundancyOptimizer; checkpoints hold the whole state)
    sync_bn: bool = False
    shard_optimizer: bool = False


class ExperimentConfig(Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = AdamConfig(name="adam")
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    search: dict[str, Any] | None = None  # read by `trainlab search`, ignored by `trainlab train`

    @model_validator(mode="before")
    @classmethod
    def _default_optimizer(cls, data: Any) -> Any:
        """`optim: {lr: 3e-3}` with no name means the default optimizer (adam)."""
        if (
            isinstance(data, dict)
            and isinstance(data.get("optim"), dict)
            and "name" not in data["optim"]
        ):
            data = {**data, "optim": {"name": DEFAULT_OPTIMIZER, **data["optim"]}}
        return data

    @model_validator(mode="after")
    def _checks(self) -> ExperimentConfig:
        if self.model.stochastic_depth > 0 and self.model.kind != "resnet":
            raise ValueError(
                "model.stochastic_depth: needs model.kind resnet (drops residual blocks)"
            )
        full_batch = self.optim.name in FULL_BATCH
        if full_batch and self.train.clip_grad_norm is not None:
            raise ValueError(
                f"train.clip_grad_norm: {self.optim.name} sets its own step length from the "
                "full-batch gradient; use null"
            )
        if self.train.precision == "fp16" and self.train.device == "cpu":
            raise ValueError(
                "train.precision: fp16 needs train.device cuda (its gradient scaler is CUDA's); "
                "use bf16 on the CPU"
            )
        if self.train.accumulate > 1 and full_batch:
            raise ValueError(
                f"train.accumulate: {self.optim.name} takes full-batch steps, so there is "
                f"nothing to accumulate; use 1 (got {self.train.accumulate})"
            )
        return self


# --------------------------------------------------------------------------------- loading, errors
def _optimizer_fields(name: str) -> list[str]:
    """The keys the `optim` section accepts for optimizer `name`."""
    return list(OPTIM_SCHEMAS[name].model_fields) if name in OPTIM_SCHEMAS else []


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first offending field and what is allowed, with at most an excerpt
    of the bad value (`prefix` names the section of a model validated on its own: search)."""
    e = err.errors()[0]
    loc = [p if len(p) <= 40 else p[:37] + "..." for p in (prefix, *map(str, e["loc"])) if p]
    optimizer = None
    if len(loc) >= 2 and loc[0] == "optim" and loc[1] in OPTIMIZER_NAMES:
        optimizer = loc[1]
        loc = [loc[0]] + loc[2:]  # drop the discriminator tag pydantic puts in the path
    field = ".".join(loc) or "config"
    kind = e["type"]
    if kind == "extra_forbidden" and optimizer is not None and len(loc) == 2:
        allowed = ", ".join(k for k in _optimizer_fields(optimizer) if k != "name")
        return f"{field}: unknown key for optim.name {optimizer} (its keys: {allowed})"
    if kind == "extra_forbidden":
        return f"{field}: unknown key"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"optim.name: must be one of {', '.join(OPTIMIZER_NAMES)}"
    if kind == "value_error":
        msg = str(e.get("ctx", {}).get("error", e["msg"]))
        if re.match(r"^[a-z_]+\.[a-z_.0-9]+: ", msg):  # a model-level check names its own field
            return msg
        return f"{field}: {msg}"
    got = e.get("input")
    got_s = "" if isinstance(got, dict) else f" (got {excerpt(got)})"
    return f"{field}: {e['msg'][:1].lower()}{e['msg'][1:]}{got_s}"


def validate(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a nested dict; a mistake becomes a UserError naming the field."""
    if not isinstance(raw, dict):
        raise UserError(
            "config: must be a mapping with sections data, model, optim, schedule, train"
        )
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(format_validation_error(err)) from None


def _default_list(raw: dict[str, Any]) -> Callable[[str], list[Any]]:
    """For `--set optim.betas.0=0.8` on a config without betas: the list the field has after
    validation (its default), so one element of it can be set."""

    def default(path: str) -> list[Any]:
        value = get_path(validate(raw).model_dump(mode="json"), path, None)
        if not isinstance(value, list):
            raise UserError(f"{path}: is not a list, so it has no elements to set")
        return value

    return default


def parse_value(text: str) -> Any:
    """A --set value is YAML (so 3e-3, [1, 2], true work); `1e-3` becomes a float, as in configs."""
    try:
        value = safe_load_bounded(text, "--set")
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return f if math.isfinite(f) or value.lower() in ("inf", "-inf", "nan") else value
    return value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` strings (the CLI's --set) to a raw config dict, in order."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item}: expected key=value, e.g. optim.lr=3e-3")
        path, text = item.split("=", 1)
        set_path(raw, path.strip(), parse_value(text.strip()), missing_list=_default_list(raw))
    return raw


MAX_YAML_VALUES = 100_000  # values after expanding aliases; a real config has hundreds


def safe_load_bounded(text: str, what: str) -> Any:
    """yaml.safe_load that refuses documents whose aliases (*name) expand to more than
    MAX_YAML_VALUES values (a "billion laughs" would take minutes and gigabytes), in a second."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, what) > MAX_YAML_VALUES:
            raise UserError(
                f"{what}: expands to more than {MAX_YAML_VALUES} values through YAML aliases "
                "(*name repeats what &name marks); write the values out"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise UserError(f"{what}: nested too deeply") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None], what: str) -> int:
    """How many values `node` stands for once aliases are expanded (counting stops past the
    bound); each node is counted once, so this costs the size of the text."""
    if id(node) in sizes:
        size = sizes[id(node)]
        if size is None:
            raise UserError(f"{what}: a YAML alias (*name) refers to a value that holds it")
        return size
    sizes[id(node)] = None
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = node.value if isinstance(node, yaml.SequenceNode) else []
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, what)
        if total > MAX_YAML_VALUES:
            break
    sizes[id(node)] = total
    return total


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config: file not found: {p}")
    try:
        raw = safe_load_bounded(p.read_text(encoding="utf-8"), "config") or {}
    except UnicodeDecodeError:
        raise UserError(f"config: {p} is not UTF-8 text (a YAML file is)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise UserError(f"config: YAML syntax error in {p}{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"config: {p} must hold a mapping with sections data, model, optim, ...")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read YAML (if any), apply --set overrides, validate."""
    raw = read_yaml(path) if path is not None else {}
    return validate(apply_overrides(raw, list(overrides)))


def to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


_ABSENT = object()


def known_path(path: str, name: str | None = None) -> bool:
    """Whether a dotted path names a field of the config schema (for search spaces); anything
    under model.args / data.args is the plugin's own keyword argument."""
    keys = path.split(".")
    if keys[0] in ("model", "data") and len(keys) >= 3 and keys[1] == "args":
        return True
    if keys[0] == "optim" and len(keys) >= 2:
        names = [name] if name else list(OPTIMIZER_NAMES)
        return any(
            get_path(validate({"optim": {"name": n}}).model_dump(), path, _ABSENT) is not _ABSENT
            for n in names
        )
    return get_path(ExperimentConfig().model_dump(), path, _ABSENT) is not _ABSENT
