"""The Ray executor: a 2-trial search as Ray tasks on one small local Ray for the module."""

import json
import os

import pytest

ray = pytest.importorskip("ray")

from trainlab.search.running.driver import search  # noqa: E402

CONFIG = """
data: {name: spirals}
model: {kind: mlp, width: 16, depth: 1}
optim: {name: adam, lr: 1e-2}
train: {epochs: 2, batch_size: 64}
search:
  strategy: random
  trials: 2
  workers: 2
  executor: ray
  pruner: median
  space:
    optim.lr: loguniform(1e-3, 1e-1)
"""


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


def test_a_search_runs_as_ray_tasks(local_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ray-search.yaml").write_text(CONFIG)
    res = search(tmp_path / "ray-search.yaml")
    assert res.trials == {"complete": 2, "pruned": 0, "diverged": 0, "failed": 0}
    assert ray.is_initialized()  # a cluster the caller started is left running
    trials = tmp_path / "runs" / "search" / "ray-search" / "trials"
    for n in range(2):
        d = trials / f"{n:04d}"
        assert {p.name for p in d.iterdir()} == {
            "best.pt",
            "result.json",
            "config.yaml",
            "metrics.jsonl",
        }
        result = json.loads((d / "result.json").read_text())
        assert (tmp_path / result["run_dir"]).resolve() == d.resolve()  # not a temp dir
        assert len((d / "metrics.jsonl").read_text().splitlines()) == 2
    assert res.best["value"] == max(r["value"] for r in res.leaderboard)
    assert (tmp_path / "runs" / "search" / "ray-search" / "best.yaml").is_file()
