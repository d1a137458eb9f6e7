"""The moving average of the weights: its formula, what a run validates and saves, and resume."""

import pytest
import torch
from safetensors.torch import load_file
from tiny import log_rows, tiny_cfg
from torch import nn

from nexnet.errors import NexnetError
from nexnet.training import train
from nexnet.training.ema import WeightAverage


def test_average_follows_the_formula_for_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.5)
    expected = {k: v.clone() for k, v in start.items()}
    for n in range(3):
        model.train()(torch.randn(8, 3))  # moves the BatchNorm statistics
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update()
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.18..., 0.25: the ramp, below the final decay
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone()
    for k, v in average.module.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-6, atol=1e-6)
    assert average.module.state_dict()["1.num_batches_tracked"] == 3  # integers are copied
    assert not any(p.requires_grad for p in average.module.parameters())
    assert average.current_decay() == pytest.approx(4 / 13)  # still ramping after 3 updates
    average.updates = 100
    assert average.current_decay() == 0.5


def test_a_run_validates_and_saves_the_average_and_resumes_it_exactly(data, tmp_path):
    ema = ["train.ema_decay=0.9"]
    one = tmp_path / "one"
    train(tiny_cfg(data, epochs=1, extra=ema), one, quiet=True)  # epoch 1 is the best so far
    best = load_file(one / "best" / "model.safetensors")
    last = load_file(one / "last" / "model.safetensors")
    average = load_file(one / "last" / "state.safetensors")
    assert all(torch.equal(best[k], average[f"extra.ema.weights.{k}"]) for k in best)  # best/: the average
    assert not all(torch.equal(best[k], last[k]) for k in best)  # last/: the weights themselves
    straight = tmp_path / "straight"
    train(tiny_cfg(data, epochs=2, extra=ema), straight, quiet=True)
    resumed = tmp_path / "resumed"
    train(tiny_cfg(data, epochs=1, extra=ema), resumed, quiet=True)
    train(tiny_cfg(data, epochs=2, extra=ema), resumed, resume=True, quiet=True)
    metrics = lambda run: [r.split(",")[:5] for r in log_rows(run)]  # noqa: E731 - epoch, losses, val Dice, IoU
    assert metrics(resumed) == metrics(straight)
    for name in ("best", "last"):
        a, b = (load_file(run / name / "model.safetensors") for run in (straight, resumed))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_without_an_average_best_holds_the_weights(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    best, last = (load_file(run / n / "model.safetensors") for n in ("best", "last"))
    assert all(torch.equal(best[k], last[k]) for k in best)


@pytest.mark.parametrize("bad", [1, 1.5, 0, -0.1])
def test_a_bad_decay_is_one_line(data, tmp_path, bad):
    with pytest.raises(NexnetError, match="train.ema_decay"):
        train(tiny_cfg(data, epochs=1, extra=[f"train.ema_decay={bad}"]), tmp_path / "run", quiet=True)


def test_resuming_with_an_average_the_run_never_had_is_one_line(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    with pytest.raises(NexnetError, match="was trained without train.ema_decay"):
        train(tiny_cfg(data, epochs=2, extra=["train.ema_decay=0.9"]), run, resume=True, quiet=True)
