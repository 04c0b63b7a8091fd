"""`train(..., nproc=N)`: one run on N local processes, started by torch's elastic launcher
(torch.distributed.launcher.api.elastic_launch, what torchrun runs) with a rendezvous on
127.0.0.1. Each process runs the same `train()`, which finds torchrun's environment and joins the
process group (engine/distributed.py); rank 0's Result comes back.

What the processes need travels by pickle: a model or data object that cannot (a lambda, a local
class, an open file) is refused in one line before anything starts. A UserError in a process is
that one line here too; a process that dies (kill -9, out of memory) stops the others, and the
run ends with one line saying so (its last checkpoint resumes with --resume).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from trainlab.engine.state import Result
from trainlab.errors import UserError
from trainlab.plugins import first_line

ERROR_FILE = "error-{rank}.txt"  # a process's UserError, for the launching process to show
INTERRUPTED = 130  # a process's exit status after Ctrl-C (the CLI's)
LAUNCHER_LOGS = (
    "torch.distributed.elastic",
    "torch.multiprocessing",
)  # quiet: we say it in one line


class RunStopped(KeyboardInterrupt):
    """A process of the run died (killed, out of memory): the run stopped before its end with
    what was done saved, as after Ctrl-C (the CLI's exit status 130, resumable)."""


def check_sendable(arguments: dict[str, Any]) -> None:
    """Refuse, in one line, an argument the processes cannot receive (pickle by name)."""
    for name, value in arguments.items():
        try:
            pickle.dumps(value)
        except Exception as err:  # pickling raises many types; all mean "cannot be sent"
            raise UserError(
                f"{name}: cannot be sent to the --nproc processes ({first_line(err)}); define "
                "it at the top level of an importable module (not __main__, a lambda or a local "
                "function), or name it in the config (module:name)"
            ) from None


def _process(
    train: Callable[..., Result | None], arguments: dict[str, Any], errors: str
) -> Result | None:
    """One process of the run: train() under torchrun's environment (set by the launcher),
    with its share of the cores (unless OMP_NUM_THREADS or train.threads say otherwise)."""
    if "OMP_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    try:
        return train(**arguments)
    except UserError as err:
        Path(errors, ERROR_FILE.format(rank=os.environ.get("RANK", "0"))).write_text(str(err))
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # Ctrl-C: rank 0 saved what it could (experiments/single.py)
        raise SystemExit(INTERRUPTED) from None


def launch(train: Callable[..., Result | None], arguments: dict[str, Any], nproc: int) -> Result:
    """`train(**arguments)` on `nproc` local processes (`train` importable by name); rank 0's
    Result. Ctrl-C stops every process (KeyboardInterrupt here)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_sendable(arguments)
    # the launcher's own files (one folder per run) go inside this call's temporary folder, so
    # a run on many processes leaves nothing behind in /tmp
    with tempfile.TemporaryDirectory(prefix="trainlab-nproc-") as scratch, _quiet():
        errors = Path(scratch) / "errors"
        errors.mkdir()
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=nproc,
            run_id=f"trainlab-{uuid.uuid4().hex[:12]}",
            rdzv_backend="c10d",
            rdzv_endpoint="127.0.0.1:0",
            local_addr="127.0.0.1",
            max_restarts=0,
            monitor_interval=0.1,
            start_method="spawn",
            logs_specs=DefaultLogsSpecs(log_dir=str(Path(scratch) / "launcher")),
        )
        try:
            results = elastic_launch(config, _process)(train, arguments, str(errors))
        except ChildFailedError as err:
            raise _failure(err, errors) from None
        except SignalException:
            raise KeyboardInterrupt from None
    return results[0]


def _failure(err: Any, errors: Path) -> BaseException:
    """The one line a failed launch ends with: a process's UserError; a process killed by a
    signal (the others were stopped by the launcher's SIGTERM); Ctrl-C; else a bug."""
    for path in sorted(errors.glob(ERROR_FILE.format(rank="*"))):
        return UserError(path.read_text())
    failures = sorted(err.failures.items())
    killed = [(r, f) for r, f in failures if f.exitcode < 0]
    killed.sort(key=lambda rf: rf[1].signal_name() == "SIGTERM")  # the cause before the stopped
    if killed:
        rank, failure = killed[0]
        return RunStopped(
            f"trainlab: process {rank} of the run was killed by {failure.signal_name()}; the "
            "others were stopped; the last finished epoch is saved, continue with --resume"
        )
    if any(f.exitcode == INTERRUPTED for _, f in failures):
        return KeyboardInterrupt()
    return RuntimeError(err.format_msg())  # a bug: the process's traceback


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The launcher's own log lines off (a failure becomes one line, or a bug's traceback)."""
    loggers = [logging.getLogger(name) for name in LAUNCHER_LOGS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
