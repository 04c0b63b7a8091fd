"""The epochs' files written by a background thread (trainlab.engine.writer): a run killed at
any epoch, whatever the thread was writing then, resumes to the numbers of an uninterrupted run;
what the thread saves is the epoch's own weights."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import trainlab
from trainlab.engine.writer import BackgroundWriter, snapshot

CFG = {
    "data": {"name": "spirals"},
    "model": {"kind": "mlp", "width": 16, "depth": 2, "dropout": 0.1},
    "optim": {"name": "adam", "lr": 1e-2},
    "train": {"epochs": 4, "batch_size": 64},
}


def metrics(path):
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize("epoch", [1, 3])
def test_killed_at_an_epoch_end_resumes_to_the_same_numbers(tmp_path, epoch):
    """os._exit at the end of an epoch ends the process as SIGKILL does: the writer thread may
    be in the middle of the previous epoch's files. --resume finishes with the same numbers."""
    script = textwrap.dedent(
        f"""
        import os, trainlab
        from trainlab.engine import Callback

        class Kill(Callback):
            def on_epoch_end(self, trainer, record):
                if record["epoch"] == {epoch}:
                    os._exit(9)

        trainlab.train({CFG!r}, out={str(tmp_path / "cut")!r}, callbacks=[Kill()], verbose=False)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert not (tmp_path / "cut" / "result.json").exists()
    resumed = trainlab.train(CFG, out=tmp_path / "cut", resume=True, curves=False, verbose=False)
    full = trainlab.train(CFG, out=tmp_path / "full", curves=False, verbose=False)
    assert resumed.epochs == full.epochs == 4
    assert resumed.test_accuracy == full.test_accuracy and resumed.test_loss == full.test_loss
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")


def test_snapshot_keeps_the_epochs_weights_and_errors_reach_the_trainer():
    weights = torch.ones(3)
    state = {"model": {"w": weights}, "steps": [weights, 2], "epoch": 1}
    copy = snapshot(state)
    weights.add_(1.0)  # training goes on
    assert torch.equal(copy["model"]["w"], torch.ones(3)) and copy["steps"][1] == 2
    writer, order = BackgroundWriter(), []
    for i in range(5):
        writer.submit(lambda i=i: order.append(i))
    writer.wait()
    assert order == [0, 1, 2, 3, 4]  # one thread, in the order handed over

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    writer.submit(full_disk)
    with pytest.raises(OSError, match="No space"):
        writer.wait()
    writer.submit(full_disk)
    writer.wait(raise_error=False)  # another exception is on its way: this one stays quiet
