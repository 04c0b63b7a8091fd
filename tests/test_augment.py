"""Batch augmentation and test-time augmentation: what each op does, on real photos where colour
matters, vectorized speed, determinism, and the errors a user sees."""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.data.augment import AUGMENTATIONS, default_augment, parse_augment
from trainlab.data.tta import TTA_MODES, ten_crop, tta_predict
from trainlab.errors import UserError

ALL_IMAGE = ["flip", {"name": "crop", "pad": 4}, "resized_crop", "color_jitter", "pca_color"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: a thread pool only adds waiting on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """scikit-learn's two real RGB photos, shrunk to 24x32, normalized per channel like the data."""
    from sklearn.datasets import load_sample_images

    images = np.stack(load_sample_images().images)  # (2, 427, 640, 3) uint8
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(24, 32), mode="bilinear", antialias=True, align_corners=False)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / std


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch_of(photos: torch.Tensor, n: int) -> torch.Tensor:
    return photos.repeat(n // 2, 1, 1, 1)


# ------------------------------------------------------------------------- all ops, in general
OP_CASES = [
    ("image", 3, "flip"),
    ("image", 3, "crop"),
    ("image", 3, "resized_crop"),
    ("image", 3, "color_jitter"),
    ("image", 3, "pca_color"),
    ("signal", 1, "flip"),
    ("signal", 2, "shift"),
    ("signal", 1, "scale"),
]


def _data(kind: str, channels: int, dtype=torch.float32) -> torch.Tensor:
    shape = (6, channels, 12, 10) if kind == "image" else (6, channels, 40)
    return torch.randn(shape, generator=gen(1)).to(dtype)


@pytest.mark.parametrize(("kind", "channels", "name"), OP_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_each_op_keeps_shape_dtype_device_and_is_deterministic(kind, channels, name, dtype):
    x = _data(kind, channels, dtype)
    aug = parse_augment([name], kind, channels, x.shape[2:]).fit(x.float())
    out = aug(x, gen(5))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.equal(aug(x, gen(5)), out)  # the same seed gives the same batch
    assert not torch.equal(aug(x, gen(6)), out)  # another seed another one


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_ops_run_on_the_gpu_with_a_cpu_generator():
    x = torch.randn(8, 3, 16, 16, device="cuda")
    aug = parse_augment(ALL_IMAGE, "image", 3, 16).fit(x)
    out = aug(x, gen(0))
    assert out.device == x.device and out.shape == x.shape
    torch.testing.assert_close(out.cpu(), aug(x.cpu(), gen(0)), atol=1e-4, rtol=1e-4)
    on_gpu = torch.Generator(device="cuda").manual_seed(0)
    again = torch.Generator(device="cuda").manual_seed(0)
    assert torch.equal(aug(x, on_gpu), aug(x, again))
    signals = parse_augment(["flip", "shift", "scale"], "signal", 1, 40)
    s = torch.randn(8, 1, 40, device="cuda")
    assert signals(s, gen(0)).device == s.device
    model = TinyConvNet().cuda()
    probs = tta_predict(model, x.cpu(), "ten_crop", crop_size=12)  # model on the GPU, data not
    assert probs.device.type == "cpu" and probs.shape == (8, 4)


def test_whole_pipeline_is_vectorized_fast():
    x = torch.randn(256, 3, 64, 64, generator=gen(0))
    aug = parse_augment(ALL_IMAGE, "image", 3, 64).fit(x)
    aug(x, gen(0))  # warm-up
    best = min(_timed(aug, x) for _ in range(2))
    assert best < 1.0, f"256 64x64 images took {best:.2f} s"


def _timed(aug, x) -> float:
    t = time.perf_counter()
    aug(x, gen(1))
    return time.perf_counter() - t


def test_empty_spec_is_identity_and_describe_and_resolved_round_trip():
    x = torch.randn(2, 3, 8, 8)
    none = parse_augment([], "image", 3, 8)
    assert none(x, gen()) is x and none.describe() == "none" and len(none) == 0
    aug = parse_augment(["flip", {"name": "crop", "pad": 2, "size": 6}], "image", 3, 8)
    assert aug.describe() == "flip(p=0.5), crop(pad=2, size=(6, 6), mode=zeros)"
    again = parse_augment(aug.resolved(), "image", 3, 8)
    assert again.describe() == aug.describe()
    assert aug.tta_crop() == {"crop_size": (6, 6), "pad": 2} and aug.out_size((8, 8)) == (6, 6)
    assert parse_augment(["flip"], "image", 3).tta_crop() == {"crop_size": None, "pad": 0}
    chained = parse_augment([{"name": "resized_crop", "size": 6}, "crop"], "image", 3, 8)
    assert chained.tta_crop() == {"crop_size": (6, 6), "pad": 4}
    assert set(AUGMENTATIONS) == {
        "flip",
        "crop",
        "resized_crop",
        "color_jitter",
        "pca_color",
        "shift",
        "scale",
    }


def test_default_augment_leaves_flip_out_where_mirroring_changes_the_label():
    assert "flip" not in default_augment("image", mirror_invariant=False)
    assert "flip" in default_augment("image", mirror_invariant=True)
    assert default_augment("signal", mirror_invariant=False) == ["shift"]
    parse_augment(default_augment("image", True), "image", 3, 32)  # valid specs


# ------------------------------------------------------------------------------- geometric
def test_flip_is_exact_and_per_example():
    x = torch.randn(400, 2, 5, 7)
    assert torch.equal(
        parse_augment([{"name": "flip", "p": 1.0}], "image", 2)(x, gen()), x.flip(-1)
    )
    assert torch.equal(parse_augment([{"name": "flip", "p": 0.0}], "image", 2)(x, gen()), x)
    out = parse_augment(["flip"], "image", 2)(x, gen())
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored)
    assert 0.4 < mirrored.float().mean().item() < 0.6
    signal = torch.randn(3, 1, 9)
    flipped = parse_augment([{"name": "flip", "p": 1.0}], "signal", 1)(signal, gen())
    assert torch.equal(flipped, signal.flip(-1))  # time reversed


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved down by dy and right by dx, zeros where nothing moved in."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_crop_with_padding_is_a_translation_of_the_content():
    pad = 3
    x = torch.randn(200, 2, 8, 9, generator=gen(2)) + 5  # no zeros in the content
    out = parse_augment([{"name": "crop", "pad": pad}], "image", 2, (8, 9))(x, gen(3))
    assert out.shape == x.shape
    seen = set()
    for i in range(len(x)):
        shifts = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.equal(out[i], _shifted(x[i], dy, dx))
        ]
        assert len(shifts) == 1, f"example {i} is not a translation of its input"
        seen.add(shifts[0])
    assert len(seen) > 30  # per-example offsets cover the 7x7 possible translations


def test_crop_to_a_smaller_size_takes_a_window_of_the_image():
    x = torch.randn(50, 1, 10, 10, generator=gen(4))
    out = parse_augment([{"name": "crop", "pad": 0, "size": [6, 7]}], "image", 1, 10)(x, gen(5))
    assert out.shape == (50, 1, 6, 7)
    for i in range(50):
        windows = x[i, 0].unfold(0, 6, 1).unfold(1, 7, 1)  # (5, 4, 6, 7)
        assert (windows == out[i, 0]).flatten(2).all(-1).sum() == 1


def test_crop_reflect_padding_mirrors_the_border():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = parse_augment([{"name": "crop", "pad": 1, "mode": "reflect"}], "image", 1, 4)(x, gen())
    padded = F.pad(x[:1], (1, 1, 1, 1), mode="reflect")[0, 0]
    windows = padded.unfold(0, 4, 1).unfold(1, 4, 1).reshape(9, 16)
    for i in range(64):
        assert (windows == out[i, 0].flatten()).all(1).any()


def test_resized_crop_draws_area_and_aspect_per_example_inside_the_image():
    n, size = 512, 64
    ramp = torch.arange(size, dtype=torch.float32)
    x = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size)])  # j and i
    x = x.expand(n, 2, size, size).contiguous()
    out = parse_augment(["resized_crop"], "image", 2, size)(x, gen(7))
    mid = size // 2
    # a linear ramp stays linear: the step between interior pixels is the crop's fraction
    fw = out[:, 0, mid, mid + 1] - out[:, 0, mid, mid]  # output size = input size
    fh = out[:, 1, mid + 1, mid] - out[:, 1, mid, mid]
    area, ratio = fw * fh, fw / fh
    assert torch.all((area > 0.6 - 1e-3) & (area < 1.0 + 1e-3))
    assert torch.all((ratio > 0.75 - 1e-3) & (ratio < 4 / 3 + 1e-3))
    assert area.min() < 0.65 and area.max() > 0.95  # spread over the range, per example
    assert ratio.min() < 0.8 and ratio.max() > 1.25
    assert out.min() >= -1e-4 and out.max() <= size - 1 + 1e-4  # samples inside the image


def test_resized_crop_full_scale_is_identity_and_size_sets_the_output():
    x = torch.randn(4, 3, 16, 16)
    same = parse_augment(
        [{"name": "resized_crop", "scale": [1, 1], "ratio": [1, 1]}], "image", 3, 16
    )(x, gen())
    torch.testing.assert_close(same, x)
    small = parse_augment([{"name": "resized_crop", "size": 8}], "image", 3, 16)(x, gen())
    assert small.shape == (4, 3, 8, 8)


# -------------------------------------------------------------------------------- colour
def _jitter(photos, n=128, **params):
    spec = [{"name": "color_jitter", "brightness": 0, "contrast": 0, "saturation": 0, **params}]
    x = batch_of(photos, n)
    return x, parse_augment(spec, "image", 3, photos.shape[2:])(x, gen(11))


def test_brightness_shifts_every_pixel_of_an_image_by_one_random_amount(photos):
    x, out = _jitter(photos, brightness=0.4)
    delta = (out - x).flatten(1)
    torch.testing.assert_close(delta, delta[:, :1].expand_as(delta))  # one shift per image
    shift = delta[:, 0]
    assert shift.abs().max() <= 0.4 and shift.std() > 0.15  # U(-0.4, 0.4): sd 0.23
    torch.testing.assert_close(out.flatten(1).std(1), x.flatten(1).std(1))  # contrast kept


def test_contrast_scales_deviations_from_the_image_mean(photos):
    x, out = _jitter(photos, contrast=0.4)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5, rtol=0)
    factor = out.flatten(1).std(1) / x.flatten(1).std(1)
    assert torch.all((factor >= 0.6 - 1e-5) & (factor <= 1.4 + 1e-5)) and factor.std() > 0.15
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(out - m, factor[:, None, None, None] * (x - m), atol=1e-5, rtol=1e-5)


def test_saturation_scales_colour_around_the_gray_of_each_pixel(photos):
    x, out = _jitter(photos, saturation=0.4)
    gray = x.mean(1, keepdim=True)
    torch.testing.assert_close(out.mean(1, keepdim=True), gray)  # luminance kept
    factor = (out - gray).flatten(1).norm(dim=1) / (x - gray).flatten(1).norm(dim=1)
    assert torch.all((factor >= 0.6 - 1e-5) & (factor <= 1.4 + 1e-5)) and factor.std() > 0.15
    torch.testing.assert_close(
        out - gray, factor[:, None, None, None] * (x - gray), atol=1e-5, rtol=1e-5
    )
    desaturated = (out - gray).flatten(1).norm(dim=1) < (x - gray).flatten(1).norm(dim=1)
    assert 0.3 < desaturated.float().mean() < 0.7


def test_pca_color_fits_the_rgb_covariance_and_shifts_along_its_eigenvectors(photos):
    aug = parse_augment([{"name": "pca_color", "std": 0.1}], "image", 3, photos.shape[2:])
    aug.fit(photos)
    op = aug.ops[0]
    pixels = photos.permute(1, 0, 2, 3).reshape(3, -1).double().numpy()
    values, vectors = np.linalg.eigh(np.cov(pixels, bias=True))
    np.testing.assert_allclose(op.eigenvalues.numpy(), values[::-1], rtol=1e-4)
    for i in range(3):  # the same axes, up to sign
        assert abs(float(np.dot(op.eigenvectors[:, i].numpy(), vectors[:, 2 - i]))) > 0.9999
    assert op.eigenvalues[0] > op.eigenvalues[1] > op.eigenvalues[2]  # colour is correlated

    x = batch_of(photos, 2000)
    out = aug(x, gen(13))
    delta = (out - x).flatten(2)  # (N, 3, pixels): one RGB shift per image
    torch.testing.assert_close(delta, delta[:, :, :1].expand_as(delta))
    coords = delta[:, :, 0] @ op.eigenvectors  # alpha_i lambda_i along each eigenvector
    alpha = coords / op.eigenvalues
    torch.testing.assert_close(alpha.std(0), torch.full((3,), 0.1), rtol=0.1, atol=0)
    assert coords.std(0)[0] > 5 * coords.std(0)[2]  # moved most along the main colour axis


def test_pca_color_needs_fit_first(photos):
    aug = parse_augment(["pca_color"], "image", 3)
    with pytest.raises(RuntimeError, match="fit"):
        aug(photos, gen())


# ------------------------------------------------------------------------------- signals
def test_shift_is_a_circular_or_zero_filled_translation_in_time():
    x = torch.randn(100, 2, 20, generator=gen(3)) + 5
    out = parse_augment([{"name": "shift", "max_shift": 3}], "signal", 2, 20)(x, gen(4))
    seen = set()
    for i in range(100):
        s = [k for k in range(-3, 4) if torch.equal(out[i], x[i].roll(k, -1))]
        assert len(s) == 1
        seen.add(s[0])
    assert seen == set(range(-3, 4))
    out = parse_augment([{"name": "shift", "max_shift": 0.25, "mode": "zeros"}], "signal", 2, 20)(
        x, gen(4)
    )
    for i in range(100):
        assert any(torch.equal(out[i], _shifted(x[i][None], 0, k)[0]) for k in range(-5, 6))


def test_scale_stretches_time_about_the_centre_and_scales_amplitude():
    n, length = 300, 41
    ramp = (torch.arange(length, dtype=torch.float32) - 20).expand(n, 1, length)
    timed = parse_augment([{"name": "scale", "time": 0.2, "amplitude": 0}], "signal", 1, length)(
        ramp, gen(5)
    )
    slope = timed[:, 0, 21] - timed[:, 0, 20]  # x'(u) = x(u / f): slope 1 / f
    assert torch.all((slope >= 1 / 1.2 - 1e-4) & (slope <= 1 / 0.8 + 1e-4)) and slope.std() > 0.05
    torch.testing.assert_close(timed[:, 0, 20], torch.zeros(n), atol=1e-4, rtol=0)  # centre fixed
    x = torch.randn(n, 1, length, generator=gen(6))
    amp = parse_augment([{"name": "scale", "time": 0, "amplitude": 0.2}], "signal", 1, length)(
        x, gen(7)
    )
    k = amp / x
    torch.testing.assert_close(k, k[:, :, :1].expand_as(k))
    assert k.min() >= 0.8 - 1e-5 and k.max() <= 1.2 + 1e-5


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("spec", "kind", "channels", "size", "message"),
    [
        (["flip", "zoom"], "image", 3, 8, r"^data\.augment\[1\]: unknown augmentation 'zoom'"),
        (
            [{"name": "crop", "pad": 4, "size": 40}],
            "image",
            3,
            32,
            r"^data\.augment\[0\]\.size: crop 40x40 is larger than the image 32x32",
        ),
        ([{"name": "crop", "pad": -1}], "image", 3, 8, r"^data\.augment\[0\]\.pad: "),
        (
            [{"name": "crop", "padding": 2}],
            "image",
            3,
            8,
            r"^data\.augment\[0\]\.padding: unknown parameter of crop; allowed: pad, size, mode",
        ),
        (["pca_color"], "image", 1, 8, r"^data\.augment\[0\]: pca_color needs 3-channel"),
        (["color_jitter"], "image", 1, 8, r"^data\.augment\[0\]\.saturation: needs 3-channel"),
        (
            ["crop"],
            "signal",
            1,
            40,
            r"^data\.augment\[0\]: 'crop' does not apply to signal data; "
            r"allowed: flip, shift, scale",
        ),
        (["shift"], "image", 3, 8, r"^data\.augment\[0\]: 'shift' does not apply to image data"),
        ([{"name": "flip", "p": 2}], "image", 3, 8, r"^data\.augment\[0\]\.p: must be in \[0"),
        ([{"name": "resized_crop", "scale": [0.9, 0.5]}], "image", 3, 8, r"low must be <= high"),
        ([{"name": "shift", "max_shift": 1.5}], "signal", 1, 40, r"\.max_shift: must be a whole"),
        ([{"pad": 4}], "image", 3, 8, r"^data\.augment\[0\]: a mapping needs a 'name'"),
        (["flip", "flip"], "image", 3, 8, r"^data\.augment\[1\]: 'flip' is listed twice"),
        (
            ["flip"],
            "vector",
            1,
            None,
            r"^data\.augment: augmentation applies to images and signals",
        ),
        ("flip", "image", 3, 8, r"^data\.augment: must be a list"),
    ],
)
def test_bad_specs_are_user_errors_naming_the_field(spec, kind, channels, size, message):
    with pytest.raises(UserError, match=message):
        parse_augment(spec, kind, channels, size)


def test_wrong_batch_shape_is_refused():
    aug = parse_augment(["flip"], "image", 3)
    with pytest.raises(ValueError, match="C=3"):
        aug(torch.zeros(2, 1, 4, 4), gen())


# ------------------------------------------------------------------ test-time augmentation
class TinyConvNet(nn.Module):
    """Conv + global average pooling: accepts any image (or signal) size, like our CNN/ResNet."""

    def __init__(self, dims: int = 2, channels: int = 3, classes: int = 4) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.body = nn.Sequential(conv(channels, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(2).mean(-1))


def test_ten_crop_returns_corners_centre_and_their_mirrors():
    x = torch.randn(2, 3, 8, 10)
    views = ten_crop(x, (5, 6)).view(10, 2, 3, 5, 6)
    expected = [x[..., :5, :6], x[..., :5, 4:], x[..., 3:, :6], x[..., 3:, 4:], x[..., 2:7, 2:8]]
    for k, view in enumerate(expected):
        assert torch.equal(views[k], view)
        assert torch.equal(views[5 + k], view.flip(-1))
    padded = ten_crop(x, (8, 10), pad=1).view(10, 2, 3, 8, 10)
    assert torch.equal(padded[0, :, :, 1:, 1:], x[..., :7, :9])  # top-left corner of the padding
    assert torch.equal(padded[4], x)  # the centre of the padded image is the image
    with pytest.raises(UserError, match=r"^train\.tta: crop 9x9 does not fit the image 8x10"):
        ten_crop(x, 9)


def test_tta_predict_averages_softmax_over_the_views():
    torch.manual_seed(0)
    model = TinyConvNet().train()
    x = torch.randn(5, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        plain = model(x).softmax(-1)
        mirrored = model(x.flip(-1)).softmax(-1)
        crops = model(ten_crop(x, 6)).softmax(-1).view(10, 5, -1).mean(0)
    model.train()
    torch.testing.assert_close(tta_predict(model, x, "none"), plain)
    torch.testing.assert_close(tta_predict(model, x, "flip"), (plain + mirrored) / 2)
    got = tta_predict(model, x, "ten_crop", crop_size=6, batch_size=20)  # 2 images per pass
    torch.testing.assert_close(got, crops)
    aug = parse_augment([{"name": "crop", "pad": 2}], "image", 3, 8)  # the training crop
    with torch.no_grad():
        padded = model.eval()(ten_crop(x, 8, pad=2)).softmax(-1).view(10, 5, -1).mean(0)
    model.train()
    torch.testing.assert_close(tta_predict(model, x, "ten_crop", **aug.tta_crop()), padded)
    assert model.training  # the caller's mode is restored
    torch.testing.assert_close(got.sum(-1), torch.ones(5))
    assert not torch.allclose(got, plain)


def test_tta_flip_reverses_time_for_signals():
    torch.manual_seed(1)
    model = TinyConvNet(dims=1, channels=2).eval()
    x = torch.randn(7, 2, 16)
    with torch.no_grad():
        expected = (model(x).softmax(-1) + model(x.flip(-1)).softmax(-1)) / 2
    torch.testing.assert_close(tta_predict(model, x, "flip", batch_size=3), expected)


def test_tta_bad_requests_are_user_errors():
    model = TinyConvNet()
    assert TTA_MODES == ("none", "flip", "ten_crop")
    with pytest.raises(UserError, match=r"^train\.tta: must be one of none, flip, ten_crop"):
        tta_predict(model, torch.randn(2, 3, 8, 8), "five_crop")
    with pytest.raises(UserError, match=r"^train\.tta: ten_crop applies to images"):
        tta_predict(TinyConvNet(dims=1), torch.randn(2, 3, 8), "ten_crop", crop_size=4)
    with pytest.raises(UserError, match=r"^train\.tta: ten_crop needs a training crop"):
        tta_predict(model, torch.randn(2, 3, 8, 8), "ten_crop")
