"""Charts: round ticks, whole-number epochs, fixed limits, and PNGs written atomically."""

import math

import numpy as np
import pytest
from PIL import Image

from nexnet.plots import GT_COLOUR, PRED_COLOUR, _x_ticks, image_grid, line_chart, nice_ticks, overlay


@pytest.mark.parametrize("lo, hi, integer, expected", [
    (0.0, 1.0, False, [0.0, 0.25, 0.5, 0.75, 1.0]),
    (0.513, 0.871, False, [0.5, 0.6, 0.7, 0.8, 0.9]),
    (1, 7, True, [0, 2, 4, 6, 8]),
    (1, 3, True, [1, 2, 3]),  # never a fractional epoch
    (5, 5, False, [4.5, 4.75, 5.0, 5.25, 5.5]),
])  # fmt: skip
def test_nice_ticks_are_round_and_cover_the_range(lo, hi, integer, expected):
    ticks = nice_ticks(lo, hi, 5, integer)
    assert ticks == expected and ticks[0] <= lo and ticks[-1] >= hi


@pytest.mark.parametrize("x, expected", [
    ([1, 2, 3, 4, 5, 6, 7], [1, 3, 5, 7]),  # whole epochs: ticks on points, from the first
    (list(range(1, 51)), [1, 11, 21, 31, 41]),
    ([4], [4]),
    ([0.1, 0.3, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]),
])  # fmt: skip
def test_x_ticks_fall_on_the_data(x, expected):
    assert _x_ticks(x) == expected


def test_line_chart_draws_every_panel_with_a_fixed_dice_axis(tmp_path):
    x = [1, 2, 3]
    line_chart(tmp_path / "c.png", x, [("loss", {"train": [1.2, 0.8, math.nan]}),
                                        ("dice", {"val": [0.2, 0.5, 0.6]}, (0, 1))], columns=2)  # fmt: skip
    im = np.asarray(Image.open(tmp_path / "c.png"))
    assert im.shape == (300, 1040, 3)
    assert (im != 255).any(axis=2)[:, 520:].sum() > 0  # the second panel is drawn
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_overlay_draws_the_prediction_in_green_and_the_ground_truth_in_blue():
    image = np.zeros((16, 16, 3), np.uint8)
    pred, gt = np.zeros((16, 16), bool), np.zeros((16, 16), bool)
    pred[2:8, 2:8], gt[8:14, 8:14] = True, True
    out = overlay(image, pred, gt)
    assert tuple(out[2, 2]) == PRED_COLOUR and tuple(out[13, 13]) == GT_COLOUR
    assert tuple(out[5, 5]) == (0, 0, 0) and tuple(out[10, 10]) == (0, 0, 0)  # contours only: insides untouched
    assert image_grid([out, out], cols=2, cell=16).shape[1] >= 32
