"""`trainlab config`: the resolved config with every default, and the schema's fields."""

from __future__ import annotations

import json

import yaml

from trainlab.cli import main
from trainlab.config import load_config, validate
from trainlab.names import OPTIMIZERS

SPIRALS = "data: {name: spirals}\nmodel: {kind: mlp, width: 16}\noptim: {name: momentum}\n"


def test_prints_the_resolved_config_that_a_run_would_save(tmp_path, capsys):
    path = tmp_path / "sp.yaml"
    path.write_text(SPIRALS)
    assert main(["config", str(path), "--set", "optim.lr=0.3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"] == {**printed["optim"], "name": "momentum", "lr": 0.3, "momentum": 0.9}
    assert printed["train"]["epochs"] == 20  # a default the file did not give
    assert validate(printed) == load_config(path, ["optim.lr=0.3"])


def test_json_is_one_object(tmp_path, capsys):
    path = tmp_path / "sp.yaml"
    path.write_text(SPIRALS)
    assert main(["config", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["width"] == 16


def test_fields_list_types_defaults_allowed_values_and_meaning(capsys):
    assert main(["config", "--fields", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["sections"]
    assert {f"optim.{n}" for n in OPTIMIZERS} <= set(found)
    assert {"data", "data.loader", "model", "schedule", "train", "search"} <= set(found)
    train = {r["field"]: r for r in found["train"]}
    assert train["epochs"]["type"] == "int >= 1" and train["epochs"]["default"] == 20
    assert train["precision"]["type"] == "one of fp32, bf16, fp16"
    assert "Polyak" in train["ema"]["comment"] and train["ema"]["type"].endswith("or null")
    adam = {r["field"]: r for r in found["optim.adam"]}
    assert adam["lr"]["default"] == 1e-3 and "betas" in adam


def test_fields_of_one_section(capsys):
    assert main(["config", "--fields", "optim", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["sections"]) == {
        f"optim.{n}" for n in OPTIMIZERS
    }


def test_mistakes_are_one_line(tmp_path, capsys):
    assert main(["config", "--fields", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fields" in err and "train" in err
    assert main(["config"]) == 2
    assert "CONFIG" in capsys.readouterr().err
