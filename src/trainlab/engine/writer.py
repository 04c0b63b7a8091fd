"""The run directory's per-epoch writes off the training thread: one background thread writes
them in the order they were handed over (steps.jsonl, metrics.jsonl, best.pt, last.pt), while
the next epoch trains.

Why: those writes wait on the disk (fsync, torch.save's file) and cost the training thread a few
milliseconds an epoch, more on a busy machine (issue 30). What stays the same: each file is
written as before (appended and fsynced, or atomically replaced), in the same order, so a kill at
any moment leaves a run that `--resume` continues (a checkpoint older than the last metrics line
is what a kill between two writes always left, and resume cuts the files back to it). What the
thread writes is a copy taken when the epoch ended (tensors copied to the CPU), so the weights it
saves are that epoch's. Nothing numeric depends on it. `wait()` returns when every write is done
and raises the first error one of them met (a full disk is an OSError, one line for the user).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch


def snapshot(obj: Any) -> Any:
    """A copy of a checkpoint's contents that training cannot change any more: tensors copied
    to the CPU (torch.save writes them from there anyway; loading maps them to the device),
    containers rebuilt, other values (numbers, strings) shared."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class BackgroundWriter:
    """Runs submitted jobs one at a time, in order, on one thread (started on first use)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: list[Future[None]] = []
        self._failed = False  # a job raised: the jobs after it write nothing (until wait())

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job`; first raise the error of one that failed since the last call."""
        self._raise_failed()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="trainlab-writer")
        self._jobs.append(self._pool.submit(self._run, job))

    def _run(self, job: Callable[[], None]) -> None:
        """On the thread: `job`, unless an earlier one failed (as when the training thread
        wrote: nothing after a failed write, so the files stay in their order for --resume)."""
        if self._failed:
            return
        try:
            job()
        except BaseException:
            self._failed = True
            raise

    def _raise_failed(self) -> None:
        done = [f for f in self._jobs if f.done()]
        self._jobs = [f for f in self._jobs if not f.done()]
        for f in done:
            f.result()  # raises the job's exception

    def wait(self, raise_error: bool = True) -> None:
        """Block until every job is done; raise the first error (unless `raise_error` is False:
        another exception is on its way already). The thread ends; a later submit starts one."""
        jobs, self._jobs = self._jobs, []
        first: BaseException | None = None
        for f in jobs:
            try:
                f.result()
            except BaseException as err:  # noqa: BLE001 - kept, raised below
                first = first or err
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._failed = False
        if first is not None and raise_error:
            raise first
