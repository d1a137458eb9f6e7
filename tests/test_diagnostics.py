"""Training diagnostics: gradient norms before clipping, T-PEN input statistics, and the schedules."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nexnet.errors import NexnetError
from nexnet.models import TPEN, create_model
from nexnet.training.diagnostics import GradientNorms, TPENProbe, input_stats
from nexnet.training.run_config import TrainConfig
from nexnet.training.schedule import WarmupCosine, make_schedule


def test_gradient_norms_are_taken_before_clipping():
    w = nn.Parameter(torch.zeros(2))
    norms = GradientNorms(clip=1.0)
    for g in ([3.0, 4.0], [0.3, 0.4], [6.0, 8.0]):  # norms 5, 0.5, 10
        w.grad = torch.tensor(g)
        norms.clip_and_record([w])
        assert w.grad.norm().item() == pytest.approx(min(1.0, math.hypot(*g)), rel=1e-5)
    summary = norms.summary()
    assert summary["grad_norm_median"] == pytest.approx(5.0)
    assert summary["grad_norm_max"] == pytest.approx(10.0)
    assert summary["clipped_fraction"] == pytest.approx(2 / 3)


def test_no_clipping_leaves_gradients_and_counts_none():
    w = nn.Parameter(torch.zeros(2))
    w.grad = torch.tensor([30.0, 40.0])
    norms = GradientNorms(clip=None)
    norms.clip_and_record([w])
    assert w.grad.tolist() == [30.0, 40.0]
    assert norms.summary() == {"grad_norm_median": 50.0, "grad_norm_max": 50.0, "clipped_fraction": 0.0}
    assert all(math.isnan(v) for v in GradientNorms(0.5).summary().values())
    w.grad = torch.tensor([float("inf"), 0.0])  # an fp16 overflow, skipped by GradScaler: not counted
    norms.clip_and_record([w])
    assert norms.summary()["grad_norm_max"] == 50.0


def test_input_stats_percentile_and_clamped_fraction():
    x = torch.arange(1, 1001, dtype=torch.float32).reshape(1, 10, 10, 10)  # |x| = 1..1000
    p999, clamped = input_stats(-x, clip=900.0)
    assert p999 == pytest.approx(float(np.quantile(np.arange(1, 1001), 0.999)))
    assert clamped == pytest.approx(0.1)  # 901..1000
    assert input_stats(x, clip=None)[1] == 0.0


def test_tpen_probe_records_every_level_only_inside_the_block():
    model = create_model("nexnet_seg", widths=[4, 4, 8, 8, 8, 8], masa=False, form="paper", tpen_clip=0.5)
    probe = TPENProbe(model)
    assert len(probe.layers) == 6
    x = torch.rand(2, 3, 64, 64)
    model(x)
    assert probe.take() == {}
    with probe.recording():
        model(x)
    stats = probe.take()
    assert sorted(stats) == sorted([f"tpen{i}_p999" for i in range(1, 7)] + [f"tpen{i}_clamped" for i in range(1, 7)])
    assert all(v >= 0 for v in stats.values()) and stats["tpen1_clamped"] > 0  # post-ReLU inputs exceed 0.5
    assert not any(layer._forward_pre_hooks for layer in probe.layers)


def test_plain_neuron_reports_nothing_clamped():
    layer = TPEN(3, order=1, trainable=False, clip=0.1)
    probe = TPENProbe(nn.Sequential(layer))
    with probe.recording():
        layer(torch.full((1, 3, 2, 2), 5.0))
    assert probe.take() == {"tpen1_p999": 5.0, "tpen1_clamped": 0.0}


def test_training_logs_and_plots_the_diagnostics(tmp_path):
    from nexnet.synthetic import make_synthetic_dataset
    from nexnet.training.config import resolve
    from nexnet.training.trainer import train

    data = make_synthetic_dataset(tmp_path / "data", n=12, size_range=(40, 48))
    cfg = resolve(None, ["model.widths=[4,4,8,8,8,8]", "train.eval_batch_size=8"], model__name="nexnet_seg_s",
                  data__dataset="folder", data__data_root=str(data), data__split="seeded", data__image_size=32,
                  train__epochs=2, train__batch_size=4, train__device="cpu")  # fmt: skip
    train(cfg, tmp_path / "run", quiet=True)
    header, *rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    fields = header.split(",")
    for name in ["grad_norm_median", "grad_norm_max", "clipped_fraction", "tpen1_p999", "tpen6_clamped"]:
        assert name in fields
    rec = dict(zip(fields, rows[-1].split(",")))
    assert 0 < float(rec["grad_norm_median"]) <= float(rec["grad_norm_max"])
    assert 0.0 <= float(rec["clipped_fraction"]) <= 1.0 and float(rec["tpen1_p999"]) > 0
    assert Image.open(tmp_path / "run" / "curves.png").size == (2 * 520, 3 * 300)  # six panels, two columns


def test_cosine_schedule_warms_up_then_decays_over_progress():
    s = WarmupCosine(1.0, warmup_epochs=2, min_lr=0.0)
    assert [s.lr_for(0), s.lr_for(1)] == [0.5, 1.0]
    assert s.lr_for(2, progress=0.0) == 1.0
    assert s.lr_for(5, progress=0.5) == pytest.approx(0.5)
    assert s.lr_for(9, progress=1.0) == pytest.approx(0.0)
    assert s.lr_for(9, progress=3.0) == pytest.approx(0.0)  # past the budget: stays at min_lr


def test_unknown_schedule_is_named():
    with pytest.raises(NexnetError, match="train.schedule must be one of plateau, cosine"):
        make_schedule(TrainConfig(schedule="step"))


def test_training_follows_the_cosine_schedule_over_its_epochs(tmp_path):
    from nexnet.synthetic import make_synthetic_dataset
    from nexnet.training.config import resolve
    from nexnet.training.trainer import train

    data = make_synthetic_dataset(tmp_path / "data", n=12, size_range=(40, 48))
    sets = ["model.widths=[4,4,8,8,8,8]", "train.lr=0.01", "train.min_lr=0", "train.warmup_epochs=1"]
    cfg = resolve(None, sets, model__name="nexnet_seg_s", data__dataset="folder", data__data_root=str(data),
                  data__split="seeded", data__image_size=32, train__epochs=4, train__batch_size=4,
                  train__device="cpu")  # fmt: skip
    train(cfg, tmp_path / "run", quiet=True)
    header, *rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    lrs = [float(dict(zip(header.split(","), r.split(",")))["lr"]) for r in rows]
    expected = [0.01] + [0.005 * (1 + math.cos(math.pi * e / 4)) for e in (1, 2, 3)]  # warm-up, then cosine
    assert lrs == pytest.approx(expected)
