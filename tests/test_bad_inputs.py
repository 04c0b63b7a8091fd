"""Bad data and configs through the CLI: one line and exit 2 (or a warning line), never a
traceback, a silent wrong result, or minutes of work on an absurd config."""

import pickle
import time

import numpy as np
import pytest
from PIL import Image

from trainlab.cli import main

TINY = (
    "model: {kind: mlp, width: 8, depth: 1}\ntrain: {epochs: 1, batch_size: 32, log_steps: false}\n"
)


@pytest.fixture
def run(tmp_path, capsys):
    """`run(data_line, *args)`: train in-process; return (exit status, stderr lines)."""

    def train(data: str, *args: str, config: str | None = None):
        path = tmp_path / "exp.yaml"
        path.write_text(config if config is not None else f"data: {data}\n{TINY}")
        code = main(["train", str(path), "--out", str(tmp_path / "run"), "--json", *args])
        return code, capsys.readouterr().err.strip().splitlines()

    return train


def npz(tmp_path, name="d.npz", n=100, **arrays):
    rng = np.random.default_rng(0)
    arrays.setdefault("x", rng.normal(size=(n, 4)).astype(np.float32))
    arrays.setdefault("y", rng.integers(0, 3, n))
    np.savez(tmp_path / name, **arrays)
    return f"{{name: npz, path: {tmp_path / name}}}"


def one_error(code, lines, start):
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"trainlab train: {start}"), lines
    return lines[0]


# ------------------------------------------------------------------------- silent wrong results
def test_nan_and_inf_inputs_are_refused_with_count_and_place(tmp_path, run):
    x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    x[5, 1], x[7, 2], x[9, 0] = np.nan, np.inf, -np.inf
    line = one_error(*run(npz(tmp_path, x=x)), "data.path:")
    assert "3 of 400 input values in x of" in line and "d.npz" in line
    assert "1 NaN, 2 inf; first in example 5" in line


def test_nan_in_the_fixed_test_split_is_named(tmp_path, run):
    xt = np.zeros((10, 4), np.float32)
    xt[3, 0] = np.nan
    line = one_error(*run(npz(tmp_path, x_test=xt, y_test=np.arange(10) % 3)), "data.path:")
    assert "in x_test of" in line and "1 NaN, 0 inf; first in example 3" in line


def test_nan_in_a_csv_feature_is_refused(tmp_path, run):
    rows = [f"{i % 7}.5,{'nan' if i == 4 else i},{i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
    line = one_error(*run(f"{{name: csv, path: {tmp_path / 't.csv'}}}"), "data.path:")
    assert "1 NaN" in line and "t.csv" in line


def test_a_single_class_is_refused(tmp_path, run):
    line = one_error(*run(npz(tmp_path, y=np.full(100, 4))), "data.path:")
    assert "every training example has label 4;" in line and "two or more classes" in line


def test_data_classes_keeping_one_class_is_refused(run):
    one_error(*run("{name: spirals, classes: [1]}"), "data.classes: keeps one class")


def test_labels_with_gaps_warn_naming_the_classes_and_the_count(tmp_path, run):
    y = np.array([3, 7, 100])[np.arange(100) % 3]
    code, lines = run(npz(tmp_path, y=y))
    assert code == 0
    warning = [line for line in lines if "warning" in line]
    assert len(warning) == 1, lines
    assert "labels run 0..100 but only 3 of these 101 classes occur (3, 7, 100)" in warning[0]
    assert "101 outputs" in warning[0] and "data.classes" in warning[0]


def test_labels_with_gaps_train_as_asked_with_data_classes(tmp_path, run):
    y = np.array([3, 7, 100])[np.arange(100) % 3]
    code, lines = run(npz(tmp_path, y=y)[:-1] + ", classes: [3, 7, 100]}")
    assert code == 0 and not [line for line in lines if "warning" in line]


def test_a_huge_label_is_refused_before_allocating_its_outputs(tmp_path, run):
    one_error(*run(npz(tmp_path, y=np.arange(100) % 2 * 10**9)), "data.path: y in")


# ------------------------------------------------------------------------ tracebacks -> one line
def test_val_fraction_zero_is_refused(run):
    line = one_error(*run("{name: spirals}", "--set", "data.val_fraction=0"), "data.val_fraction")
    assert "must be in (0, 1), got 0" in line


def test_a_tiny_npz_leaving_no_validation_example(tmp_path, run):
    line = one_error(*run(npz(tmp_path, n=3)), "data.val_fraction: 0.1 of 2 training examples")
    assert "no validation example" in line


def test_a_tiny_npz_leaving_no_test_example(tmp_path, run):
    one_error(*run(npz(tmp_path, n=2)), "data.test_fraction: no test example")


def test_an_lr_that_overflows_float32_is_refused_and_a_large_one_diverges(tmp_path, run):
    line = one_error(*run("{name: spirals}", "--set", "optim.lr=1e39"), "optim.lr: must be at")
    assert "got 1e+39" in line
    code, _ = run("{name: spirals}", "--set", "optim.lr=1e10")
    result = (tmp_path / "run" / "result.json").read_text()
    assert code == 0 and '"stopped_reason": "diverged"' in result


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"\x93NUMPY garbage"])
def test_an_empty_or_broken_npz(tmp_path, run, content):
    (tmp_path / "d.npz").write_bytes(content)
    one_error(*run(f"{{name: npz, path: {tmp_path / 'd.npz'}}}"), "data.path: cannot read")


def test_an_npz_whose_x_is_an_object_array(tmp_path, run):
    x = np.empty(100, dtype=object)
    x[:] = [np.zeros(4)] * 100
    line = one_error(*run(npz(tmp_path, x=x)), "data.path: x in")
    assert "object array" in line


def test_an_unreadable_png_is_skipped_with_a_warning(tmp_path, run):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(6):
            pixels = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "img" / c / f"{i}.png")
    (tmp_path / "img" / "a" / "0broken.png").write_bytes(b"not a png")  # first in the listing
    # hidden names are not the data set's: no class, no image, no warning
    (tmp_path / "img" / "a" / "._1.png").write_bytes(b"not a png")  # a macOS resource fork
    (tmp_path / "img" / ".ipynb_checkpoints").mkdir()  # Jupyter's, beside the class folders
    code, lines = run(f"{{name: image_folder, path: {tmp_path / 'img'}}}")
    assert code == 0
    warning = [line for line in lines if "warning" in line]
    assert len(warning) == 1 and "skipped 1 unreadable image file(s)" in warning[0]
    assert "a/0broken.png" in warning[0]


def cifar_batch(folder, data, labels):
    folder.mkdir()
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    return f"{{name: cifar, path: {folder}}}"


def test_a_cifar_batch_of_the_wrong_shape(tmp_path, run):
    data = cifar_batch(tmp_path / "c", np.zeros((10, 100), np.uint8), list(range(10)))
    line = one_error(*run(data), "data.path: 'data' in")
    assert "(10, 100)" in line and "3072" in line


def test_a_cifar_batch_with_fewer_labels_than_images(tmp_path, run):
    data = cifar_batch(tmp_path / "c", np.zeros((10, 3072), np.uint8), [0, 1] * 3)
    line = one_error(*run(data), "data.path: labels in")
    assert "6 labels for 10 examples" in line


def alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ndata: {{name: spirals}}\ntrain: {{members: *l{levels - 1}}}\n"


def test_a_yaml_alias_bomb_is_refused_in_a_second(run):
    start = time.perf_counter()
    line = one_error(*run("", config=alias_bomb(9)), "config: expands to more than")
    assert time.perf_counter() - start < 1.0 and len(line) < 200


def test_a_bad_value_is_shown_as_a_bounded_excerpt(run):
    line = one_error(*run("", config=alias_bomb(4)), "train.members.0: input should be")
    assert len(line) < 250 and "..." in line  # 6,561 strings, shown in a few dozen characters


def test_a_recursive_alias_and_deep_nesting_are_one_line(run):
    one_error(*run("", config="a: &a [*a]\ndata: {name: spirals}\n"), "config: a YAML alias")
    one_error(*run("", config="x: " + "[" * 5000 + "]" * 5000 + "\n"), "config:")


def test_an_alias_bomb_through_set_is_refused(run):
    bomb = alias_bomb(9).split("\ndata:")[0].replace("\n", ", ")
    line = one_error(*run("{name: spirals}", "--set", f"train.members={{{bomb}}}"), "--set:")
    assert "expands to more than" in line


def test_eval_on_new_data_with_nan_is_refused(tmp_path, run, capsys):
    assert run("{name: spirals}")[0] == 0
    x = np.zeros((20, 2), np.float32)
    x[11, 1] = np.nan
    np.savez(tmp_path / "new.npz", x=x, y=np.arange(20) % 3)
    code = main(["eval", str(tmp_path / "run"), "--data-path", str(tmp_path / "new.npz")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("trainlab eval: --data-path: 1 of 40 input values in x of")
    assert "first in example 11" in lines[0]


@pytest.mark.parametrize(
    "content, start",
    [
        (b"\xff\xfe\x00garbage\x80", "data.path: cannot read"),
        (b"1,2,0\n3,4\n5,6,1\n", "data.path: row 2 of"),
    ],
)
def test_a_csv_that_is_not_text_or_is_ragged(tmp_path, run, content, start):
    (tmp_path / "t.csv").write_bytes(content)
    one_error(*run(f"{{name: csv, path: {tmp_path / 't.csv'}}}"), start)


def test_a_csv_path_that_is_a_folder(tmp_path, run):
    (tmp_path / "t.csv").mkdir()
    one_error(*run(f"{{name: csv, path: {tmp_path / 't.csv'}}}"), "data.path: cannot read")


@pytest.mark.parametrize(
    "x, what",
    [
        (np.ones((50, 3), np.complex64), "real numbers"),
        (np.ones((50, 0), np.float32), "no input values per example"),
    ],
)
def test_complex_or_empty_inputs_are_refused(tmp_path, run, x, what):
    assert what in one_error(*run(npz(tmp_path, x=x, y=np.arange(50) % 2)), "data.path: x in")


def test_inputs_that_overflow_when_standardized(tmp_path, run):
    x = np.full((50, 3), 1e38, np.float32)
    line = one_error(*run(npz(tmp_path, x=x, y=np.arange(50) % 2)), "data.path: inputs up to")
    assert "rescale" in line


def test_a_config_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "exp.yaml").write_bytes(b"\xff\xfe\x00data: 1\x80")
    code = main(["train", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "run")])
    one_error(code, capsys.readouterr().err.strip().splitlines(), "config:")


@pytest.mark.parametrize(
    "setting", ["train.seed=-1", "train.seed=99999999999999999999999", "data.seed=-1"]
)
def test_seeds_out_of_the_generators_range(run, setting):
    one_error(*run("{name: spirals}", "--set", setting), setting.split("=")[0] + ":")
