"""Inference: the Predictor under autocast and TTA, and predict's output folder."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tiny import tiny_cfg

from nexnet.cli import main
from nexnet.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def test_evaluate_and_predict_under_bf16_autocast(data, tmp_path, capsys):
    from nexnet.inference.predictor import Predictor

    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    full, half = Predictor.load(run / "best", "cpu"), Predictor.load(run / "best", "cpu", amp=True)
    seen = []
    half.model.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    p32, p16 = full.probabilities(images), half.probabilities(images)
    assert seen == [torch.bfloat16] and p16.dtype == np.float32
    assert np.abs(p32 - p16).max() < 0.05  # bf16 rounding, not a different model
    assert (full.precision, half.precision) == ("float32", "bfloat16 autocast")

    assert main(["evaluate", "--checkpoint", str(run / "best"), "--dataset", "folder", "--data-root", str(data),
                 "--out", str(tmp_path / "eval"), "--amp"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["precision"] == "bfloat16 autocast"
    capsys.readouterr()
    code = main(["predict", "--onnx", str(tmp_path / "m.onnx"), "--input", str(data / "images"),
                 "--out", str(tmp_path / "p"), "--amp"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--amp applies to --checkpoint" in err and len(err.splitlines()) == 1


def test_predict_never_overwrites_or_writes_into_the_input(data, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    img = np.asarray(Image.open(data / "images" / "synthetic_0001.png"))
    Image.fromarray(img).save(inputs / "a.png")
    Image.fromarray(img).save(inputs / "a.jpg")
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(run / "best"),
                "--input",
                str(inputs),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.jpg.png", "a.png.png", "predict.json"]
    assert main(["predict", "--checkpoint", str(run / "best"), "--input", str(inputs), "--out", str(inputs / "x")]) == 2
    assert "nexnet never writes into source data" in capsys.readouterr().err


def test_predict_counts_the_files_it_skipped_and_records_them(data, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.open(data / "images" / "synthetic_0001.png").save(inputs / "a.png")
    (inputs / "notes.jpg").write_text("not an image")
    code = main(["predict", "--checkpoint", str(run / "best"), "--input", str(inputs), "--out", str(tmp_path / "o")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        code == 1
        and last.startswith("wrote 1 mask (")
        and "; skipped 1 unreadable file (above, and in predict.json)" in last
    )
    record = json.loads((tmp_path / "o" / "predict.json").read_text())
    assert record["masks"] == 1 and len(record["skipped"]) == 1 and "notes.jpg" in record["skipped"][0]
    assert record["threshold"] == 0.5 and record["split_file"] is None


def test_tta_averages_probabilities_over_flips():
    from nexnet.inference.predictor import Predictor

    class Ramp(torch.nn.Module):  # logits that depend on position only: a left-to-right ramp
        def forward(self, x):
            ramp = torch.linspace(-2, 2, x.shape[3]).expand(x.shape[0], 1, x.shape[2], x.shape[3])
            return ramp.clone()

    pred = Predictor(Ramp(), 8, torch.device("cpu"))
    images = np.zeros((1, 8, 8, 3), np.uint8)
    plain, tta = pred.probabilities(images), pred.probabilities(images, tta=True)
    ramp = torch.sigmoid(torch.linspace(-2, 2, 8)).numpy()
    assert np.allclose(plain[0, 0], ramp)
    assert np.allclose(tta[0], 0.5, atol=1e-6)  # the ramp and its mirror average out


def test_flip_tta_is_one_definition_for_tensors_and_arrays():
    from nexnet.inference.tta import averaged_over_flips

    x = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    ramp = lambda a: a[..., :1, :] * 0 + np.linspace(0, 1, a.shape[-1], dtype=np.float32)  # noqa: E731
    mean = averaged_over_flips(ramp, x, True, lambda a, d: np.flip(a, d))
    assert np.allclose(mean, 0.5)  # a left-to-right ramp and its mirror average out
    tensor_mean = averaged_over_flips(lambda t: torch.from_numpy(ramp(t.numpy())), torch.from_numpy(x), True,
                                      lambda t, d: t.flip(d))  # fmt: skip
    assert np.allclose(tensor_mean.numpy(), mean)
    assert np.array_equal(averaged_over_flips(ramp, x, False, lambda a, d: np.flip(a, d)), ramp(x))
