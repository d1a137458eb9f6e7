"""The benchmark drivers that a GPU runs, run here on the CPU at toy size."""

import json
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
           "--models", "nexnet_seg_s,unet", "--no-amp", "--set", "train.batch_size=4"]  # fmt: skip
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
