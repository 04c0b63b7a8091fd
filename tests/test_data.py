"""Data: embedded sets, user file formats, splits and the lecture's preprocessing."""

import pickle

import numpy as np
import pytest
import torch

from trainlab.config import DataConfig, load_config
from trainlab.data import prepare
from trainlab.data.sources import mnist1d, mnist5k, spirals
from trainlab.errors import UserError


def test_spirals_are_seeded_and_balanced():
    a, b = spirals(seed=3), spirals(seed=3)
    assert np.array_equal(a.x, b.x)
    assert np.bincount(a.y).tolist() == [500, 500, 500]


def test_mnist1d_standard_split_and_global_rng_untouched():
    import random

    np.random.seed(123)
    random.seed(123)
    before = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    src = mnist1d()
    assert (np.random.random(), random.random()) == before  # mnist1d reseeds; we restore
    assert src.x.shape == (4000, 1, 40) and src.x_test.shape == (1000, 1, 40)
    assert set(np.unique(src.y)) == set(range(10))


def test_mnist5k_real_digits():
    src = mnist5k()
    assert src.x.shape == (5000, 1, 28, 28) and src.kind == "image"
    assert src.x.max() > 200 and np.bincount(src.y).min() > 400


def test_splits_normalize_with_training_statistics_only():
    s = prepare(DataConfig(name="spirals", val_fraction=0.2, test_fraction=0.25))
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == 1500
    assert torch.allclose(s.x_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(s.x_train.std(0), torch.ones(2), atol=1e-3)
    assert not torch.allclose(s.x_test.mean(0), torch.zeros(2), atol=1e-5)


def test_classes_per_class_and_resize():
    s = prepare(DataConfig(name="digits", classes=[5, 6, 7, 8, 9], per_class=10, resize=[28, 28]))
    assert s.num_classes == 5 and s.x_train.shape[1:] == (1, 28, 28)
    assert np.bincount(s.y_train.numpy()).tolist() == [10] * 5
    assert int(s.y_test.max()) == 4


def test_npz_with_channels_last_images_and_test_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x=rng.random((60, 6, 6, 3)),
        y=rng.integers(0, 3, 60),
        x_test=rng.random((20, 6, 6, 3)),
        y_test=rng.integers(0, 3, 20),
    )
    s = prepare(DataConfig(name="npz", path=str(path)))
    assert s.kind == "image" and s.input_shape == (3, 6, 6) and len(s.x_test) == 20


def test_csv_with_header_and_named_label_column(tmp_path):
    path = tmp_path / "t.csv"
    rows = ["a,label,b"] + [f"{i},{i % 2},{-i}" for i in range(40)]
    path.write_text("\n".join(rows))
    s = prepare(DataConfig(name="csv", path=str(path), label_column="label"))
    assert s.input_shape == (2,) and s.num_classes == 2


def test_image_folder(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(6):
            Image.fromarray(np.full((5, 7, 3), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    s = prepare(DataConfig(name="image_folder", path=str(tmp_path), val_fraction=0.2))
    assert s.input_shape == (3, 5, 7) and s.num_classes == 2


def test_cifar_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        with open(tmp_path / name, "wb") as f:
            pickle.dump(
                {
                    b"data": rng.integers(0, 255, (10, 3072), dtype=np.uint8),
                    b"labels": [int(v) for v in rng.permutation(10)],  # every class
                },
                f,
            )
    s = prepare(DataConfig(name="cifar", path=str(tmp_path), val_fraction=0.1))
    assert s.input_shape == (3, 32, 32) and len(s.x_test) == 10 and len(s.x_train) == 18


def test_cifar_refuses_arbitrary_pickles(tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072)), "labels": [0], "evil": print}, f)
    with pytest.raises(UserError, match="not a CIFAR python batch"):
        prepare(DataConfig(name="cifar", path=str(tmp_path)))


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x": np.zeros((4, 2, 3, 4, 5)), "y": np.zeros(4)}, "shape"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(5)}, "labels"),
        ({"x": np.zeros((4, 3))}, "must hold arrays x and y"),
    ],
)
def test_bad_user_files(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=match):
        prepare(DataConfig(name="npz", path=str(path)))


def test_unknown_data_set_and_missing_path():
    # an unknown name is refused while the config is read, before any data is touched
    with pytest.raises(UserError, match="data.name: must be one of .* got 'imagenet'"):
        load_config(overrides=["data.name=imagenet"])
    with pytest.raises(UserError, match="data.path"):
        prepare(DataConfig(name="npz"))
