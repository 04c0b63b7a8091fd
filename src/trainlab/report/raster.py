"""A small raster plotter for the pictures every run and every search writes (a run's
curves.png; a search's params.png and curves.png): panels with linear, log, inverted or
categorical axes (tick labels from a function or given as text), a second y axis on the right,
lines (solid, dashed, dotted, faint), scatter markers (circle, square, x cross, star with an
edge), shaded vertical spans, reference lines, legends, a colour ramp (viridis-like) with its bar,
and text, drawn with Pillow at twice the size and reduced (antialiased), saved as PNG.

Why not matplotlib here: every `trainlab train` writes curves.png and every `trainlab search`
two pictures (issue 30). matplotlib's import (~0.3-0.5 s) plus a run's three-panel figure
(0.15-0.25 s of CPU, most of it tick and text layout) were the largest fixed cost of a short run;
with a search's two figures, 1.5-1.8 s of CPU at the end of every search (36 trials), against
0.15-0.2 s here. The other pictures (compare, lr-find, landscape) are drawn on request and keep
matplotlib.

Sizes are in pixels of the final image; colours are "#rrggbb" strings or names of COLORS.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SCALE = 2  # drawn at twice the size, then reduced: antialiased lines and markers
#: matplotlib's "tab10" colours, so the pictures read like the project's other plots
COLORS = {
    "blue": "#1f77b4",
    "orange": "#ff7f0e",
    "green": "#2ca02c",
    "red": "#d62728",
    "purple": "#9467bd",
    "grey": "#7f7f7f",
    "darkred": "#8b0000",
    "black": "#000000",
    "text": "#262626",
    "grid": "#e5e5e5",
    "gold": "#ffd700",
}
#: matplotlib's "tab10" in its order: one colour per group (rounds, blocks) when there are few
TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: viridis at 0, 1/4, 1/2, 3/4 and 1: dark purple to yellow, even in lightness
VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
TICK, LABEL, TITLE, LEGEND = 12, 13, 14, 11  # text sizes in pixels
DASHES = {"-": None, "--": (7.0, 3.0), ":": (1.5, 2.5)}  # (on, off) in pixels


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at `size` pixels of the final image (the font matplotlib ships, found without
    importing matplotlib), or Pillow's own default font when that file is not there."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size * SCALE)
    return ImageFont.load_default(size * SCALE)


@cache  # a picture asks for its few colours thousands of times
def rgb(color: str, alpha: float = 1.0) -> tuple[int, int, int]:
    """A colour name or "#rrggbb", blended over white with `alpha` (faint lines)."""
    h = COLORS.get(color, color).lstrip("#")
    c = [int(h[i : i + 2], 16) for i in (0, 2, 4)]
    return tuple(round(alpha * v + (1 - alpha) * 255) for v in c)  # type: ignore[return-value]


def ramp(t: float, stops: Sequence[str] = VIRIDIS) -> str:
    """The colour at `t` in [0, 1] (clipped) of a ramp through evenly spaced `stops`, linearly
    interpolated between the two around it."""
    t = min(1.0, max(0.0, float(t))) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    a, b = rgb(stops[i]), rgb(stops[i + 1])
    f = t - i
    return "#" + "".join(f"{round(x + f * (y - x)):02x}" for x, y in zip(a, b))


# ------------------------------------------------------------------------------ ticks
def linear_ticks(lo: float, hi: float, target: int = 6, integer: bool = False) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) inside [lo, hi], about `target` of them;
    `integer` keeps steps of at least 1 (epochs)."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    n = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [first + i * step for i in range(max(n, 0))]


def linear_label(value: float, ticks: Sequence[float]) -> str:
    """A tick label with as many decimals as the tick step needs."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step < 1 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1  # 0.25: two decimals
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


SUPERSCRIPT = str.maketrans(
    "-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


def log_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Decades inside [lo, hi] (every k-th when there are many); with less than one decade in
    view, 1, 2 and 5 times the decades."""
    a, b = math.log10(lo), math.log10(hi)
    decades = list(range(math.ceil(a - 1e-9), math.floor(b + 1e-9) + 1))
    if len(decades) < 2:
        fine = [m * 10.0**k for k in range(math.floor(a), math.ceil(b) + 1) for m in (1, 2, 5)]
        return [v for v in fine if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]
    every = max(1, math.ceil(len(decades) / target))
    return [10.0**k for k in decades if k % every == 0]


def log_label(value: float) -> str:
    """10⁻³ for decades, 2×10⁻³ between them."""
    k = math.floor(math.log10(value) + 1e-9)
    m = round(value / 10.0**k)
    power = "10" + str(k).translate(SUPERSCRIPT)
    return power if m == 1 else f"{m}\u00d7{power}"


class Axis:
    """One coordinate: data limits, linear or log10, mapped onto a pixel range.

    The limits hold `values` with `margin` (a fraction of their span) on each side; `invert`
    puts the largest value at the left (bottom); `label` writes the tick labels from the tick
    values (the beta axis: 1 - beta on the axis, beta in the labels); `ticks` fixes the ticks and
    their text (`Axis.categories`); `target` is about how many ticks to show."""

    def __init__(
        self,
        values: Sequence[float],
        log: bool = False,
        integer: bool = False,
        margin: float = 0.05,
        *,
        invert: bool = False,
        label: Callable[[float], str] | None = None,
        ticks: Sequence[tuple[float, str]] | None = None,
        target: int = 6,
    ) -> None:
        self.log, self.integer, self.invert, self.target = log, integer, invert, target
        self.label = label
        self.fixed = None if ticks is None else list(ticks)
        v = np.asarray([x for x in values if x is not None], dtype=float)
        v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
        if log:
            v = np.log10(v)
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
        if hi - lo < 1e-12:  # a constant: a decade (log) or a unit around it
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * margin
        self.lo, self.hi = lo - pad, hi + pad
        self.p0, self.p1 = 0.0, 1.0

    @classmethod
    def categories(cls, names: Sequence[str]) -> Axis:
        """Named categories at 0, 1, ..., n - 1 (ticks labelled with the names), half a step of
        room at each end."""
        return cls([-0.5, len(names) - 0.5], margin=0.0, ticks=list(enumerate(names)))

    def to(self, p0: float, p1: float) -> Axis:
        """Map the limits onto pixels p0 (low end) to p1 (high end); swapped when inverted."""
        self.p0, self.p1 = (p1, p0) if self.invert else (p0, p1)
        return self

    def pixels(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Pixel positions of the values (nan where a value is missing or not drawable)."""
        v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self) -> list[tuple[float, str]]:
        """(value, text) of each tick."""
        if self.fixed is not None:
            return self.fixed
        if self.log:
            values = log_ticks(10**self.lo, 10**self.hi, self.target)
            return [(v, self.label(v) if self.label else log_label(v)) for v in values]
        values = linear_ticks(self.lo, self.hi, self.target, integer=self.integer)
        return [(v, self.label(v) if self.label else linear_label(v, values)) for v in values]


# ------------------------------------------------------------------------------ drawing
class Canvas:
    """A white picture `width` x `height` pixels; panels and text draw onto it."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.image = Image.new("RGB", (width * SCALE, height * SCALE), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        size: int = 11,
        color: str = "text",
        anchor: str = "la",
        rotate: bool = False,
    ) -> None:
        """Text at `xy` (pixels); `anchor` as Pillow's (l/m/r, a/m/s/d); `rotate`: upwards."""
        f, fill = font(size), rgb(color)
        x, y = xy[0] * SCALE, xy[1] * SCALE
        if not rotate:
            self.draw.text((x, y), text, fill=fill, font=f, anchor=anchor)
            return
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=f, anchor="lt")
        label = Image.new("L", (right - left + 2, bottom - top + 2), 0)
        ImageDraw.Draw(label).text((1 - left, 1 - top), text, fill=255, font=f, anchor="lt")
        label = label.rotate(90, expand=True)
        w, h = label.size
        self.image.paste(
            Image.new("RGB", label.size, fill), (int(x - w / 2), int(y - h / 2)), label
        )

    def save(self, path: str | Path) -> None:
        """The picture at its final size as PNG (the reduction antialiases it)."""
        self.image.reduce(SCALE).save(path, format="PNG", compress_level=3)


class Key(NamedTuple):
    """One entry of a legend: a line sample in `style` ("-", "--", ":"; None: no line) `width`
    pixels wide and/or a `marker` of `size` (its radius in pixels) with an `edge` colour."""

    text: str
    color: str
    style: str | None = "-"
    marker: str | None = None
    alpha: float = 1.0
    edge: str | None = None
    size: float = 3.2
    width: float = 1.5


class Panel:
    """A plot area at `box` = (left, top, right, bottom) pixels with an x axis and one or two y
    axes (`y2` on the right). Nothing is clipped: the axes' limits hold every value drawn (Axis
    takes them from the data), and reference lines outside them are skipped."""

    def __init__(
        self, canvas: Canvas, box: tuple[float, float, float, float], x: Axis, y: Axis
    ) -> None:
        self.canvas, self.box = canvas, box
        left, top, right, bottom = box
        self.x, self.y = x.to(left, right), y.to(bottom, top)
        self.y2: Axis | None = None
        self.legend_items: list[Key] = []
        self._points: list[np.ndarray] = []  # where data were drawn (pixels): legend placement

    def right_axis(self, y2: Axis) -> None:
        self.y2 = y2.to(self.box[3], self.box[1])

    # data
    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        color: str,
        width: float = 1.5,
        style: str = "-",
        marker: str | None = None,
        alpha: float = 1.0,
        label: str | None = None,
        right: bool = False,
    ) -> None:
        """A polyline broken where a value is missing; `marker` "o" (circle) or "s" (square)
        at every point; `style` "-", "--" or ":"."""
        axis = self.y2 if right and self.y2 is not None else self.y
        px, py = self.x.pixels(xs), axis.pixels(ys)
        fill = rgb(color, alpha)
        ok = np.isfinite(px) & np.isfinite(py)
        self._points.append(along(px, py))
        run: list[tuple[float, float]] = []
        for good, a, b in zip(ok, px, py):
            if good:
                run.append((a * SCALE, b * SCALE))
            else:
                self._polyline(run, fill, width, style)
                run = []
        self._polyline(run, fill, width, style)
        if marker:
            for a, b in zip(px[ok], py[ok]):
                self._marker(a, b, marker, fill)
        if label:
            self.legend_items.append(Key(label, color, style, marker, alpha, width=max(1.5, width)))

    def scatter(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        color: str,
        marker: str = "o",
        size: float = 3.2,
        alpha: float = 1.0,
        edge: str | None = None,
        label: str | None = None,
    ) -> None:
        """A marker at each point with both values finite: "o" (circle), "s" (square), "x"
        (cross) or "*" (star); `size` is the marker's radius in pixels, `edge` an outline."""
        px, py = self.x.pixels(xs), self.y.pixels(ys)
        ok = np.isfinite(px) & np.isfinite(py)
        self._points.append(np.stack([px[ok], py[ok]], axis=1))
        fill, outline = rgb(color, alpha), None if edge is None else rgb(edge)
        for a, b in zip(px[ok], py[ok]):
            self._marker(a, b, marker, fill, size, outline)
        if label:
            self.legend_items.append(Key(label, color, None, marker, alpha, edge, size))

    def _polyline(
        self, points: list[tuple[float, float]], fill: tuple, width: float, style: str
    ) -> None:
        if len(points) < 2:
            return
        w = max(1, round(width * SCALE))
        dash = DASHES.get(style)
        if dash is None:
            self.draw.line(points, fill=fill, width=w, joint="curve")
        else:
            for seg in dashed(points, dash[0] * SCALE, dash[1] * SCALE):
                self.draw.line(seg, fill=fill, width=w)

    def _marker(
        self,
        x: float,
        y: float,
        kind: str,
        fill: tuple,
        size: float = 3.2,
        edge: tuple | None = None,
    ) -> None:
        r, s = size * SCALE, SCALE
        x, y = x * SCALE, y * SCALE
        if kind == "s":
            self.draw.rectangle((x - r, y - r, x + r, y + r), fill=fill, outline=edge, width=s)
        elif kind == "x":
            for d in (1, -1):
                cross = ((x - r, y - d * r), (x + r, y + d * r))
                self.draw.line(cross, fill=fill, width=round(1.5 * s))
        elif kind == "*":
            self.draw.polygon(star(x, y, r), fill=fill, outline=edge, width=s)
        else:
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=edge, width=s)

    def hline(self, y: float, color: str, style: str = ":", right: bool = False) -> None:
        axis = self.y2 if right and self.y2 is not None else self.y
        py = float(axis.pixels([y])[0])
        if math.isfinite(py) and self.box[1] <= py <= self.box[3]:
            pts = [(self.box[0] * SCALE, py * SCALE), (self.box[2] * SCALE, py * SCALE)]
            self._polyline(pts, rgb(color), 0.8, style)

    def vline(
        self,
        x: float,
        color: str,
        style: str = ":",
        label: str | None = None,
        width: float = 1.0,
        alpha: float = 1.0,
    ) -> None:
        """A vertical line across the panel at x (none outside it), named in the legend when
        `label` is given."""
        px = float(self.x.pixels([x])[0])
        if math.isfinite(px) and self.box[0] - 0.5 <= px <= self.box[2] + 0.5:
            pts = [(px * SCALE, self.box[1] * SCALE), (px * SCALE, self.box[3] * SCALE)]
            self._polyline(pts, rgb(color, alpha), width, style)
        if label:
            self.legend_items.append(Key(label, color, style, None, alpha))

    def vspan(self, x0: float, x1: float, color: str, alpha: float = 0.12) -> None:
        """The panel's height between x0 and x1 shaded: `color` laid over what is drawn there
        with opacity `alpha` (overlapping spans darken; draw them before the data)."""
        px = sorted(float(v) for v in self.x.pixels([x0, x1]))
        if not all(math.isfinite(v) for v in px):
            return
        s, (left, top, right, bottom) = SCALE, self.box
        box = (
            round(max(px[0], left) * s),
            round(top * s),
            round(min(px[1], right) * s),
            round(bottom * s),
        )
        if box[2] <= box[0]:
            return
        image = self.canvas.image
        under = image.crop(box)
        image.paste(Image.blend(under, Image.new("RGB", under.size, rgb(color)), alpha), box)

    def note(self, text: str, size: int = LABEL) -> None:
        """Text in the middle of the panel ("no finished trials")."""
        left, top, right, bottom = self.box
        self.canvas.text(((left + right) / 2, (top + bottom) / 2), text, size=size, anchor="mm")

    def ramp_bar(
        self, lo: float, hi: float, color: Callable[[float], str], label: str = "", gap: float = 12
    ) -> None:
        """A colour bar right of the panel: `color(v)` for v from lo (bottom) to hi (top), with
        integer ticks and a `label` (what the colours number: trial numbers)."""
        left, top, right, bottom = self.box
        x0, x1 = right + gap, right + gap + 14
        s = SCALE
        for row in range(round(top * s), round(bottom * s)):
            v = lo + (bottom * s - row) / ((bottom - top) * s) * (hi - lo)
            self.draw.line(((x0 * s, row), (x1 * s, row)), fill=rgb(color(v)))
        self.draw.rectangle((x0 * s, top * s, x1 * s, bottom * s), outline=rgb("black"), width=s)
        axis = Axis([lo, hi], integer=True, margin=0.0).to(bottom, top)
        widest = 0.0
        for value, text in axis.ticks():
            py = float(axis.pixels([value])[0])
            self._tick_line(x1, py, x1 + 4, py)
            self.canvas.text((x1 + 7, py), text, size=TICK, anchor="lm")
            widest = max(widest, self.draw.textlength(text, font=font(TICK)) / s)
        if label:
            middle = (top + bottom) / 2
            self.canvas.text(
                (x1 + 7 + widest + 4 + LABEL / 2 + 4, middle), label, size=LABEL, rotate=True
            )

    @property
    def draw(self) -> ImageDraw.ImageDraw:
        return self.canvas.draw

    # frame, ticks, labels
    def frame(
        self,
        title: str = "",
        xlabel: str = "",
        ylabel: str = "",
        y2label: str = "",
        y2color: str = "text",
        grid: bool = False,
    ) -> None:
        """Axes, ticks with labels, grid lines under nothing (drawn first when `grid`), title."""
        c, (left, top, right, bottom) = self.canvas, self.box
        tick = 4
        for value, text in self.x.ticks():
            px = float(self.x.pixels([value])[0])
            if left - 0.5 <= px <= right + 0.5:
                self._tick_line(px, bottom, px, bottom + tick)
                c.text((px, bottom + tick + 2), text, size=TICK, anchor="ma")
        widths = {"left": 0.0, "right": 0.0}  # of the widest tick label on each side
        for axis, side, color in ((self.y, "left", "text"), (self.y2, "right", y2color)):
            if axis is None:
                continue
            for value, text in axis.ticks():
                py = float(axis.pixels([value])[0])
                if not top - 0.5 <= py <= bottom + 0.5:
                    continue
                width = c.draw.textlength(text, font=font(TICK)) / SCALE
                widths[side] = max(widths[side], width)
                if side == "left":
                    self._tick_line(left - tick, py, left, py)
                    c.text((left - tick - 3, py), text, size=TICK, anchor="rm")
                else:
                    self._tick_line(right, py, right + tick, py)
                    c.text((right + tick + 3, py), text, size=TICK, color=color, anchor="lm")
        s = SCALE
        self.draw.rectangle(
            (left * s, top * s, right * s, bottom * s), outline=rgb("black"), width=s
        )
        if title:
            c.text(((left + right) / 2, top - 7), title, size=TITLE, anchor="md")
        if xlabel:
            c.text(((left + right) / 2, bottom + tick + TICK + 8), xlabel, size=LABEL, anchor="ma")
        middle, away = (top + bottom) / 2, tick + LABEL / 2 + 8  # a label's centre off the ticks
        if ylabel:
            c.text((left - widths["left"] - away, middle), ylabel, size=LABEL, rotate=True)
        if y2label:
            x = right + widths["right"] + away
            c.text((x, middle), y2label, size=LABEL, color=y2color, rotate=True)

    def grid(self) -> None:
        """Light grid lines at the ticks (call before drawing data)."""
        left, top, right, bottom = self.box
        s, fill = SCALE, rgb("grid")
        for value, _ in self.x.ticks():
            px = float(self.x.pixels([value])[0])
            if left < px < right:
                self.draw.line(((px * s, top * s), (px * s, bottom * s)), fill=fill, width=s)
        for value, _ in self.y.ticks():
            py = float(self.y.pixels([value])[0])
            if top < py < bottom:
                self.draw.line(((left * s, py * s), (right * s, py * s)), fill=fill, width=s)

    def _tick_line(self, x0: float, y0: float, x1: float, y1: float) -> None:
        s = SCALE
        self.draw.line(((x0 * s, y0 * s), (x1 * s, y1 * s)), fill=rgb("black"), width=s)

    def legend(self) -> None:
        """The labelled lines in a box, in the corner of the panel with the fewest data."""
        if not self.legend_items:
            return
        c, (left, top, right, bottom) = self.canvas, self.box
        f = font(LEGEND)
        width = max(c.draw.textlength(k.text, font=f) for k in self.legend_items) / SCALE + 38
        row = LEGEND + 6
        height = row * len(self.legend_items) + 6
        pts = np.concatenate(self._points) if self._points else np.zeros((0, 2))
        corners = [
            (right - width - 6, top + 6),
            (right - width - 6, bottom - height - 6),
            (left + 6, top + 6),
            (left + 6, bottom - height - 6),
        ]

        def crowd(corner: tuple[float, float], near: float = 10.0) -> int:
            """Data points under the box or within `near` pixels of it."""
            x0, y0 = corner
            inside = (pts[:, 0] >= x0 - near) & (pts[:, 0] <= x0 + width + near)
            return int(
                (inside & (pts[:, 1] >= y0 - near) & (pts[:, 1] <= y0 + height + near)).sum()
            )

        x0, y0 = min(corners, key=crowd)
        s = SCALE
        self.draw.rectangle(
            (x0 * s, y0 * s, (x0 + width) * s, (y0 + height) * s),
            fill=(255, 255, 255),
            outline=rgb("#cccccc"),
            width=s,
        )
        for i, k in enumerate(self.legend_items):
            y = y0 + 3 + row * (i + 0.5)
            if k.style is not None:
                pts2 = [((x0 + 6) * s, y * s), ((x0 + 26) * s, y * s)]
                self._polyline(pts2, rgb(k.color, k.alpha), k.width, k.style)
            if k.marker:
                edge = None if k.edge is None else rgb(k.edge)
                size = min(k.size, row / 2 - 1)  # a big star fits its row
                self._marker(x0 + 16, y, k.marker, rgb(k.color, k.alpha), size, edge)
            c.text((x0 + 32, y), k.text, size=LEGEND, anchor="lm")


def star(x: float, y: float, r: float) -> list[tuple[float, float]]:
    """The ten corners of a five-pointed star of outer radius r around (x, y), a point up."""
    inner = r * 0.382  # a regular star: the inner corners lie on the outer ones' chords
    return [
        (x + d * math.cos(a), y - d * math.sin(a))
        for i in range(10)
        for a, d in [(math.pi / 2 + i * math.pi / 5, r if i % 2 == 0 else inner)]
    ]


def along(px: np.ndarray, py: np.ndarray, per_segment: int = 8) -> np.ndarray:
    """Points spread along a polyline's segments (pixels), the drawn ones only: where a legend
    would cover the line, not only its vertices."""
    pts = np.stack([px, py], axis=1)
    if len(pts) < 2:
        return pts[np.isfinite(pts).all(axis=1)]
    t = np.linspace(0.0, 1.0, per_segment)[:, None, None]
    with np.errstate(invalid="ignore"):  # a missing value: nan, dropped below
        dense = (pts[:-1] + t * (pts[1:] - pts[:-1])).reshape(-1, 2)
    return dense[np.isfinite(dense).all(axis=1)]


def dashed(
    points: list[tuple[float, float]], on: float, off: float
) -> list[list[tuple[float, float]]]:
    """The "on" pieces of a dashed polyline (lengths in the points' units)."""
    pieces: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = [points[0]]
    drawing, left = True, on
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while length - pos > left:
            pos += left
            t = pos / length
            p = (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
            if drawing:
                current.append(p)
                pieces.append(current)
            current = [p]
            drawing, left = not drawing, off if drawing else on
        left -= length - pos
        if drawing:
            current.append((x1, y1))
        else:
            current = [(x1, y1)]
    if drawing and len(current) > 1:
        pieces.append(current)
    return pieces
