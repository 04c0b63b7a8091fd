"""One run on many processes (torch.distributed, gloo on the CPU): `--nproc 2`, torchrun, resume
after Ctrl-C and after kill -9, the sharded optimizer's checkpoint; each run against one
process's numbers (an MLP without dropout or batch norm: the same losses to round-off)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainlab.cli import main
from trainlab.engine import Callback
from trainlab.engine.distributed import Ranks
from trainlab.rundir import LAST, METRICS, RESULT, parse_jsonl

EPOCHS = 5
CONFIG = (
    "data: {name: spirals}\n"
    "model: {kind: mlp, width: 16, depth: 2}\n"
    "optim: {name: momentum, lr: 0.05}\n"
    f"train: {{epochs: {EPOCHS}, batch_size: 50, threads: 1}}\n"
)
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One torch thread per process (the processes inherit the environment)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process's run of the config: (its folder, its metrics)."""
    folder = tmp_path_factory.mktemp("one")
    cfg = folder / "sp.yaml"
    cfg.write_text(CONFIG)
    assert main(["train", str(cfg), "--out", str(folder / "run")]) == 0
    return cfg, metrics(folder / "run")


def metrics(run: Path) -> list[dict]:
    return parse_jsonl((run / METRICS).read_text())


def assert_same_run(got: list[dict], want: list[dict]) -> None:
    """One metrics line per epoch; losses to round-off (rel 1e-4), accuracies the same."""
    assert [m["epoch"] for m in got] == list(range(1, EPOCHS + 1))
    for g, w in zip(got, want):
        assert g["train_loss"] == pytest.approx(w["train_loss"], rel=1e-4)
        assert g["val_loss"] == pytest.approx(w["val_loss"], rel=1e-4)
        assert g["train_accuracy"] == pytest.approx(w["train_accuracy"], abs=2e-3)
        assert g["val_accuracy"] == pytest.approx(w["val_accuracy"], abs=2e-3)


class InterruptAt(Callback):
    """Ctrl-C at the end of an epoch, on every process (importable by name: it is sent)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):  # noqa: ANN001, ANN201
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


class KillAt(Callback):
    """kill -9 of one process at the end of the epoch after `epoch` (whose checkpoint is saved)."""

    def __init__(self, epoch: int, rank: int) -> None:
        self.epoch, self.rank = epoch, rank

    def on_epoch_end(self, trainer, record):  # noqa: ANN001, ANN201
        if record["epoch"] == self.epoch + 1 and trainer.ranks.rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------ without processes
def test_each_rank_takes_a_contiguous_share():
    """Example i of a global batch of n goes to rank i * world // n; shares weigh the loss."""
    for n in (7, 50, 2):
        for world in (1, 2, 3):
            if n < world:
                continue
            spans = [Ranks(r, world).span(n) for r in range(world)]
            owner = [r for r, (a, b) in enumerate(spans) for _ in range(a, b)]
            assert owner == [i * world // n for i in range(n)]
    x, y = torch.arange(10.0).view(5, 2), torch.arange(5)
    parts = [Ranks(r, 2).share(x, y) for r in range(2)]
    assert [p[1].tolist() for p in parts] == [[0, 1, 2], [3, 4]]
    assert [p[2] for p in parts] == [0.6, 0.4]
    assert Ranks().share(x, y)[2] == 1.0 and Ranks().seed(5) == 5 != Ranks(1, 2).seed(5)


def test_one_process_is_untouched_and_sync_bn_needs_cuda():
    """Outside a process group: the model and optimizer as they are, batch norm's minimum batch
    of 2; with many processes on the CPU, sync_bn is one line (SyncBatchNorm is CUDA's)."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert Ranks().wrap(model, True, torch.device("cpu")) is model
    assert Ranks().shard(opt, True) is opt
    assert (Ranks().min_batch(True, False), Ranks(0, 2).min_batch(True, False)) == (2, 4)
    assert (Ranks(0, 2).min_batch(True, True), Ranks(1, 3).min_batch(False, False)) == (2, 3)
    with pytest.raises(ValueError, match=r"^train.sync_bn: SyncBatchNorm needs train.device cuda"):
        Ranks(0, 2).wrap(model, True, torch.device("cpu"))


def test_a_model_that_cannot_be_sent_is_refused_in_one_line(tmp_path, reference):
    import trainlab

    cfg, _ = reference

    def local_factory(input_shape, num_classes):  # noqa: ANN001, ANN202
        return torch.nn.Linear(input_shape[0], num_classes)

    with pytest.raises(ValueError, match=r"^model: cannot be sent to the nproc=\.\.\. processes"):
        trainlab.train(cfg, out=tmp_path / "r", model=local_factory, nproc=2)
    assert not (tmp_path / "r").exists()


def test_mistakes_are_refused_before_any_process_starts(tmp_path, reference, capsys):
    cfg, _ = reference
    out = str(tmp_path / "r")
    assert main(["train", str(cfg), "--out", out, "--nproc", "0"]) == 2
    assert main(["train", str(cfg), "--out", out, "--nproc", "2", "--set", "train.ensemble=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("trainlab train: --nproc: must be at least 1")
    assert err[1].startswith("trainlab train: train.ensemble:") and len(err) == 2


# --------------------------------------------------------------------------- two processes
def test_nproc_2_trains_as_one_process(tmp_path, reference, capsys):
    cfg, want = reference
    out = tmp_path / "two"
    assert main(["train", str(cfg), "--out", str(out), "--nproc", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["stopped_reason"] == "completed" and result["epochs"] == EPOCHS
    assert_same_run(metrics(out), want)
    assert json.loads((out / "env.json").read_text())["processes"] == 2


def test_torchrun_trains_as_one_process(tmp_path, reference):
    cfg, want = reference
    with socket.socket() as s:  # a free port for the rendezvous, on 127.0.0.1 only
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node",
           "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
           "--local-addr", "127.0.0.1", "-m", "trainlab", "train", str(cfg), "--out", str(out),
           "--json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["epochs"] == EPOCHS  # rank 0 alone prints
    assert_same_run(metrics(out), want)


def test_a_process_killed_with_9_ends_the_run_in_one_line_and_resumes(tmp_path, reference):
    import trainlab

    cfg, want = reference
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt) as err:
        trainlab.train(cfg, out=out, callbacks=[KillAt(2, rank=1)], nproc=2)
    message = str(err.value)
    assert "process 1 of the run was killed by SIGKILL" in message and "\n" not in message
    assert (out / LAST).exists()
    assert main(["train", str(cfg), "--out", str(out), "--resume", "--nproc", "2"]) == 0
    assert_same_run(metrics(out), want)


def test_sharded_optimizer_state_round_trips_through_a_checkpoint(tmp_path, reference):
    """ZeroRedundancyOptimizer: Ctrl-C (every process stops, rank 0 saves), its state
    consolidated into a one-process checkpoint, loaded back on resume: the numbers of one
    process with the whole optimizer, as if never interrupted."""
    import trainlab

    cfg, want = reference
    out = tmp_path / "zero"
    sharded = ["train.shard_optimizer=true"]
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(cfg, out=out, overrides=sharded, callbacks=[InterruptAt(3)], nproc=2)
    assert [m["epoch"] for m in metrics(out)] == [1, 2]  # Ctrl-C at the end of epoch 3
    assert json.loads((out / RESULT).read_text())["stopped_reason"] == "interrupted"
    state = torch.load(out / LAST, weights_only=True)["optimizer"]
    assert sorted(state["state"]) == list(range(6))  # every parameter's velocity, rank 0's file
    assert all("momentum_buffer" in s for s in state["state"].values())
    args = ["train", str(cfg), "--out", str(out), "--resume", "--nproc", "2"]
    assert main([*args, "--set", *sharded]) == 0
    assert_same_run(metrics(out), want)
