"""Model ensembles (CS231n lecture 7): train several independent models and average their
predicted probabilities at test time, "typically about 2% extra performance".

- `evaluate_runs(run_dirs)`: the ensemble of finished runs (each loaded once; members may differ
  in size, optimizer and regularization, not in data), for `trainlab ensemble`.
- `train_ensemble(cfg, ...)`: `train.ensemble: N` trains N members with seeds seed, seed+1, ...
  (and per-member overrides `train.members`) into <run>/members/<i>/, then evaluates them together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config import ExperimentConfig, apply_overrides, to_yaml, validate
from trainlab.data import AnySplits, prepare
from trainlab.data.dataset import Normalizer, load_inputs_for
from trainlab.data.streaming import Split
from trainlab.engine.evaluate import accuracy_of_proba, predict_proba, predict_split
from trainlab.engine.run import load_run
from trainlab.engine.state import Result
from trainlab.engine.trainer import Callback
from trainlab.errors import UserError
from trainlab.experiments.single import saved_config, train_single, uses_plugins
from trainlab.rundir import BEST, RESULT, RunDir

TRAINING_ONLY_DATA = ("augment",)  # data fields that change training, not the evaluated split


# ------------------------------------------------------------------------------- finished runs
@dataclass
class Member:
    """One finished run, loaded once: its network (best weights), config and test accuracy."""

    run_dir: Path
    model: nn.Module
    config: ExperimentConfig
    input_shape: tuple[int, ...]
    num_classes: int
    result: dict[str, Any]
    normalizer: Normalizer  # the input statistics saved with the weights


def expand_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """The run directories named; an ensemble run (one with members/) stands for its members."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise UserError(f"run: {p} does not exist or is not a directory")
        run = RunDir(p)
        if run.is_ensemble():
            inner = [m.path for m in run.members()]
            if not inner:
                raise UserError(f"run: {p} is an ensemble run with no members yet")
            out += inner
        else:
            out.append(p)
    return out


def load_member(
    path: str | Path, checkpoint: str = BEST, device: str | torch.device = "cpu"
) -> Member:
    """Read one run directory: config, checkpoint (weights_only) and result, or a UserError."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"run: {p} does not exist or is not a directory")
    run = load_run(p)
    model = run.network(checkpoint, device)
    ckpt = run.checkpoint(checkpoint)
    result = run.result.to_dict() if run.result is not None else {}
    return Member(
        p,
        model,
        run.config,
        tuple(ckpt["input_shape"]),
        int(ckpt["num_classes"]),
        result,
        Normalizer.from_state(ckpt["normalizer"]),
    )


def data_key(cfg: ExperimentConfig) -> dict[str, Any]:
    """What must agree between members for their test splits to be the same examples."""
    d = cfg.data.model_dump(mode="json")
    return {k: v for k, v in d.items() if k not in TRAINING_ONLY_DATA}


def check_compatible(members: Sequence[Member]) -> None:
    """Members must have been trained on the same data, with the same input shape and classes."""
    first = members[0]
    ref = data_key(first.config)
    for m in members[1:]:
        key = data_key(m.config)
        for k in ref:
            if key[k] != ref[k]:
                raise UserError(
                    f"ensemble: members were trained on different data (data.{k} is "
                    f"{ref[k]!r} in {first.run_dir}, {key[k]!r} in {m.run_dir}); "
                    "an ensemble averages predictions on one data set"
                )
        if m.input_shape != first.input_shape or m.num_classes != first.num_classes:
            raise UserError(
                f"ensemble: {m.run_dir} takes inputs {list(m.input_shape)} with "
                f"{m.num_classes} classes, {first.run_dir} takes "
                f"{list(first.input_shape)} with {first.num_classes}"
            )


def member_probas(
    models: Sequence[nn.Module], x: torch.Tensor | Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Each model's probabilities (float64) on one split: `x` is one tensor for all members,
    or one per member (the same examples, each normalized as that member was trained)."""
    xs = [x] * len(models) if isinstance(x, torch.Tensor) else list(x)
    return [predict_proba(m, xi).double() for m, xi in zip(models, xs)]


def split_probas(
    models: Sequence[nn.Module], splits: Sequence[Split]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(each model's probabilities (float64), the labels) on one split, given as each member
    sees it (in memory or streamed: a streamed split is read once per member)."""
    probs, y = [], torch.zeros(0, dtype=torch.long)
    for model, split in zip(models, splits):
        logits, y = predict_split(model, split)
        probs.append(logits.softmax(dim=1).double())
    return probs, y


def evaluate_split_members(
    models: Sequence[nn.Module], splits: Sequence[Split]
) -> tuple[list[float], float, int]:
    """(each member's accuracy, the ensemble's accuracy, examples) on one split."""
    probs, y = split_probas(models, splits)
    singles = [accuracy_of_proba(p, y) for p in probs]
    return singles, accuracy_of_proba(torch.stack(probs).mean(0), y), len(y)


def evaluate_members(
    models: Sequence[nn.Module], x: torch.Tensor | Sequence[torch.Tensor], y: torch.Tensor
) -> tuple[list[float], float]:
    """(each member's accuracy, the ensemble's accuracy) on one split; every model predicts it
    once and the ensemble reuses those probabilities."""
    probs = member_probas(models, x)
    singles = [accuracy_of_proba(p, y) for p in probs]
    return singles, accuracy_of_proba(torch.stack(probs).mean(0), y)


def member_splits(members: Sequence[Member], splits: AnySplits) -> list[AnySplits]:
    """The data as each member sees it: normalized with the statistics saved with its weights
    (a transfer run keeps its pretrained network's); members that share statistics share one."""
    seen: dict[bytes, AnySplits] = {}
    out = []
    for m in members:
        key = m.normalizer.mean.numpy().tobytes() + m.normalizer.std.numpy().tobytes()
        if key not in seen:
            seen[key] = splits.normalized_as(m.normalizer)
        out.append(seen[key])
    return out


def load_members(
    run_dirs: Sequence[str | Path], checkpoint: str = BEST, device: str | torch.device = "cpu"
) -> list[Member]:
    """The runs named (an ensemble run stands for its members), loaded once and checked to
    have been trained on the same data."""
    paths = expand_run_dirs(run_dirs)
    if not paths:
        raise UserError("ensemble: give at least one run directory")
    members = [load_member(p, checkpoint, device) for p in paths]
    check_compatible(members)
    return members


def evaluate_runs(
    run_dirs: Sequence[str | Path], checkpoint: str = BEST, splits: AnySplits | None = None
) -> dict[str, Any]:
    """Test accuracy of each run and of the average of their probabilities (`trainlab
    ensemble`). The data set is prepared once, from the first member's config, and each member
    gets it normalized with its own saved statistics."""
    device = splits.device if splits is not None else torch.device("cpu")
    members = load_members(run_dirs, checkpoint, device)
    if splits is None:
        splits = prepare(
            members[0].config.data, search_dirs=RunDir(members[0].run_dir).plugin_dirs()
        )
    if tuple(splits.input_shape) != members[0].input_shape:
        raise UserError(
            f"ensemble: the data gives inputs {list(splits.input_shape)}, the "
            f"members take {list(members[0].input_shape)}"
        )
    models = [m.model for m in members]
    views = member_splits(members, splits)
    test_singles, test_acc, examples = evaluate_split_members(models, [v.test for v in views])
    out: dict[str, Any] = {
        "members": [
            {
                "run_dir": str(m.run_dir),
                "test_accuracy": a,
                "val_accuracy": m.result.get("val_accuracy"),
            }
            for m, a in zip(members, test_singles)
        ],
        "test_accuracy": test_acc,
        "size": len(members),
        "examples": examples,
        "checkpoint": checkpoint,
    }
    if len(splits.val):
        val_acc = evaluate_split_members(models, [v.val for v in views])[1]
        out["val_accuracy"] = val_acc
    out["mean_member_test_accuracy"] = sum(test_singles) / len(test_singles)
    return out


def evaluate_ensemble_run(path: str | Path, data_path: str | None = None) -> dict[str, Any]:
    """`trainlab eval` of a `train.ensemble` run: its members' averaged probabilities on the
    test split, or on new data of the same shape (each member normalizes it as it was trained)."""
    members = load_members([path])
    first = members[0]
    if data_path:
        inputs = [
            load_inputs_for(data_path, m.input_shape, m.normalizer, m.config.data.resize)
            for m in members
        ]
        xs, y = [x for x, _ in inputs], inputs[0][1]
        if len(y) and int(y.max()) >= first.num_classes:
            raise UserError(
                f"--data-path: labels go up to {int(y.max())}, the models know "
                f"{first.num_classes} classes"
            )
        probs, label = member_probas([m.model for m in members], xs), str(data_path)
    else:
        dirs = RunDir(first.run_dir).plugin_dirs()
        views = member_splits(members, prepare(first.config.data, search_dirs=dirs))
        probs, y = split_probas([m.model for m in members], [v.test for v in views])
        label = "test split"
    proba = torch.stack(probs).mean(0)
    loss = (
        float(-proba[torch.arange(len(y)), y].clamp_min(1e-12).log().mean())
        if len(y)
        else float("nan")
    )
    return {
        "run_dir": str(path),
        "data": label,
        "examples": len(y),
        "loss": loss,
        "accuracy": accuracy_of_proba(proba, y),
        "members": len(members),
    }


def member_configs(cfg: ExperimentConfig) -> list[ExperimentConfig]:
    """The N members' configs: seed + i, then the i-th entry of train.members (dotted overrides).
    Every config is validated before anything trains."""
    n = cfg.train.ensemble or 0
    overrides = cfg.train.members
    if len(overrides) > n:
        raise UserError(
            f"train.members: has {len(overrides)} entries, more than the "
            f"{n} members of train.ensemble"
        )
    out = []
    for i in range(n):
        raw = cfg.model_dump(mode="json")
        raw["train"].update(seed=cfg.train.seed + i, ensemble=None, members=[])
        extra = overrides[i] if i < len(overrides) else {}
        if not isinstance(extra, dict):
            raise UserError(
                f"train.members.{i}: must be a mapping of dotted paths to values, "
                "e.g. {model.width: 64}"
            )
        for path in extra:
            if str(path).split(".")[0] not in ("data", "model", "optim", "schedule", "train"):
                raise UserError(
                    f"train.members.{i}: {path} is not a dotted config path like model.width"
                )
            if str(path) in ("train.ensemble", "train.members"):
                raise UserError(f"train.members.{i}: {path} cannot be set per member")
        try:
            raw = apply_overrides(raw, [f"{k}={_yaml_value(v)}" for k, v in extra.items()])
            member = validate(raw)
        except UserError as err:
            raise UserError(f"train.members.{i}: {err}") from None
        if out and data_key(member) != data_key(out[0]):
            field = next(k for k, v in data_key(member).items() if data_key(out[0])[k] != v)
            raise UserError(
                f"train.members.{i}: data.{field} differs from member 0; the members "
                "of an ensemble share one data set (data.augment may differ)"
            )
        out.append(member)
    return out


def _yaml_value(v: Any) -> str:
    return json.dumps(v)  # JSON is YAML, so the override parser reads the value back exactly


def train_ensemble(
    cfg: ExperimentConfig,
    *,
    out: str | Path,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    splits: AnySplits | None = None,
    lr_mult: dict[str, float] | None = None,
    curves: bool = True,
    search_dirs: Sequence[str | Path] = (),
) -> Result:
    """Train the members of `train.ensemble` one after another into <out>/members/<i>/ and write
    the ensemble's result in <out>. With `resume`, members that finished are read back, the one
    that was interrupted continues from its checkpoint, the rest start. `search_dirs`: where
    plugins are looked up besides sys.path (recorded in each member's plugins.json)."""
    configs = member_configs(cfg)
    run = RunDir(out)
    with run.created(resume) as resuming, run.lock():
        dirs = run.search_dirs(search_dirs, resuming)
        return _train_members(cfg, configs, run, resuming, callbacks, splits, lr_mult, curves, dirs)


def _train_members(
    cfg: ExperimentConfig,
    configs: list[ExperimentConfig],
    run: RunDir,
    resuming: bool,
    callbacks: Sequence[Callback],
    splits: AnySplits | None,
    lr_mult: dict[str, float] | None,
    curves: bool,
    search_dirs: tuple[str, ...],
) -> Result:
    """train_ensemble() with its run directory created and locked."""
    saved_config(run, cfg, resuming)
    run.write_config(to_yaml(cfg))
    run.record_plugin_dirs(search_dirs, uses_plugins(cfg))
    if splits is None:
        # one data set for every member (member_configs)
        splits = prepare(configs[0].data, search_dirs=search_dirs)
    run.members_dir.mkdir(exist_ok=True)
    results: list[Result] = []
    for i, member_cfg in enumerate(configs):
        member = run.member(i)
        member_dir = member.path
        done = member.finished_result() if resuming else None
        if done is not None:
            results.append(Result.from_dict(done))
            continue
        started = member_dir.exists() and any(member_dir.iterdir())
        results.append(
            train_single(
                member_cfg,
                out=member_dir,
                resume=started,
                callbacks=callbacks,
                splits=splits,
                lr_mult=lr_mult,
                curves=curves,
                search_dirs=search_dirs,
            )
        )
    usable = [r for r in results if r.stopped_reason != "diverged"]
    first = results[0]
    summary = first.to_dict()
    summary.update(
        run_dir=str(run.path),
        seconds=round(sum(r.seconds for r in results), 3),
        members=[
            {
                "run_dir": r.run_dir,
                "seed": c.train.seed,
                "val_accuracy": r.val_accuracy,
                "test_accuracy": r.test_accuracy,
                "stopped_reason": r.stopped_reason,
            }
            for r, c in zip(results, configs)
        ],
    )
    if usable:
        ens = evaluate_runs([r.run_dir for r in usable], splits=splits)
        summary.update(
            ensemble_test_accuracy=ens["test_accuracy"],
            ensemble_val_accuracy=ens.get("val_accuracy"),
            ensemble_size=len(usable),
        )
    else:
        summary.update(ensemble_test_accuracy=None, ensemble_val_accuracy=None, ensemble_size=0)
    result = Result.from_dict(summary)
    run.write_json(RESULT, result.to_dict())
    return result
