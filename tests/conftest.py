"""Shared test set-up: one torch thread per xdist worker, a headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TRAINLAB_COMPILE", "0")  # the compiled optimizer path has its own tests

import pytest  # noqa: E402
import torch  # noqa: E402
from pg_server import PG_BIN, postgres_server  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL 15 server (tests/pg_server.py); skipped where it is not installed."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 is not installed ({PG_BIN}); .ci/run installs it")
    yield from postgres_server()


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML config into tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def seeded_one_thread():
    """Seed torch's default generator (layers draw masks from it, as nn.Dropout) and use one
    thread: tests of many tiny forward passes, where a thread pool only adds waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def multi_tensor_one_thread(monkeypatch):
    """Optimizer tests stay off the compiled path unless they ask for it; one torch thread."""
    monkeypatch.setenv("TRAINLAB_COMPILE", "0")  # trainlab.optim.compiled.ENV_VAR
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def interrupt_at():
    """`interrupt_at(epoch)`: a trainer callback that raises KeyboardInterrupt (Ctrl-C) at the
    end of that epoch, before its record and checkpoint are written (a resume redoes it)."""
    from trainlab.engine import Callback

    class InterruptAt(Callback):
        def __init__(self, epoch: int) -> None:
            self.epoch = epoch

        def on_epoch_end(self, trainer, record):  # noqa: ANN001, ANN201
            if record["epoch"] == self.epoch:
                raise KeyboardInterrupt

    return InterruptAt
