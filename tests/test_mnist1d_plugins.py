"""The MNIST-1D paper's models as plugins (examples/plugins/mnist1d_models.py): the architectures
of the paper (its parameter counts) and one of its configs trained from the CLI."""

import json
import sys
from pathlib import Path

import pytest
import torch

from trainlab.cli import main

PLUGINS = Path(__file__).resolve().parent.parent / "examples" / "plugins"
sys.path.insert(0, str(PLUGINS))
import mnist1d_models  # noqa: E402

# the paper's parameter counts (Greydanus 2020, table 1) for (1, 40) signals and 10 classes
PARAMETERS = {"logistic": 410, "mlp": 15_210, "cnn": 5_210, "gru": 5_134}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_factory_builds_the_papers_model(name):
    model = getattr(mnist1d_models, name)((1, 40), 10)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]
    logits = model(torch.randn(7, 1, 40))
    assert logits.shape == (7, 10)
    logits.sum().backward()  # every parameter gets a gradient
    assert all(p.grad is not None for p in model.parameters())


def test_model_args_change_the_model():
    small = mnist1d_models.gru((1, 40), 10, hidden=3, bidirectional=False)
    assert small(torch.randn(2, 1, 40)).shape == (2, 10)
    assert mnist1d_models.cnn((1, 60), 4, channels=8)(torch.randn(2, 1, 60)).shape == (2, 4)


def test_a_papers_config_trains_from_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the plugin is found next to its config, not in the cwd
    config = PLUGINS / "mnist1d-cnn.yaml"
    code = main(["train", str(config), "--set", "train.epochs=2", "--out", "run", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["stopped_reason"] == "completed" and result["parameters"] == 5_210
    assert result["test_accuracy"] > 0.3  # two epochs of the paper's CNN: well above chance
    assert main(["eval", "run", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)  # the test split by default
    assert evaluated["accuracy"] == pytest.approx(result["test_accuracy"])
