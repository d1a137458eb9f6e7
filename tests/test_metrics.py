import math

import numpy as np
import pytest
import torch

from nexnet.evaluation.metrics import authors_protocol_dice, bootstrap_ci, case_metrics, hd95, mean_metrics, pooled


def masks_from(rows):
    return np.array([[c == "#" for c in r] for r in rows])


def test_exact_values_on_hand_made_masks():
    pred = masks_from(["##..", "##..", "....", "...."])  # 4 px
    gt = masks_from([".##.", ".##.", "....", "...."])  # 4 px, overlap 2
    m = case_metrics(pred, gt)
    assert m["dice"] == 0.5  # 2*2 / (4+4)
    assert m["iou"] == pytest.approx(1 / 3)  # 2 / 6
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["specificity"] == pytest.approx(10 / 12)  # tn 10, fp 2
    assert m["accuracy"] == pytest.approx(12 / 16)
    # Boundaries equal the masks here; every pixel is 0 or 1 from the other's boundary.
    assert m["hd95"] == pytest.approx(1.0)


def test_hd95_of_shifted_squares():
    gt = np.zeros((20, 20), bool)
    gt[5:10, 5:10] = True
    pred = np.roll(gt, 3, axis=1)
    assert hd95(pred, gt) == pytest.approx(3.0)


def test_empty_mask_rules():
    empty, full = np.zeros((4, 4), bool), np.ones((4, 4), bool)
    both = case_metrics(empty, empty)
    assert both["dice"] == 1 and both["iou"] == 1 and both["hd95"] is None
    assert both["precision"] == 1 and both["recall"] == 1 and both["accuracy"] == 1
    for pred, gt in ((empty, full), (full, empty)):
        one = case_metrics(pred, gt)
        assert one["dice"] == 0 and one["iou"] == 0 and one["hd95"] is None
    mean = mean_metrics([both, case_metrics(full, full)])
    assert mean["dice"] == 1 and mean["hd95"] == 0.0  # the undefined HD95 is left out


def test_pooled_differs_from_mean():
    a = (np.ones((2, 2), bool), np.ones((2, 2), bool))  # Dice 1, 4 px
    big_gt = np.ones((10, 10), bool)
    b = (np.zeros((10, 10), bool), big_gt)  # Dice 0, 100 px missed
    from nexnet.evaluation.metrics import confusion

    p = pooled([confusion(*a), confusion(*b)])
    assert p["dice"] == pytest.approx(8 / 108) and p["iou"] == pytest.approx(4 / 104)
    assert mean_metrics([case_metrics(*a), case_metrics(*b)])["dice"] == 0.5


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    values = np.random.default_rng(0).uniform(0.5, 1.0, 200)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi and hi - lo < 0.1
    assert bootstrap_ci(values) == (lo, hi)
    assert math.isnan(bootstrap_ci([])[0])


def test_authors_protocol_picks_the_threshold_on_the_labels():
    gt = np.zeros((2, 4, 4), bool)
    gt[:, :2] = True
    probs = np.where(gt, 0.3, 0.1)  # a fixed 0.5 threshold finds nothing
    honest = case_metrics(probs[0] > 0.5, gt[0])["dice"]
    theirs = authors_protocol_dice(probs, gt, batch_size=2)
    assert honest == 0 and theirs["dice"] == 1.0 and theirs["thresholds"] == [0.1]  # the grid's own 0.1, rounded


# --- agreement with MONAI ----------------------------------------------------------------------


def random_masks(seed, n=6, size=48):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = np.zeros((size, size), bool)
        for _ in range(3):
            y, x, r = rng.integers(5, size - 5, 2).tolist() + [int(rng.integers(3, 12))]
            yy, xx = np.ogrid[:size, :size]
            m |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        m ^= rng.random((size, size)) < 0.02  # speckle
        out.append(m)
    return np.stack(out)


def test_agrees_with_monai_dice_iou_and_hd95():
    monai_metrics = pytest.importorskip("monai.metrics")
    pred, gt = random_masks(1), random_masks(2)
    p = torch.from_numpy(pred)[:, None].float()
    g = torch.from_numpy(gt)[:, None].float()
    dice = monai_metrics.DiceMetric(include_background=True, reduction="none")(p, g)[:, 0]
    iou = monai_metrics.MeanIoU(include_background=True, reduction="none")(p, g)[:, 0]
    hd = monai_metrics.HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")(p, g)[:, 0]
    for i in range(len(pred)):
        ours = case_metrics(pred[i], gt[i])
        assert ours["dice"] == pytest.approx(dice[i].item(), abs=1e-6)
        assert ours["iou"] == pytest.approx(iou[i].item(), abs=1e-6)
        assert ours["hd95"] == pytest.approx(hd[i].item(), abs=1e-4)


def test_batch_dice_iou_on_tensors_follows_the_per_case_rules():
    from nexnet.evaluation.metrics import batch_dice_iou, case_metrics

    gt = np.zeros((4, 6, 6), bool)
    pred = np.zeros((4, 6, 6), bool)
    gt[0, :3], pred[0, :2] = True, True  # overlap: Dice 2*12/(12+18) = 0.8, IoU 12/18
    gt[1, :3] = True  # prediction empty: 0 and 0
    pred[2, :3] = True  # ground truth empty: 0 and 0
    # case 3: both empty: 1 and 1
    dice, iou = batch_dice_iou(torch.from_numpy(pred), torch.from_numpy(gt))
    assert dice.tolist() == pytest.approx([0.8, 0.0, 0.0, 1.0]) and iou.tolist() == pytest.approx([2 / 3, 0, 0, 1])
    expected = [case_metrics(p, g, with_hd95=False) for p, g in zip(pred, gt)]
    assert dice.tolist() == pytest.approx([m["dice"] for m in expected])
    assert iou.tolist() == pytest.approx([m["iou"] for m in expected])
