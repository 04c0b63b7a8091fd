"""Your own data: data plugins (arrays, mappings of Datasets), streamed Datasets read batch by
batch, streamed image folders, `trainlab.train(config, data=...)`, and bad plugins in one line."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import trainlab
import trainlab.data.images
from trainlab.cli import main
from trainlab.config import DataConfig
from trainlab.data import StreamedSplits, prepare
from trainlab.data.given import given_splits
from trainlab.search.running.driver import search

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = textwrap.dedent(
    '''
    import numpy as np
    import torch
    from torch.utils.data import Dataset


    def arrays(n=300, seed=0):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, 8)).astype(np.float32)
        x[np.arange(n), y] += 3.0
        return x, y


    class Blobs(Dataset):
        """Generated per index: class i % 3 has a bump on feature i % 3."""

        def __init__(self, n, seed, bad=None, label_at_end=None):
            self.n, self.seed, self.bad, self.label_at_end = n, seed, bad, label_at_end

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            rng = np.random.default_rng([self.seed, i])
            y = i % 3
            x = rng.normal(size=8).astype(np.float32)
            x[y] += 3.0
            if self.label_at_end is not None and i == self.n - 1:
                y = self.label_at_end
            bad = self.bad
            if bad == "not_pair":
                return x
            if bad == "x_str":
                return "image.png", y
            if bad == "y_float":
                return x, 0.5
            if bad == "shapes" and i % 7 == 3:
                return x[:5], y
            if bad == "nan":
                x[0] = float("nan")
            if bad == "raises" and i == 5:
                raise KeyError("no such row")
            return torch.from_numpy(x), y


    class Declared(Blobs):
        num_classes = 3


    class Unpicklable(Blobs):
        def __init__(self, n, seed):
            super().__init__(n, seed)
            self.label = lambda i: i % 3


    def unpicklable():
        return {"train": Unpicklable(300, 0)}


    def datasets(n=600, val=True, test=True, bad=None):
        out = {"train": Blobs(n, 0, bad)}
        if val:
            out["val"] = Blobs(n // 5, 1)
        if test:
            out["test"] = Blobs(n // 5, 2)
        return out


    def label_too_big():
        return {"train": Declared(400, 0, label_at_end=7)}


    def raises():
        raise RuntimeError("disk on fire")


    def wrong_type():
        return 42


    def float_labels():
        x, y = arrays()
        return x, y + 0.5
    '''
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugins")
    (d / "h2_blobs.py").write_text(PLUGIN)
    return d


@pytest.fixture(autouse=True)
def in_plugin_dir(plugin_dir, monkeypatch):
    monkeypatch.chdir(plugin_dir)  # the current directory is searched for plugin modules


def config(tmp_path, name="h2_blobs:datasets", args=None, **sections):
    cfg = {
        "data": {"name": name, **({"args": args} if args else {})},
        "model": {"kind": "mlp", "width": 32, "depth": 1},
        "optim": {"name": "adam", "lr": 1e-2},
        "train": {"epochs": 3, "batch_size": 64},
    }
    for key, value in sections.items():
        cfg[key].update(value)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_json(argv, capsys):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def error_line(capsys):
    """The one line a user's mistake gets (the last on stderr; no traceback before it)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.splitlines(), err
    return err.splitlines()[-1]


def metrics(run):
    lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_arrays_plugin_trains_and_evaluates_from_the_run_dir(tmp_path, capsys):
    cfg = config(tmp_path, "h2_blobs:arrays", {"n": 400})
    res = run_json(["train", str(cfg), "--out", str(tmp_path / "run")], capsys)
    assert res["test_accuracy"] > 0.9
    splits = prepare(DataConfig(name="h2_blobs:arrays", args={"n": 400}))
    assert not splits.streamed and len(splits.y_test) == 80  # test_fraction 0.2 of 400
    ev = run_json(["eval", str(tmp_path / "run")], capsys)
    assert ev["accuracy"] == pytest.approx(res["test_accuracy"])


def test_streamed_datasets_learn_and_eval_rebuilds_them(tmp_path, capsys):
    cfg = config(tmp_path)
    res = run_json(["train", str(cfg), "--out", str(tmp_path / "run")], capsys)
    assert res["test_accuracy"] > 0.9 and res["val_accuracy"] > 0.9
    splits = prepare(DataConfig(name="h2_blobs:datasets"))
    assert isinstance(splits, StreamedSplits) and splits.input_shape == (8,)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (600, 120, 120)
    ev = run_json(["eval", str(tmp_path / "run")], capsys)
    assert ev["accuracy"] == pytest.approx(res["test_accuracy"]) and ev["examples"] == 120


def test_missing_val_and_test_are_split_off_train():
    splits = prepare(DataConfig(name="h2_blobs:datasets", args={"val": False, "test": False}))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (432, 48, 120)


def test_streamed_resume_matches_and_workers_give_the_same_numbers(tmp_path, interrupt_at):
    cfg = {
        "data": {"name": "h2_blobs:datasets", "args": {"n": 300}},
        "model": {"kind": "mlp", "width": 16, "depth": 1, "dropout": 0.2},
        "optim": {"name": "momentum", "lr": 0.05},
        "train": {"epochs": 2, "batch_size": 32},
    }
    full = trainlab.train(cfg, out=tmp_path / "full", curves=False)
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(cfg, out=tmp_path / "cut", callbacks=[interrupt_at(2)], curves=False)
    resumed = trainlab.train(cfg, out=tmp_path / "cut", resume=True, curves=False)
    assert resumed.test_accuracy == full.test_accuracy
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")
    cfg["data"]["loader"] = {"workers": 2}
    two = trainlab.train(cfg, out=tmp_path / "workers", curves=False)
    assert two.test_accuracy == full.test_accuracy
    assert metrics(tmp_path / "workers") == metrics(tmp_path / "full")


def test_python_api_data_objects_and_functions(tmp_path, capsys):
    sys.path.insert(0, os.getcwd())
    try:
        import h2_blobs
    finally:
        sys.path.remove(os.getcwd())
    cfg = {"model": {"kind": "mlp", "width": 16, "depth": 1}, "optim": {"name": "adam", "lr": 1e-2}}
    cfg["train"] = {"epochs": 4, "batch_size": 32}
    cfg["data"] = {"args": {"n": 240}}  # the function's arguments, beside data=
    by_fn = trainlab.train(cfg, out=tmp_path / "fn", data=h2_blobs.arrays, curves=False)
    saved = yaml.safe_load((tmp_path / "fn/config.yaml").read_text())["data"]
    assert saved["name"] == "h2_blobs:arrays" and saved["args"] == {"n": 240}
    ev = run_json(["eval", str(tmp_path / "fn")], capsys)
    assert ev["accuracy"] == by_fn.test_accuracy and ev["examples"] == 48  # 0.2 of 240
    del cfg["data"]
    obj = trainlab.train(cfg, out=tmp_path / "obj", data=h2_blobs.datasets(), curves=False)
    assert obj.test_accuracy > 0.8
    assert main(["eval", str(tmp_path / "obj")]) == 2
    assert "cannot be rebuilt" in error_line(capsys)
    x, y = h2_blobs.arrays(90, seed=5)
    np.savez(tmp_path / "new.npz", x=x, y=y)
    new = ["eval", str(tmp_path / "obj"), "--data-path", str(tmp_path / "new.npz")]
    assert run_json(new, capsys)["accuracy"] > 0.8  # new data of the run's shape still works
    tup = trainlab.train(cfg, out=tmp_path / "tup", data=h2_blobs.arrays(200), curves=False)
    assert tup.test_accuracy > 0.8
    given = h2_blobs.arrays(300)
    val = h2_blobs.arrays(50, seed=1)
    splits = given_splits(DataConfig(), {"train": given, "val": val})  # in memory, val kept
    assert not splits.streamed and len(splits.y_val) == 50 and len(splits.y_test) == 60
    run = trainlab.train(cfg, out=tmp_path / "map", data={"train": given, "val": val}, curves=False)
    assert run.val_accuracy > 0.8
    cfg["search"] = {
        "strategy": "random",
        "trials": 2,
        "space": {"data.args.n": "choice([150, 200])"},
    }
    store = f"sqlite:///{tmp_path}/s.db"
    found = search(cfg, data=h2_blobs.arrays, out=str(tmp_path / "study"), storage=store)
    assert found.trials["complete"] == 2
    with pytest.raises(ValueError, match="import the data by name"):
        search(cfg, data=lambda: given, out=str(tmp_path / "s2"), storage=store)


def test_search_over_a_data_plugin(tmp_path, capsys):
    path = config(tmp_path, args={"n": 300}, train={"epochs": 2})
    cfg = yaml.safe_load(path.read_text())
    cfg["search"] = {"strategy": "random", "trials": 2, "seed": 0}
    cfg["search"]["space"] = {"optim.lr": "loguniform(1e-3, 1e-1)"}
    cfg["data"]["loader"] = {"workers": 1}  # search workers are daemons: they read in process
    path.write_text(yaml.safe_dump(cfg))
    argv = ["search", str(path), "--workers", "2", "--storage", f"sqlite:///{tmp_path}/s.db"]
    out = run_json(argv, capsys)
    assert out["trials"]["complete"] == 2


def test_ensemble_and_lr_find_read_streamed_splits(tmp_path, capsys):
    cfg = config(tmp_path, args={"n": 300}, train={"epochs": 2, "ensemble": 2, "ema": 0.9})
    res = run_json(["train", str(cfg), "--out", str(tmp_path / "ens")], capsys)
    assert res["ensemble_test_accuracy"] > 0.8 and res["ensemble_size"] == 2
    members = [str(tmp_path / "ens" / "members" / str(i)) for i in range(2)]
    again = run_json(["ensemble", *members], capsys)  # the data rebuilt from the members' config
    assert again["test_accuracy"] == res["ensemble_test_accuracy"]
    assert run_json(["eval", str(tmp_path / "ens")], capsys)["examples"] == 60
    plot = tmp_path / "lr.png"
    lr = run_json(["lr-find", str(cfg), "--steps", "20", "--out", str(plot)], capsys)
    assert lr["steps"] > 0 and plot.is_file()


@pytest.mark.parametrize(
    ("name", "args", "match"),
    [
        ("h2_missing:data", {}, "cannot import module 'h2_missing'"),
        ("h2_blobs:nothing", {}, "has no attribute 'nothing'"),
        ("h2_blobs:raises", {}, "raised RuntimeError: disk on fire"),
        ("h2_blobs:arrays", {"colour": 1}, "raised TypeError"),
        ("h2_blobs:wrong_type", {}, "must be (x, y) arrays or tensors, a torch Dataset"),
        ("h2_blobs:float_labels", {}, "labels must be integers"),
        ("h2_blobs:datasets", {"bad": "not_pair"}, "must be an (x, y) pair, got ndarray"),
        ("h2_blobs:datasets", {"bad": "x_str"}, "x must be a tensor or numpy array, got str"),
        ("h2_blobs:datasets", {"bad": "y_float"}, "the label must be an int class index"),
        ("h2_blobs:datasets", {"bad": "shapes"}, "every example must have the same shape"),
        ("h2_blobs:datasets", {"bad": "nan"}, "not finite"),
        ("h2_blobs:datasets", {"bad": "raises"}, "example 5: reading it raised KeyError"),
        ("h2_blobs:label_too_big", {}, "7"),
    ],
)
def test_bad_data_plugins_get_one_line(tmp_path, capsys, name, args, match):
    cfg = config(tmp_path, name, args, train={"epochs": 1})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = error_line(capsys)
    assert match in err and "data.name" in err, err


def test_a_dataset_that_cannot_reach_loader_workers_is_one_line(tmp_path, capsys):
    path = config(tmp_path, "h2_blobs:unpicklable", train={"epochs": 1})
    cfg = yaml.safe_load(path.read_text())
    cfg["data"]["loader"] = {"workers": 1}
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("trainlab train: data.loader.workers: the train")
    assert "Traceback" not in err and "UserWarning" not in err, err


def test_full_batch_optimizers_refuse_a_streamed_split(tmp_path, capsys):
    cfg = config(tmp_path, optim={"name": "lbfgs", "lr": 1.0})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "optim.name: lbfgs" in capsys.readouterr().err


def test_large_image_folder_streams(tmp_path, capsys, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(3):
        (tmp_path / "imgs" / f"c{k}").mkdir(parents=True)
        for i in range(20):
            a = rng.integers(0, 80, (6, 6, 3))
            a[..., k] += 150  # class k is brighter in channel k
            Image.fromarray(a.astype(np.uint8)).save(tmp_path / "imgs" / f"c{k}" / f"{i}.png")
    # hidden names are left out while listing (streamed, a file is only decoded in its batch)
    (tmp_path / "imgs" / "c0" / "._3.png").write_bytes(b"not a png")  # a macOS resource fork
    (tmp_path / "imgs" / ".ipynb_checkpoints").mkdir()  # no class
    monkeypatch.setattr(trainlab.data.images, "STREAM_BYTES", 0)  # every folder streams
    data = {"name": "image_folder", "path": str(tmp_path / "imgs")}
    splits = prepare(DataConfig(**data))
    assert isinstance(splits, StreamedSplits) and splits.input_shape == (3, 6, 6)
    assert splits.num_classes == 3 and splits.kind == "image"
    two = prepare(DataConfig(**data, classes=[2, 0], resize=[4, 5]))  # in the streamed mode too
    assert two.num_classes == 2 and two.input_shape == (3, 4, 5)
    x, y = next(two.test.batches(100))
    assert len(y) == 8 and set(y.tolist()) == {0, 1}  # 0.2 of 40 images
    path = config(tmp_path, train={"epochs": 6, "batch_size": 16})
    cfg = yaml.safe_load(path.read_text())
    cfg["data"] = {**data, "augment": ["flip", "pca_color"]}  # pca_color fits on the sample
    cfg["train"]["tta"] = "flip"
    path.write_text(yaml.safe_dump(cfg))
    res = run_json(["train", str(path), "--out", str(tmp_path / "run")], capsys)
    assert res["test_accuracy"] > 0.8 and res["tta_test_accuracy"] > 0.8


MEMORY_SCRIPT = """
import os, resource, sys
limit = int(os.environ.get("H2_AS_LIMIT", "0"))
if limit:  # the address space this process may use: less than the data
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from trainlab.cli import main
rc = main(sys.argv[1:])
print("PEAK_RSS_BYTES", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, rc)
"""


def test_a_streamed_data_set_larger_than_memory_used(tmp_path):
    """2 GiB of float32 training images per epoch (generated on the fly by the streaming
    example), trained in one process capped to 1.5 GiB of address space, whose peak resident
    memory stays far below the data's size."""
    data_bytes = 32768 * 128 * 128 * 4
    assert data_bytes == 2 << 30
    example = ROOT / "examples" / "plugins" / "streaming_stripes.yaml"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "examples" / "plugins"), OMP_NUM_THREADS="1")
    if torch.version.cuda is None:  # a CUDA build maps gigabytes of address space at import
        env["H2_AS_LIMIT"] = str(data_bytes * 3 // 4)
    argv = [sys.executable, "-c", MEMORY_SCRIPT, "train", str(example), "--out"]
    argv += [str(tmp_path / "run"), "--set", "train.epochs=1", "--set", "train.threads=1"]
    argv += ["--set", "data.loader.workers=0"]  # one process: its peak is all the memory used
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("PEAK_RSS_BYTES")]
    assert line, done.stderr[-2000:]
    peak, rc = (int(v) for v in line[0].split()[1:])
    assert rc == 0 and peak < data_bytes / 2, f"peak RSS {peak / 2**20:.0f} MiB"
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["test_accuracy"] > 0.5  # 4 classes: chance is 0.25
    print(f"peak RSS {peak / 2**20:.0f} MiB for {data_bytes / 2**30:.0f} GiB of training data")


@pytest.mark.parametrize("mode", ["linear", "finetune"])
def test_transfer_onto_streamed_data(tmp_path, capsys, mode):
    pre = config(tmp_path, args={"n": 300}, train={"epochs": 2})
    assert main(["train", str(pre), "--out", str(tmp_path / "pre")]) == 0
    capsys.readouterr()
    argv = ["transfer", "--from", str(tmp_path / "pre"), str(pre), "--mode", mode]
    res = run_json([*argv, "--out", str(tmp_path / "new")], capsys)
    assert res["test_accuracy"] > 0.8


@pytest.mark.parametrize(("kind", "shape"), [("vector", (5,)), ("image", (3, 4, 4))])
def test_running_moments_match_the_in_memory_fit(kind, shape):
    from trainlab.data.normalize import Normalizer, RunningMoments

    gen = torch.Generator().manual_seed(0)
    x = 1000.0 + 3.0 * torch.randn(700, *shape, generator=gen)  # a large mean, a small spread
    moments = RunningMoments(kind)
    for i in range(0, len(x), 256):
        moments.update(x[i : i + 256])
    got, want = moments.normalizer(), Normalizer.fit(x, kind)
    assert torch.allclose(got.mean, want.mean, rtol=1e-6)
    assert torch.allclose(got.std, want.std, rtol=1e-4)
