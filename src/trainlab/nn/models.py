"""The three model families, built from the config: mlp, cnn and resnet (or the user's own:
nn.plugins).

Every model is `stem -> blocks -> pool -> dropout -> fc`. A *block* is one hidden layer of the MLP,
one conv stage of the CNN or one residual block of the ResNet: transfer learning freezes and
unfreezes whole blocks, and replaces `fc`. Conv models end with global average pooling, so they
accept any input length or image size (ten-crop test-time augmentation relies on it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from trainlab import names
from trainlab.config import ModelConfig, is_plugin
from trainlab.errors import UserError
from trainlab.nn.layers import (
    DropConnectConv,
    DropConnectLinear,
    FractionalMaxPool2d,
    StochasticDepth,
    linear_drop_probs,
)
from trainlab.nn.plugins import Factory, build_plugin_model

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


class Net(nn.Module):
    def __init__(
        self,
        stem: nn.Module,
        blocks: Sequence[nn.Module],
        pool: nn.Module,
        features: int,
        num_classes: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.pool = pool
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


# ----------------------------------------------------------------------------------- components
def linear(cfg: ModelConfig, n_in: int, n_out: int) -> nn.Module:
    if cfg.drop_connect > 0:
        return DropConnectLinear(n_in, n_out, p=cfg.drop_connect)
    return nn.Linear(n_in, n_out)


def conv(
    cfg: ModelConfig,
    dims: int,
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int = 1,
    bias: bool = True,
) -> nn.Module:
    if cfg.drop_connect > 0:
        return DropConnectConv(
            dims,
            c_in,
            c_out,
            kernel,
            stride=stride,
            padding=kernel // 2,
            bias=bias,
            p=cfg.drop_connect,
        )
    layer = nn.Conv1d if dims == 1 else nn.Conv2d
    return layer(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=bias)


def norm(cfg: ModelConfig, dims: int, channels: int) -> nn.Module:
    """Batch norm (batch statistics in training, running ones at test) or layer norm."""
    if cfg.norm == "batch":
        return {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims](channels)
    if cfg.norm == "layer":  # over all features of an example; for conv maps: GroupNorm(1, C)
        return nn.LayerNorm(channels) if dims == 0 else nn.GroupNorm(1, channels)
    return nn.Identity()


def channel_dropout(cfg: ModelConfig, dims: int) -> nn.Module:
    if cfg.channel_dropout <= 0:
        return nn.Identity()
    return (nn.Dropout1d if dims == 1 else nn.Dropout2d)(cfg.channel_dropout)


def downsample(cfg: ModelConfig, dims: int) -> nn.Module:
    if cfg.pool == "none":
        return nn.Identity()
    if cfg.pool == "fractional":  # Graham 2014: pseudo-random pooling regions, ratio 1/sqrt(2)
        if dims == 1:
            raise UserError(
                "model.pool: fractional pooling needs images (2-D); use max for signals"
            )
        return FractionalMaxPool2d(2, output_ratio=0.7071)  # fixed grid at eval: deterministic
    return (nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(2, ceil_mode=True)


# ----------------------------------------------------------------------------------------- mlp
def build_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Net:
    n_in = int(torch.tensor(input_shape).prod())
    blocks, width = [], cfg.width
    for i in range(cfg.depth):
        blocks.append(
            nn.Sequential(
                linear(cfg, n_in if i == 0 else width, width),
                norm(cfg, 0, width),
                ACTIVATIONS[cfg.activation](),
                nn.Dropout(cfg.dropout) if cfg.dropout > 0 and i < cfg.depth - 1 else nn.Identity(),
            )
        )
    return Net(nn.Flatten(), blocks, nn.Identity(), width, num_classes, cfg.dropout)


# ----------------------------------------------------------------------------------------- cnn
def build_cnn(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Net:
    dims = len(input_shape) - 1
    channels = [cfg.width * 2 ** min(i, 2) for i in range(cfg.depth)]
    blocks, c_in = [], input_shape[0]
    for i, c_out in enumerate(channels):
        blocks.append(
            nn.Sequential(
                downsample(cfg, dims) if i > 0 else nn.Identity(),
                conv(cfg, dims, c_in, c_out, cfg.kernel_size, bias=cfg.norm != "batch"),
                norm(cfg, dims, c_out),
                ACTIVATIONS[cfg.activation](),
                channel_dropout(cfg, dims),
            )
        )
        c_in = c_out
    pool = nn.Sequential(
        (nn.AdaptiveAvgPool1d if dims == 1 else nn.AdaptiveAvgPool2d)(1), nn.Flatten()
    )
    return Net(nn.Identity(), blocks, pool, c_in, num_classes, cfg.dropout)


# -------------------------------------------------------------------------------------- resnet
class ResidualBlock(nn.Module):
    """out = act(shortcut(x) + drop(branch(x))), branch = conv-norm-act-conv-norm (He et al.).

    A block that downsamples does it with stride 2 (He et al.), or, with model.pool fractional,
    with fractional max pooling of its input (then stride 1).
    """

    def __init__(
        self, cfg: ModelConfig, dims: int, c_in: int, c_out: int, stride: int, drop_prob: float
    ) -> None:
        super().__init__()
        self.pool: nn.Module = nn.Identity()
        if stride > 1 and cfg.pool == "fractional":
            self.pool, stride = downsample(cfg, dims), 1
        self.branch = nn.Sequential(
            conv(cfg, dims, c_in, c_out, cfg.kernel_size, stride, bias=cfg.norm != "batch"),
            norm(cfg, dims, c_out),
            ACTIVATIONS[cfg.activation](),
            channel_dropout(cfg, dims),
            conv(cfg, dims, c_out, c_out, cfg.kernel_size, bias=cfg.norm != "batch"),
            norm(cfg, dims, c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(
                conv(cfg, dims, c_in, c_out, 1, stride, bias=False), norm(cfg, dims, c_out)
            )
        )
        if drop_prob > 0:
            self.drop: nn.Module = StochasticDepth(drop_prob)
        else:
            self.drop = nn.Identity()
        self.act = ACTIVATIONS[cfg.activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.act(self.shortcut(x) + self.drop(self.branch(x)))


def build_resnet(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Net:
    """A stem conv, then `depth` residual blocks in up to three stages that halve the resolution
    and double the channels."""
    dims = len(input_shape) - 1
    if cfg.stochastic_depth > 0:
        drops = linear_drop_probs(cfg.stochastic_depth, cfg.depth)
    else:
        drops = [0.0] * cfg.depth
    stem = nn.Sequential(
        conv(cfg, dims, input_shape[0], cfg.width, cfg.kernel_size, bias=cfg.norm != "batch"),
        norm(cfg, dims, cfg.width),
        ACTIVATIONS[cfg.activation](),
    )
    per_stage = max(1, -(-cfg.depth // 3))
    blocks, c_in = [], cfg.width
    for i in range(cfg.depth):
        stage = i // per_stage
        c_out = cfg.width * 2**stage
        stride = 2 if i > 0 and i % per_stage == 0 else 1
        blocks.append(ResidualBlock(cfg, dims, c_in, c_out, stride, drops[i]))
        c_in = c_out
    pool = nn.Sequential(
        (nn.AdaptiveAvgPool1d if dims == 1 else nn.AdaptiveAvgPool2d)(1), nn.Flatten()
    )
    return Net(stem, blocks, pool, c_in, num_classes, cfg.dropout)


#: model.kind -> builder, with exactly the names of trainlab.names.MODEL_KINDS
BUILDERS = names.covers(
    {"mlp": build_mlp, "cnn": build_cnn, "resnet": build_resnet},
    names.MODEL_KINDS,
    "trainlab.nn.models.BUILDERS",
)


def build_model(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    search_dirs: Iterable[str | Path] = (),
    factory: Factory | None = None,
) -> nn.Module:
    """The model named by model.kind for inputs of this shape (vector, (C, L) or (C, H, W)): a
    built-in `Net`, or the user's (a plugin model.kind looked up also in `search_dirs`, the
    config's folder, or a `factory` given directly)."""
    if factory is not None or is_plugin(cfg.kind):
        return build_plugin_model(cfg, tuple(input_shape), num_classes, search_dirs, factory)
    if cfg.kind in ("cnn", "resnet") and len(input_shape) not in (2, 3):
        raise UserError(
            f"model.kind: {cfg.kind} needs signals (C, L) or images (C, H, W); "
            f"this data has inputs of shape {tuple(input_shape)}: use mlp"
        )
    if cfg.stochastic_depth > 0 and cfg.kind != "resnet":  # ModelConfig alone does not check it
        raise UserError("model.stochastic_depth: needs model.kind resnet (drops residual blocks)")
    if cfg.pool == "fractional" and len(input_shape) != 3:
        raise UserError("model.pool: fractional max pooling needs images (C, H, W)")
    return BUILDERS[cfg.kind](cfg, tuple(input_shape), num_classes)
