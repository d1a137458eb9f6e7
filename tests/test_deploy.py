"""ONNX export with onnxruntime parity, and the resumable reproduction grid."""

import json

import numpy as np
import pytest
from PIL import Image

import nexnet
from nexnet.cli import main
from nexnet.synthetic import make_synthetic_dataset

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n=16, size_range=(40, 56))


def checkpoint(tmp_path, name, **kw):
    model = nexnet.create_model(name, **kw).eval()
    model.save_pretrained(tmp_path / name, extra={"image_size": 64})
    return tmp_path / name


@pytest.mark.parametrize("name, kw", [("nexnet_seg_s", {"widths": [4, 4, 8, 8, 8, 8]}),
                                      ("segformer_b0", {}), ("unet", {"base_width": 4})])  # fmt: skip
def test_onnx_export_matches_pytorch(tmp_path, capsys, name, kw):
    ckpt = checkpoint(tmp_path, name, **kw)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--dynamic"]) == 0
    out = capsys.readouterr().out
    assert "check passed" in out and out.count("max |PyTorch - ONNX|") == 3 and "replaced" not in out
    if name == "unet":  # a second export over its own earlier one says so
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
        assert f"replaced {tmp_path / 'm.onnx'}, an earlier nexnet export" in capsys.readouterr().out


def test_predict_through_onnx_gives_the_same_masks(tmp_path, data):
    ckpt = checkpoint(tmp_path, "nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8])
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    assert (
        main(["predict", "--checkpoint", str(ckpt), "--input", str(data / "images"), "--out", str(tmp_path / "pt")])
        == 0
    )
    assert (
        main(
            [
                "predict",
                "--onnx",
                str(tmp_path / "m.onnx"),
                "--input",
                str(data / "images"),
                "--out",
                str(tmp_path / "ox"),
            ]
        )
        == 0
    )
    for f in sorted((tmp_path / "pt").glob("*.png")):
        a, b = np.asarray(Image.open(f)), np.asarray(Image.open(tmp_path / "ox" / f.name))
        assert (a != b).mean() < 1e-3  # identical but for pixels whose probability sits at the threshold


def test_export_without_onnx_says_how_to_install(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *a, **k):
        if name.startswith("onnx"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    ckpt = checkpoint(tmp_path, "unet", base_width=4)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'nexnet-seg[onnx]'" in capsys.readouterr().err


def test_reproduce_quick_writes_tables_and_skips_finished_runs(tmp_path, data, capsys):
    args = ["reproduce", "--table", "1", "--quick", "--data-root", str(data), "--datasets", "folder,ph2",
            "--models", "nexnet_seg_s,segformer_b0", "--out", str(tmp_path / "results"),
            "--set", "train.epochs=1", "--set", "train.batch_size=4", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "skipping ph2" in out
    table = (tmp_path / "results" / "table1.md").read_text()
    assert "nexnet_seg_s" in table and "segformer_b0" in table and "reported_dice" in table
    rows = (tmp_path / "results" / "table1.csv").read_text().splitlines()
    assert len(rows) == 3
    assert (tmp_path / "results" / "table1_params_vs_dice.png").is_file()
    summary = json.loads((tmp_path / "results/table1/folder/nexnet_seg_s/eval/summary.json").read_text())
    assert summary["protocol"] == "paper" and "authors_protocol" in summary
    assert main(args) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2


def test_reproduce_describes_a_finished_cell_by_its_own_config(tmp_path, data, capsys):
    import nexnet

    args = ["reproduce", "--table", "1", "--quick", "--data-root", str(data), "--datasets", "folder",
            "--models", "nexnet_seg_s", "--out", str(tmp_path / "results"),
            "--set", "train.epochs=1", "--set", "train.batch_size=4", "--device", "cpu"]  # fmt: skip
    assert main([*args, "--set", "model.form=revised"]) == 0  # a cell trained under the earlier default
    assert main(args) == 0  # today's default is residual; the finished cell is kept and labelled as it ran
    assert "finished earlier, skipped (NExNet Seg form revised)" in capsys.readouterr().out
    row = (tmp_path / "results" / "table1.csv").read_text().splitlines()[1].split(",")
    revised = nexnet.create_model("nexnet_seg_s", form="revised")
    assert row[2] == "revised" and float(row[3]) == round(sum(p.numel() for p in revised.parameters()) / 1e6, 2)


def test_reproduce_table4_quick(tmp_path):
    assert main(["reproduce", "--table", "4", "--quick", "--models", "segformer_b0", "--out", str(tmp_path)]) == 0
    assert "segformer_b0" in (tmp_path / "table4.md").read_text()
    assert json.loads((tmp_path / "table4.json").read_text())[0]["params"] > 3_000_000


def test_reproduce_table2_quick_runs_the_ablation_with_pretraining(tmp_path, data):
    args = ["reproduce", "--table", "2", "--quick", "--data-root", str(data), "--datasets", "folder",
            "--out", str(tmp_path), "--device", "cpu", "--set", "train.epochs=1", "--set", "train.batch_size=4",
            "--set", "model.widths=[4,4,8,8,8,8]"]  # fmt: skip
    assert main(args) == 0
    lines = (tmp_path / "table2.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["baseline", "no_ssl_no_masa", "no_ssl", "no_masa", "full"]
    assert (tmp_path / "table2" / "folder" / "pretrain" / "best").is_dir()
    assert (tmp_path / "table2_ablation.png").is_file()
    cfg = (tmp_path / "table2" / "folder" / "full" / "config.yaml").read_text()
    assert "ssl: true" in cfg and "ssl_checkpoint:" in cfg


def test_parity_error_is_relative_only_above_unit_scale():
    from nexnet.inference.export import TOLERANCE, parity_error

    big = np.array([700.0, -5.0])
    assert parity_error(big, big + np.array([0.007, 0.0])) == pytest.approx(1e-5)  # rounding at that scale
    assert parity_error(big, big + np.array([1.0, 0.0])) > TOLERANCE  # a real difference still fails
    small = np.array([0.5, -0.2])
    assert parity_error(small, small + 2e-4) == pytest.approx(2e-4)  # absolute below unit scale


def test_reproduce_paper_exact_gives_the_papers_recipe_and_form_to_nexnet_only(tmp_path):
    from nexnet.recipes.reproduce import run_config

    nex = run_config("nexnet_seg", "kvasir", tmp_path, quick=False, device="cpu", paper_exact=True)
    unet = run_config("unet", "kvasir", tmp_path, quick=False, device="cpu", paper_exact=True, extra=["train.lr=3e-4"])
    for cfg in (nex, unet):
        recipe = cfg.train
        assert (recipe.batch_size, recipe.schedule, recipe.warmup_epochs) == (64, "plateau", 5)
    assert nex.train.lr == 1e-4 and unet.train.lr == 3e-4  # the user's --set wins
    assert nex.model == {"name": "nexnet_seg", "form": "paper"} and unet.model == {"name": "unet"}
    default = run_config("nexnet_seg", "kvasir", tmp_path, quick=False, device="cpu")
    assert default.train.schedule == "cosine" and "form" not in default.model


def test_reproduce_table4_profiles_nexnet_seg_in_its_default_and_the_papers_form(tmp_path):
    assert main(["reproduce", "--table", "4", "--quick", "--models", "nexnet_seg_s", "--out", str(tmp_path)]) == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "table4.json").read_text())}
    default, paper = rows["nexnet_seg_s"], rows["nexnet_seg_s (paper form)"]
    assert paper["gmacs"] > default["gmacs"] and paper["params"] > default["params"]
