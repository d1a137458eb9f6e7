"""Pictures with Pillow alone: training curves, contour overlays and image grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from .io import write_with

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip
PRED_COLOUR = (0, 220, 0)  # prediction: green
GT_COLOUR = (0, 90, 255)  # ground truth: blue


def save_png(path: str | Path, arr_or_image: np.ndarray | Image.Image) -> None:
    """Write a PNG atomically."""
    im = arr_or_image if isinstance(arr_or_image, Image.Image) else Image.fromarray(arr_or_image)
    write_with(Path(path), lambda tmp: im.save(tmp, format="PNG"))


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) that cover
    ``[lo, hi]``; whole numbers only when ``integer``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:  # one value: a unit around it, not below 0 for a non-negative one
        lo, hi = (max(0.0, lo - 0.5) if lo >= 0 else lo - 0.5), hi + 0.5
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    first, last = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int(round((last - first) / step)) + 1)]


def _x_ticks(x: list[float]) -> list[float]:
    """Round ticks inside the data's x range; for whole numbers (epochs), whole ticks on the points."""
    if not x:
        return [0.0, 1.0]
    lo, hi = min(x), max(x)
    if not all(float(v).is_integer() for v in x):
        return [t for t in nice_ticks(lo, hi, 6) if lo <= t <= hi] or [lo]
    first, second = nice_ticks(lo, hi, 6, integer=True)[:2] if hi > lo else (0, 1)
    return [float(t) for t in range(int(lo), int(hi) + 1, int(second - first))]


def _tick_label(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"


def _legend_rows(series: int) -> int:
    """Up to four legend entries in one column; more go into columns of three."""
    return series if series <= 4 else 3


def line_chart(path: str | Path, x: list[float], panels: list[tuple],
               x_label: str = "", panel_size: tuple[int, int] = (520, 300),
               columns: int | None = None) -> None:  # fmt: skip
    """Line charts in a grid of ``columns`` (default: one row), one panel per ``(title, {series: y values})``
    or ``(title, {series: y values}, (y_min, y_max))``; ticks at round values, whole ones for whole x."""
    w, h = panel_size
    columns = columns or len(panels)
    rows = math.ceil(len(panels) / columns)
    im = Image.new("RGB", (w * columns, h * rows), "white")
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    left, right, bottom = 56, 12, 36
    top = 22 + 12 * max(_legend_rows(len(panel[1])) for panel in panels)  # the legend sits above the plot
    x_ticks = _x_ticks(x)
    xmin, xmax = (min(x), max(x)) if x and max(x) > min(x) else (x_ticks[0] - 1, x_ticks[0] + 1)
    for p, panel in enumerate(panels):
        title, series = panel[0], panel[1]
        ox, oy = (p % columns) * w, (p // columns) * h
        x0, x1, y0, y1 = ox + left, ox + w - right, oy + top, oy + h - bottom
        draw.rectangle([x0, y0, x1, y1], outline=(90, 90, 90))
        draw.text((ox + left, oy + 8), title, fill="black", font=font)
        finite = [v for ys in series.values() for v in ys if math.isfinite(v)]
        limits = panel[2] if len(panel) > 2 else None  # e.g. (0, 1) for a Dice panel
        y_ticks = nice_ticks(*(limits or ((min(finite), max(finite)) if finite else (0.0, 1.0))))
        lo, hi = y_ticks[0], y_ticks[-1]
        for yv in y_ticks:
            yy = y1 - (y1 - y0) * (yv - lo) / (hi - lo)
            draw.line([x0 - 4, yy, x0, yy], fill=(90, 90, 90))
            draw.text((ox + 4, yy - 6), _tick_label(yv), fill="black", font=font)
        for xv in x_ticks:
            xx = x0 + (x1 - x0) * (xv - xmin) / (xmax - xmin)
            draw.line([xx, y1, xx, y1 + 4], fill=(90, 90, 90))
            draw.text((xx - 8, y1 + 8), _tick_label(xv), fill="black", font=font)
        draw.text(((x0 + x1) // 2 - 15, oy + h - 14), x_label, fill="black", font=font)
        for k, (name, ys) in enumerate(series.items()):
            colour = COLOURS[k % len(COLOURS)]
            pts = [
                (x0 + (x1 - x0) * (xv - xmin) / (xmax - xmin), y1 - (y1 - y0) * (yv - lo) / (hi - lo))
                for xv, yv in zip(x, ys)
                if math.isfinite(yv)
            ]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for px, py in pts:
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
            col, row = divmod(k, _legend_rows(len(series)))
            col_width = 6 * max(len(n) for n in series) + 24  # the default font is about 6 px per character
            draw.text((ox + left + 160 + col_width * col, oy + 8 + 12 * row), f"- {name}", fill=colour, font=font)
    save_png(path, im)


def contour(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boundary pixels of a binary mask, ``thickness`` px wide."""
    mask = mask.astype(bool)
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    return ndimage.binary_dilation(edge, iterations=thickness - 1) if thickness > 1 else edge


def overlay(image: np.ndarray, pred: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
    """The image with the prediction's contour in green and, if given, the ground truth's in blue."""
    out = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 250))
    if gt is not None:
        out[contour(gt, thickness)] = GT_COLOUR
    out[contour(pred, thickness)] = PRED_COLOUR
    return out


def image_grid(
    images: list[np.ndarray], cols: int = 4, cell: int = 192, captions: list[str] | None = None
) -> np.ndarray:
    """Images scaled to ``cell`` px wide in a grid, with optional captions."""
    rows = math.ceil(len(images) / cols)
    cap_h = 14 if captions else 0
    canvas = Image.new("RGB", (cols * cell, rows * (cell + cap_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, arr in enumerate(images):
        im = Image.fromarray(arr)
        im.thumbnail((cell, cell))
        x, y = (i % cols) * cell, (i // cols) * (cell + cap_h)
        canvas.paste(im, (x, y + cap_h))
        if captions:
            draw.text((x + 2, y + 1), captions[i][:30], fill="black")
    return np.asarray(canvas)


def _axes(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], lo: float, hi: float, label: str) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(90, 90, 90))
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = y1 - (y1 - y0) * i / 4
        draw.line([x0 - 4, y, x0, y], fill=(90, 90, 90))
        draw.text((4, y - 6), f"{v:.2f}", fill="black")
    draw.text((4, 4), label, fill="black")


def bar_chart(path: str | Path, groups: list[str], series: dict[str, list[float | None]], y_label: str) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series (None: no bar)."""
    values = [v for vs in series.values() for v in vs if v is not None]
    lo, hi = 0.0, max(values + [1.0])
    w, h = max(480, 110 * len(groups) + 120), 340
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    box = (60, 30, w - 150, h - 60)
    _axes(draw, box, lo, hi, y_label)
    gw = (box[2] - box[0]) / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    for g, name in enumerate(groups):
        gx = box[0] + g * gw + gw * 0.1
        draw.text((gx, box[3] + 8), name[:16], fill="black")
        for k, (_, vs) in enumerate(series.items()):
            v = vs[g]
            if v is None:
                continue
            top = box[3] - (box[3] - box[1]) * (v - lo) / (hi - lo)
            draw.rectangle([gx + k * bw, top, gx + (k + 1) * bw - 2, box[3]], fill=COLOURS[k % len(COLOURS)])
    for k, name in enumerate(series):
        draw.text((w - 140, 40 + 14 * k), f"# {name}", fill=COLOURS[k % len(COLOURS)])
    save_png(path, im)


def scatter_chart(path: str | Path, points: list[tuple[float, float, str, str]], x_label: str, y_label: str) -> None:
    """Points ``(x, y, label, group)``; one colour per group, each point labelled."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    (xlo, *_, xhi), (ylo, *_, yhi) = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    w, h = 640, 400
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    box = (60, 30, w - 150, h - 50)
    _axes(draw, box, ylo, yhi, y_label)
    for i in range(5):
        v = xlo + (xhi - xlo) * i / 4
        x = box[0] + (box[2] - box[0]) * i / 4
        draw.text((x - 10, box[3] + 6), f"{v:.3g}", fill="black")
    draw.text(((box[0] + box[2]) // 2 - 40, h - 18), x_label, fill="black")
    groups = sorted({p[3] for p in points})
    for x, y, label, group in points:
        colour = COLOURS[groups.index(group) % len(COLOURS)]
        px = box[0] + (box[2] - box[0]) * (x - xlo) / (xhi - xlo)
        py = box[3] - (box[3] - box[1]) * (y - ylo) / (yhi - ylo)
        draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
        draw.text((px + 6, py - 6), label, fill=colour)
    for k, g in enumerate(groups):
        draw.text((w - 140, 40 + 14 * k), f"o {g}", fill=COLOURS[k % len(COLOURS)])
    save_png(path, im)


def frontier_chart(path: str | Path, lines: dict[str, list[tuple[float, float, str]]],
                   faint: list[tuple[float, float, str]], x_label: str, y_label: str) -> None:  # fmt: skip
    """Accuracy against time on a log x axis: per family a line through ``(x, y, label)`` (each
    point labelled, e.g. with its chosen width) and faint dots ``(x, y, family)`` for every run."""
    xs = [p[0] for p in faint] + [p[0] for pts in lines.values() for p in pts]
    ys = [p[1] for p in faint] + [p[1] for pts in lines.values() for p in pts]
    if not xs:
        return
    lx_lo, lx_hi = math.log10(min(xs)), math.log10(max(xs))
    pad = max(0.1, (lx_hi - lx_lo) * 0.08)
    lx_lo, lx_hi = lx_lo - pad, lx_hi + pad
    y_ticks = nice_ticks(min(ys), max(ys))
    ylo, yhi = y_ticks[0], y_ticks[-1]
    w, h = 680, 420
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    box = (60, 30, w - 170, h - 50)

    def at(x: float, y: float) -> tuple[float, float]:
        return (box[0] + (box[2] - box[0]) * (math.log10(x) - lx_lo) / (lx_hi - lx_lo),
                box[3] - (box[3] - box[1]) * (y - ylo) / (yhi - ylo))  # fmt: skip

    _axes(draw, box, ylo, yhi, y_label)
    for x in sorted(set(xs)):
        px = at(x, ylo)[0]
        draw.line([px, box[3], px, box[3] + 4], fill=(90, 90, 90))
        draw.text((px - 8, box[3] + 6), _tick_label(x), fill="black")
    draw.text(((box[0] + box[2]) // 2 - 60, h - 18), x_label, fill="black")
    families = list(lines) + sorted({f for *_, f in faint} - set(lines))
    for x, y, family in faint:
        r, g, b = COLOURS[families.index(family) % len(COLOURS)]
        px, py = at(x, y)
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(r + (255 - r) * 3 // 5, g + (255 - g) * 3 // 5,
                                                              b + (255 - b) * 3 // 5))  # fmt: skip
    for k, (family, pts) in enumerate(lines.items()):
        colour = COLOURS[k % len(COLOURS)]
        xy = [at(x, y) for x, y, _ in sorted(pts)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for (px, py), (*_, label) in zip(xy, sorted(pts)):
            draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
            draw.text((px + 6, py - 12 + 14 * k), label, fill=colour)
        draw.text((w - 160, 40 + 14 * k), f"- {family} (val-chosen width)", fill=colour)
    draw.text((w - 160, 40 + 14 * len(lines)), ". each width and seed", fill=(150, 150, 150))
    save_png(path, im)
