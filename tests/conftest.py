"""Shared test set-up: one torch thread per xdist worker, a headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TRAINLAB_COMPILE", "0")  # the compiled optimizer path has its own tests

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML config into tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
