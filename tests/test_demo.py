import json

from nexnet.recipes.demo import run_demo


def test_demo_runs_end_to_end_on_synthetic_data(tmp_path):
    assert run_demo(tmp_path / "demo", seconds=2) == 0
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "SYNTHETIC" in report and "mean Dice" in report and "overlays.png" in report
    assert (tmp_path / "demo" / "predictions" / "overlays.png").is_file()
    assert (tmp_path / "demo" / "run" / "curves.png").is_file()
    summary = json.loads((tmp_path / "demo" / "eval" / "summary.json").read_text())
    assert summary["cases"] == 48 and "authors_protocol" in summary
