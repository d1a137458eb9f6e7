"""The benchmark drivers that a GPU runs, run here on the CPU at toy size."""

import json
import os
import subprocess
import sys
from pathlib import Path

from nexnet.synthetic import make_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_side_by_side_trains_both_models_for_the_same_epochs_and_tests_once(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", n=24, size_range=(40, 56))
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_kvasir.py"), "--data-root", str(data), "--out", str(out),
           "--dataset", "folder", "--split", "seeded", "--device", "cpu", "--image-size", "32", "--epochs", "2",
           "--models", "nexnet_seg_s,unet", "--no-amp", "--set", "train.batch_size=4", "--also-tuned"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"nexnet_seg_s", "unet"}
    for name, res in results.items():
        assert res["epochs"] == 2 and res["steps"] == 2 * (16 // 4)  # 16 training cases, batch 4: no early stop
        summary = json.loads((out / name / "eval" / "summary.json").read_text())
        assert summary["cases"] == 5 and res["test_dice"] == summary["mean"]["dice"]  # the run's own test split
    table = (out / "table.md").read_text()
    assert "| `nexnet_seg_s` | 2 | 8 |" in table and "2 epochs each" in table and "5 images" in table
    for name, res in results.items():  # --also-tuned: the same checkpoint, threshold chosen on val, flip TTA
        tuned = json.loads((out / name / "eval_tuned" / "summary.json").read_text())
        assert tuned["tta"] and tuned["threshold"]["chosen_on"].startswith("validation")
        assert (
            res["tuned"]["test_dice"] == tuned["mean"]["dice"]
            and f"| `{name}` | {tuned['threshold']['value']:.2f} |" in table
        )


def test_gpu_speed_runs_both_models_side_by_side_at_toy_size_on_cpu(tmp_path):
    out = tmp_path / "speed.json"
    cmd = ["bash", str(ROOT / "benchmarks" / "gpu_speed.sh"), "--device", "cpu", "--image-size", "64", "--batches", "2",
           "--models", "nexnet_seg,nexnet_seg:form=revised,unet",
           "--steps", "2", "--rounds", "1", "--warmup", "1", "--latency-repeats", "2", "--compile-timeout", "1",
           "--fp32", "--json", str(out)]  # fmt: skip  # bf16 autocast on a CPU without AMX: minutes, not seconds
    r = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHON": sys.executable}
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    header = "| | nexnet_seg | nexnet_seg:form=revised | unet | nexnet_seg / unet | nexnet_seg:form=revised / unet |"
    assert header in r.stdout and "over the 1 s limit, left out" in r.stdout
    rows = json.loads(out.read_text())["rows"]
    assert rows["training, batch 2, images/s"]["nexnet_seg:form=revised"] > 0
    assert rows["batch 1, forward, eager, ms"]["unet"] > 0
    compiled = rows["batch 1, forward, torch.compile reduce-overhead, ms"]
    assert compiled == {"nexnet_seg": None, "nexnet_seg:form=revised": None, "unet": None}
    assert not any("CUDA graph" in k for k in rows)  # CPU: eager only


def test_benchmark_model_specs_carry_keywords_to_the_model():
    import pytest
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import build, model_spec

    assert model_spec("unet") == ("unet", {})
    assert model_spec("nexnet_seg:form=revised:masa_from=2") == ("nexnet_seg", {"form": "revised", "masa_from": 2})
    args = type("Args", (), {"default_layout": False, "compile": False})()
    model = build("nexnet_seg_s:form=revised:widths=[4,4,8,8,8,8]", torch.device("cpu"), args)
    assert model.config["form"] == "revised" and model.config["widths"] == [4, 4, 8, 8, 8, 8]
    with pytest.raises(SystemExit, match="write NAME:KEY=VALUE"):
        model_spec("nexnet_seg:revised")
    from gpu_speed import parse_args

    names = parse_args(["--models", "nexnet_seg_s:widths=[4,4,8,8,8,8],unet"]).names
    assert names == ["nexnet_seg_s:widths=[4,4,8,8,8,8]", "unet"]


def test_screened_variants_train_through_the_real_cli(tmp_path):
    """benchmarks/screen_variants.py: the variants docs/training.md screened train with `nexnet train`."""
    data = make_synthetic_dataset(tmp_path / "data", n=12, size_range=(40, 56))
    from safetensors import safe_open

    made_of = {"screen_single_conv_decoder": ("projections.0.weight", "decoder.0.0.weight"),  # one conv per level
               "screen_deep_supervision": ("aux_heads.2.weight",),
               "screen_drop_path": ("encoder.0.conv_masa.conv.inner.0.weight", "encoder.5.conv_masa.attention.inner.qkv.weight")}  # fmt: skip
    for name, keys in made_of.items():
        out = tmp_path / name
        cmd = [sys.executable, str(ROOT / "benchmarks" / "screen_variants.py"), "train", "--model", name,
               "--dataset", "folder", "--data-root", str(data), "--split", "seeded", "--image-size", "32",
               "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(out)]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert json.loads((out / "best" / "config.json").read_text())["model"] == name
        rows = (out / "log.csv").read_text().splitlines()
        assert len(rows) == 2 and rows[1].startswith("1,")
        with safe_open(out / "best" / "model.safetensors", "pt") as f:  # the variant, not the plain network
            saved = set(f.keys())
        assert set(keys) <= saved
        assert ("decoder.0.3.weight" in saved) is (name != "screen_single_conv_decoder")  # a DoubleConv's 2nd conv


def test_frontier_recipe_chooses_each_folders_setting_on_validation_and_pairs_the_images(tmp_path, monkeypatch):
    """Hand-made points: the base's better validation setting is its narrower width, the candidate's
    its wider; the lift is the candidate's chosen runs minus the base's, image by image over seeds."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import frontier_recipe

    def point(width, seed, val, test, images=(0.5, 0.7)):
        return {"name": f"unet-w{width.replace('/', '_')}-seed{seed}", "model": "unet", "width": width,
                "image_size": 64, "budget_min": 10.0, "seed": seed, "best_val_mdice": val, "epochs": 3,
                "images_per_s": 1.0, "test_dice": {"a": test, "b": test + 0.1}, "val_images": images}  # fmt: skip

    base = [point("1/8", 0, 0.8, 0.6, (0.6, 0.8)), point("1/8", 1, 0.8, 0.6, (0.8, 0.8)),
            point("1/4", 0, 0.7, 0.9), point("1/4", 1, 0.7, 0.9)]  # fmt: skip
    cand = [point("1/8", 0, 0.6, 0.9), point("1/8", 1, 0.6, 0.9),
            point("1/4", 0, 0.9, 0.5, (0.9, 0.9)), point("1/4", 1, 0.9, 0.7, (0.9, 1.0))]  # fmt: skip
    by_folder = {Path(f) / "runs": {p["name"]: p for p in pts} for f, pts in (("b", base), ("c", cand))}
    monkeypatch.setattr(frontier_recipe, "validation_dice", lambda args, folder, names: [
        dict(zip(("a", "b"), by_folder[folder][n]["val_images"], strict=True)) for n in names])  # fmt: skip
    args = type("Args", (), {"base": "b", "candidate": "c"})()
    row = frontier_recipe.family_lift(args, base, cand, 10.0, "unet")
    assert (row["setting_base"], row["setting_candidate"]) == ("1/8, 64 px", "1/4, 64 px")  # validation chose, not test
    # validation: candidate (0.9, 0.95) minus base (0.7, 0.8) per image -> (0.2, 0.15), mean 0.175
    assert abs(row["val"]["mean"] - 0.175) < 1e-9 and row["lifts"] == (row["val"]["ci95"][0] > 0)
    # test: candidate (0.6, 0.7) minus base (0.6, 0.7) -> 0
    assert abs(row["test"]["mean"]) < 1e-9


def test_openvino_profile_table_adds_the_layers_of_one_kind_largest_first():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from profile_openvino import table

    kinds = {("Eltwise", "jit_FP32"): 1.0, ("Convolution", "brgconv_I8"): 3.0}
    lines = table("unet", "int8", 4.5, kinds, top=5).splitlines()
    assert lines[0] == "### unet, int8: 4.5 ms a batch with the counters on (layers sum to 4.0 ms)"
    assert lines[4:] == ["| Convolution | brgconv_I8 | 3.00 | 75% |", "| Eltwise | jit_FP32 | 1.00 | 25% |"]


def test_openvino_profile_runs_float32_and_int8_at_toy_size(tmp_path):
    """A tiny UNet through nexnet's own export path, at float32 and NNCF's int8."""
    import pytest

    pytest.importorskip("openvino", reason="the deploy extra (openvino) is not installed")
    pytest.importorskip("nncf", reason="the deploy extra (nncf) is not installed")
    out = tmp_path / "profile.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "profile_openvino.py"), "--models", "unet:base_width=4",
           "--size", "32", "--precisions", "f32,int8", "--runs", "2", "--calibration", "2", "--threads", "1",
           "--json", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result) == {"unet:base_width=4 f32", "unet:base_width=4 int8"}
    for record in result.values():
        assert any(key.startswith("Convolution |") for key in record["layers"]), record["layers"]


def test_onnxruntime_int8_follows_float32_on_a_tiny_unet(tmp_path):
    """bench_deploy's onnxruntime int8 row: static QDQ quantization, calibrated on the inputs given,
    keeps a tiny UNet's logits close to float32's and its graph really holds int8 weights."""
    import numpy as np
    import pytest

    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    import torch

    from nexnet import create_model
    from nexnet.inference import Predictor
    from nexnet.inference.export import OnnxPredictor, write_onnx

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_deploy import onnxruntime_int8

    torch.manual_seed(0)
    pred = Predictor(create_model("unet", base_width=4).eval(), 32, torch.device("cpu"))
    write_onnx(pred, tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, 3, 32, 32), dtype=np.float32) for _ in range(4)]
    run = onnxruntime_int8(tmp_path / "m.onnx", tmp_path / "m_int8.onnx", inputs, threads=1)
    x = rng.random((2, 3, 32, 32), dtype=np.float32)  # a batch of two: the batch axis stays dynamic
    ref = OnnxPredictor.load(tmp_path / "m.onnx").session.run(None, {"image": x})[0]
    got = run(x)
    assert got.shape == ref.shape == (2, 1, 32, 32)
    # an untrained net's logits are tiny (about 1e-2), so int8 rounding is judged against their spread
    # (the error bound held with VNNI but not on an AVX2-only CPU): the int8 model must follow them
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9
    assert np.abs(got - ref).max() < 0.5 * np.abs(ref).max()
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m_int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
