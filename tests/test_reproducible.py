"""Same config and seed, same numbers, whatever the machine is doing: the optimizer's switch to its
compiled update (whose last bits differ from the multi-tensor one) falls at a step fixed by the
parameters and the step count (TRAINLAB_COMPILE=N sets it: here inside the third epoch), never by
the clock, and a resumed run switches where the uninterrupted one did."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainlab
import trainlab.optim as to
from trainlab.engine import Callback
from trainlab.optim import compiled

SWITCH = 45  # the step the compiled path starts at: 17 steps per epoch, so inside epoch 3
CONFIG = {
    "data": {"name": "spirals"},
    "model": {"kind": "mlp", "width": 128, "depth": 2},  # one 128x128 weight: worth a graph
    "optim": {"name": "adam", "lr": 1e-2},
    "train": {"epochs": 4, "batch_size": 64},
}


class Paths(Callback):
    """Records the optimizer's execution path at the end of every epoch."""

    def __init__(self) -> None:
        self.paths: list[str | None] = []

    def on_epoch_end(self, trainer, record):  # noqa: ANN001, ANN201
        self.paths.append(trainer.optimizer.execution_path)


def metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


@pytest.fixture
def switch_inside_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compiled.ENV_VAR, str(SWITCH))
    if not compiled.available():
        pytest.skip("torch.compile does not work in this process")


def test_same_numbers_beside_a_cpu_hog(tmp_path: Path, switch_inside_the_run: None) -> None:
    """Trained twice, once with a busy-loop process competing for the CPU: the same metrics
    in every epoch, the switch to the compiled update in the third epoch both times."""
    quiet = Paths()
    trainlab.train(CONFIG, out=tmp_path / "quiet", callbacks=[quiet], curves=False)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = Paths()
        trainlab.train(CONFIG, out=tmp_path / "busy", callbacks=[busy], curves=False)
    finally:
        hog.kill()
        hog.wait()
    assert quiet.paths == busy.paths == ["foreach", "foreach", "compiled", "compiled"]
    assert metrics(tmp_path / "busy") == metrics(tmp_path / "quiet")


def test_resume_across_the_switch_gives_the_same_numbers(
    tmp_path: Path, switch_inside_the_run: None, interrupt_at: type
) -> None:
    """Interrupted at the end of epoch 2 (resumed from a checkpoint before the switch): the
    resumed run switches at the same step and ends with the uninterrupted run's numbers."""
    full = trainlab.train(CONFIG, out=tmp_path / "full", curves=False)
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(CONFIG, out=tmp_path / "cut", callbacks=[interrupt_at(2)], curves=False)
    resumed_paths = Paths()
    resumed = trainlab.train(
        CONFIG, out=tmp_path / "cut", resume=True, callbacks=[resumed_paths], curves=False
    )
    assert resumed_paths.paths[0] == "foreach"  # resumed before the switch...
    assert resumed_paths.paths[-2:] == ["compiled", "compiled"]  # ...and crossed it
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")
    assert resumed.test_accuracy == full.test_accuracy


def test_the_compiled_update_does_change_the_last_bits(
    tmp_path: Path, switch_inside_the_run: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the switch must be deterministic: compiled and multi-tensor updates round differently,
    so a run that switched at another step would print other numbers."""
    trainlab.train(CONFIG, out=tmp_path / "switched", curves=False)
    monkeypatch.setenv(compiled.ENV_VAR, "0")
    trainlab.train(CONFIG, out=tmp_path / "eager", curves=False)
    switched, eager = metrics(tmp_path / "switched"), metrics(tmp_path / "eager")
    assert switched[:2] == eager[:2]  # the same until the switch
    assert switched[2:] != eager[2:]


def test_the_switch_ignores_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine so loaded that every step seems to take 10 s: the update stays on the
    multi-tensor path until the step compile_from() gives, as on an idle machine."""
    clock = iter(range(0, 10**9, 10))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setenv(compiled.ENV_VAR, "auto")
    monkeypatch.setattr(compiled, "ahead", lambda *args: None)  # no compile left running after
    params = [torch.zeros(compiled.COMPILE_MIN_NUMEL, requires_grad=True) for _ in range(3)]
    start = compiled.compile_from(params)
    assert start is not None and start > 5
    opt = to.Adam(params)
    for _ in range(5):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        assert opt.execution_path == "foreach"


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_a_loaded_state_dict_switches_at_the_same_step(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step count the switch depends on travels in the state_dict: Adam's in torch's `step`,
    SGD's (torch keeps none) in `trainlab_group_steps`. An optimizer rebuilt from a state_dict
    saved after step 3 takes the compiled path at step 5, as the uninterrupted one does."""
    monkeypatch.setenv(compiled.ENV_VAR, "5")
    ran: list[int] = []

    def fake_run(update, params, grads, buffers, h, memo):  # noqa: ANN001, ANN202
        ran.append(len(params))  # the compiled path, without paying for a compile here
        return list(range(len(params)))  # ...then done on the multi-tensor path

    monkeypatch.setattr(compiled, "run", fake_run)
    monkeypatch.setattr(compiled, "ahead", lambda *args: None)  # nothing compiles ahead either
    kwargs = {"lr": 0.1, "momentum": 0.9} if name == "SGD" else {"lr": 0.1}
    params = [torch.zeros(compiled.COMPILE_MIN_NUMEL, requires_grad=True)]

    def step(opt: torch.optim.Optimizer) -> None:
        params[0].grad = torch.ones_like(params[0])
        opt.step()

    first = getattr(to, name)(params, **kwargs)
    for _ in range(3):
        step(first)
    assert ran == []
    second = getattr(to, name)(params, **kwargs)
    second.load_state_dict(torch.load(_saved(first.state_dict()), weights_only=True))
    step(second)  # step 4
    assert ran == []
    step(second)  # step 5: compiled from here
    assert ran == [1]


def _saved(state_dict: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return buffer
