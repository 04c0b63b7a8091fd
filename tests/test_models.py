"""Models: the three families on vectors, signals and images, with each normalization."""

import pytest
import torch

from trainlab.config import ModelConfig
from trainlab.errors import UserError
from trainlab.nn.models import build_model


@pytest.mark.parametrize(
    "kind, shape",
    [
        ("mlp", (2,)),
        ("mlp", (1, 8, 8)),
        ("cnn", (1, 40)),
        ("cnn", (3, 16, 16)),
        ("resnet", (1, 40)),
        ("resnet", (3, 16, 16)),
    ],
)
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_shapes(kind, shape, norm):
    model = build_model(ModelConfig(kind=kind, width=8, depth=3, norm=norm), shape, 7)
    assert model(torch.randn(4, *shape)).shape == (4, 7)
    assert len(model.blocks) == 3  # blocks are what transfer learning freezes


def test_conv_models_take_any_size():
    model = build_model(ModelConfig(kind="cnn", width=8, depth=2), (3, 16, 16), 5).eval()
    assert model(torch.randn(2, 3, 12, 12)).shape == (2, 5)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "resnet"])
def test_batch_norm_eval_output_does_not_depend_on_the_batch(kind):
    shape = (1, 20) if kind != "mlp" else (10,)
    model = build_model(ModelConfig(kind=kind, width=8, depth=2, norm="batch"), shape, 3)
    model.train()
    for _ in range(3):  # give the running statistics something to hold
        model(torch.randn(16, *shape) * 3 + 1)
    model.eval()
    x = torch.randn(8, *shape)
    alone = torch.cat([model(x[i : i + 1]) for i in range(8)])
    assert torch.allclose(model(x), alone, atol=1e-5)
    model.train()
    assert not torch.allclose(model(x)[:1], model(x[:2])[:1], atol=1e-4)  # batch statistics


def test_cnn_on_vectors_is_refused():
    with pytest.raises(UserError, match="model.kind"):
        build_model(ModelConfig(kind="cnn"), (2,), 3)
