"""Evaluation and scoring: end to end on tiny synthetic data, exact values on hand-made masks."""

import json
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from tiny import log_rows, tiny_cfg

from nexnet.cli import main
from nexnet.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def test_train_evaluate_predict_score_end_to_end(data, tmp_path, capsys):
    run = tmp_path / "run"
    result = train(tiny_cfg(data), run, quiet=True)
    names = sorted(p.name for p in run.iterdir())
    assert names == ["best", "config.yaml", "curves.png", "last", "log.csv", "split.json"]
    assert sorted(p.name for p in (run / "last").iterdir()) == [
        "config.json",  # so that last/ loads and evaluates like best/, with the same checks
        "model.safetensors",
        "seen_images.json",
        "split.json",
        "state.json",
        "state.safetensors",
    ]
    assert result["epoch"] == 2 and len(log_rows(run)) == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["image_size"] == 32

    assert main(["evaluate", "--checkpoint", str(run / "best"), "--dataset", "folder", "--data-root", str(data),
                 "--protocol", "paper", "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    split = json.loads((run / "split.json").read_text())
    assert [c["id"] for c in summary["per_case"]] == split["test"]  # the run's own split
    assert {"dice", "iou", "precision", "recall", "specificity", "accuracy", "hd95"} <= set(summary["per_case"][0])
    assert summary["threshold"] == {"value": 0.5, "chosen_on": "fixed"} and "authors_protocol" in summary
    assert "mean dice" in capsys.readouterr().out

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "best"), "--input", str(data / "images"),
                 "--out", str(out), "--overlay", "--gt", str(data / "masks")]) == 0  # fmt: skip
    first = Image.open(out / "synthetic_0000.png")
    assert first.size == Image.open(data / "images" / "synthetic_0000.png").size  # original size
    assert set(np.unique(np.asarray(first))) <= {0, 255}
    assert (out / "overlays" / "synthetic_0000.png").is_file() and (out / "overlays.png").is_file()

    assert main(["score", "--pred", str(out), "--gt", str(data / "masks"), "--out", str(tmp_path / "s")]) == 0
    scored = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert scored["cases"] == 24


def test_score_exact_values_on_hand_made_folders(tmp_path):
    for d in ("pred", "gt"):
        (tmp_path / d).mkdir()
    a = np.zeros((8, 8), np.uint8)
    a[:4] = 255
    Image.fromarray(a).save(tmp_path / "gt" / "x_segmentation.png")
    Image.fromarray(a[::-1].copy()).save(tmp_path / "pred" / "x.png")  # disjoint halves
    Image.fromarray(a).save(tmp_path / "gt" / "y_segmentation.png")
    Image.fromarray((a // 255).astype(np.uint8)).save(tmp_path / "pred" / "y.png")  # stored as 0/1
    # A folder from another tool: summary.json goes to --out, not into it.
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]) == 2
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out",
                 str(tmp_path / "s")]) == 0  # fmt: skip
    s = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert {c["id"]: c["dice"] for c in s["per_case"]} == {"x": 0.0, "y": 1.0}
    assert s["mean"]["dice"] == 0.5 and s["pixel_pooled"]["dice"] == 0.5


def test_pickle_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pth")
    code = main(["evaluate", "--model_path", str(tmp_path / "model.pth"), "--dataset", "folder", "--data-root", "."])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is a pickle file" in err and "\n" not in err


def test_threshold_chosen_on_validation_is_recorded(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    assert main(["evaluate", "--checkpoint", str(run / "best"), "--dataset", "folder", "--data-root", str(data),
                 "--threshold", "val", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    s = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert s["threshold"]["chosen_on"].startswith("validation split") and 0.05 <= s["threshold"]["value"] <= 0.95
    assert main(["evaluate", "--checkpoint", str(run / "best"), "--dataset", "folder", "--data-root", str(data),
                 "--threshold", "val", "--subset", "val"]) == 2  # fmt: skip


def test_an_evaluation_folder_names_every_setting_that_changes_its_numbers():
    from nexnet.evaluation.evaluator import variant_of

    assert variant_of(None, "float32", "0.5", False, "honest") == ()  # the plain one keeps today's name
    assert variant_of(None, "float32", "0.50", False, "honest") == ()
    assert variant_of(None, "bfloat16 autocast", "val", True, "paper") == ("bfloat16", "thr-val", "tta", "paper")
    assert variant_of("openvino-q", "int8", "0.40", False, "honest") == ("openvino-q", "int8", "thr-0.4")
    assert variant_of("onnx-model.onnx", "float32", ".5", False, "honest") == ("onnx-model.onnx",)
