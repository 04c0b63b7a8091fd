"""One run on many processes, with torch.distributed: the process group from torchrun's
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; gloo on the CPU, NCCL on CUDA), the
ranks of the group, each rank's share of a global minibatch, and the few collectives the engine
needs (sums of metrics, values decided on rank 0). Gradients are DDP's to average; nothing here
is a home-made all-reduce of parameters.

Outside a process group everything is the identity (`Ranks()`: rank 0 of 1), so one process
takes exactly the path it always took.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from trainlab.errors import UserError

T = TypeVar("T")
ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")  # what torchrun sets for each process


def launched() -> bool:
    """Whether this process is one of a torchrun (or elastic_launch) group."""
    return all(name in os.environ for name in ENV)


def launched_main() -> bool:
    """Whether this process writes for the group it was launched into (rank 0), known from the
    environment before the process group exists; True outside a launch."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group: `rank` of `world`, `main` (rank 0) alone writes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world > 1

    # ------------------------------------------------------------------- the batch and the loss
    def span(self, n: int) -> tuple[int, int]:
        """The contiguous slice of a global batch of `n` this rank takes: example i goes to
        rank i * world // n (every rank gets floor or ceil of n / world)."""
        return -(-self.rank * n // self.world), -(-(self.rank + 1) * n // self.world)

    def share(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(this rank's part of the global batch, the fraction of the batch it holds)."""
        if not self.many:
            return x, y, 1.0
        a, b = self.span(len(y))
        return x[a:b], y[a:b], (b - a) / len(y)

    def local_loss(self, loss: torch.Tensor, weight: float) -> torch.Tensor:
        """The loss to back-propagate: DDP averages gradients over the ranks, so each rank's mean
        loss weighted by its share times `world` gives the gradient of the global batch's mean."""
        return loss * (weight * self.world) if self.many else loss

    def global_mean(self, loss: torch.Tensor, weight: float) -> float:
        """The mean loss over the global batch (the same number on every rank)."""
        if not self.many:
            return loss.item()
        value = (loss.detach() * weight).double()
        dist.all_reduce(value)
        return value.item()

    def counts(self, correct: torch.Tensor, seen: int) -> tuple[int, int]:
        """(right, seen) summed over the ranks."""
        if not self.many:
            return int(correct.item()), seen
        both = torch.stack([correct.double().cpu(), torch.tensor(float(seen), dtype=torch.double)])
        dist.all_reduce(both)
        return int(both[0].item()), int(both[1].item())

    def min_batch(self, batch_norm: bool, sync_bn: bool) -> int:
        """The smallest global batch trained on: every rank needs an example (two under
        per-rank batch norm, which cannot normalize a batch of one)."""
        one = 2 if batch_norm else 1
        if not self.many:
            return one
        return max(one, self.world) if sync_bn else one * self.world

    def seed(self, seed: int) -> int:
        """This rank's seed for dropout masks and augmentation from an epoch's `seed`: rank 0
        keeps it (one process is unchanged), the others derive theirs from (seed, rank)."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed & 0xFFFFFFFF, self.rank]).generate_state(1)[0])

    # ------------------------------------------------------------------------------ decisions
    def on_main(self, fn: Callable[[], T]) -> T:
        """`fn()` on rank 0, its value (or its UserError) on every rank."""
        if not self.many:
            return fn()
        box: list[Any] = [None]
        if self.main:
            try:
                box = [(fn(), None)]
            except UserError as err:
                box = [(None, str(err))]
        dist.broadcast_object_list(box, src=0)
        value, failure = box[0]
        if failure is not None:
            raise UserError(failure) from None
        return value

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (a callback asking to stop)."""
        if not self.many:
            return flag
        value = torch.tensor(1.0 if flag else 0.0)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    # ----------------------------------------------------------------------- model, optimizer
    def wrap(
        self, model: nn.Module, sync_bn: bool, device: torch.device, skips: bool = False
    ) -> nn.Module:
        """The network the loop calls: DDP around `model` (which stays the plain module whose
        state_dict a checkpoint holds); `sync_bn` turns its batch norm into SyncBatchNorm
        (in place: the parameters and buffers stay the module's own); `skips`: some parameters
        may go unused in a step (stochastic depth drops whole blocks)."""
        if not self.many:
            return model
        if sync_bn:
            if device.type != "cuda":
                raise UserError(
                    "train.sync_bn: SyncBatchNorm needs train.device cuda; on the CPU each "
                    "process normalizes with its own batch statistics (set sync_bn: false)"
                )
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp = nn.parallel.DistributedDataParallel
        if device.type != "cuda":
            return ddp(model, find_unused_parameters=skips)
        index = device.index if device.index is not None else torch.cuda.current_device()
        return ddp(model, device_ids=[index], find_unused_parameters=skips)

    def shard(self, optimizer: torch.optim.Optimizer, on: bool) -> torch.optim.Optimizer:
        """train.shard_optimizer: our optimizer inside torch's ZeroRedundancyOptimizer (each
        rank keeps the state of its part of the parameters); one process keeps it as it is."""
        if not (on and self.many):
            return optimizer
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer(
            optimizer.param_groups, optimizer_class=type(optimizer), **optimizer.defaults
        )

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's state_dict as one process would save it: a sharded optimizer's
        consolidates on rank 0 (every rank must call this; the others get {})."""
        consolidate = getattr(optimizer, "consolidate_state_dict", None)
        if consolidate is None:
            return optimizer.state_dict()
        consolidate(to=0)
        return optimizer.state_dict() if self.main else {}


def current() -> Ranks:
    """The ranks of the process group this process belongs to (rank 0 of 1 outside one)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


@contextlib.contextmanager
def session(device: str) -> Iterator[Ranks]:
    """The process group for the length of a run: initialised from torchrun's environment when
    this process was launched by it (and no group exists yet), destroyed at the end; outside
    such a launch, one process (rank 0 of 1)."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield current()
        return
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:  # one GPU per local rank (ranks share the GPUs round-robin when there are fewer)
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local % max(torch.cuda.device_count(), 1))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()
