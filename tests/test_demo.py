import json

from nexnet.recipes.demo import run_demo, undertrained


def test_demo_runs_end_to_end_on_synthetic_data(tmp_path):
    assert run_demo(tmp_path / "demo", seconds=2) == 0
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "SYNTHETIC" in report and "mean Dice" in report and "overlays.png" in report
    assert (tmp_path / "demo" / "predictions" / "overlays.png").is_file()
    assert (tmp_path / "demo" / "run" / "curves.png").is_file()
    summary = json.loads((tmp_path / "demo" / "eval" / "summary.json").read_text())
    assert summary["cases"] == 48 and "authors_protocol" in summary
    # Two seconds buy too little training: the report says so and how to fix it.
    assert "warning: the model trained only" in report and "nexnet demo --seconds 6" in report


def test_a_trained_demo_model_gets_no_warning():
    assert undertrained({"best_score": 0.93, "epoch": 40, "elapsed": 118.0}, 120) == ""
    assert "--seconds 360" in undertrained({"best_score": 0.0, "epoch": 1, "elapsed": 82.0}, 120)
