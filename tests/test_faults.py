"""Reliability under bad input and faults (issue 28): TIFFs Pillow cannot open, bombs through the
TIFF path, swaps killed between their two renames, no writes into data, masks in the alpha channel,
and evaluation that decodes only what it scores."""

import io
import json
import os
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from nexnet.cli import main
from nexnet.data import read_image, read_image_bytes, read_mask
from nexnet.errors import DataError


def planar_tiff(path=None, side=20):
    """RGB samples tagged MinIsBlack, as CVC-ClinicDB's TIFFs are: tifffile reads them, Pillow does not."""
    image = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    target = io.BytesIO() if path is None else path
    tifffile.imwrite(target, image, photometric="minisblack", planarconfig="contig")
    return image, (target.getvalue() if path is None else path)


def test_pillow_cannot_open_the_planar_tiff_that_the_tests_use():
    _, data = planar_tiff()
    from PIL import UnidentifiedImageError

    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(data))


def test_an_uploaded_tiff_that_pillow_cannot_open_is_read_like_a_file(tmp_path):
    image, data = planar_tiff()
    assert np.array_equal(read_image_bytes(data, "1.tif"), image)  # the upload path rewinds for tifffile
    (tmp_path / "1.tif").write_bytes(data)
    assert np.array_equal(read_image(tmp_path / "1.tif"), image)


def test_cvc_clinicdbs_own_tiff_reads_as_an_upload():
    from conftest import shared_dataset

    tif = shared_dataset("samples/cvc_clinicdb") / "Original" / "1.tif"
    assert np.array_equal(read_image_bytes(tif.read_bytes(), "1.tif"), read_image(tif))


@pytest.mark.parametrize("source", ["file", "upload"])
def test_a_tiff_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch, source):
    import nexnet.data.readers as R

    _, data = planar_tiff(side=40)
    monkeypatch.setattr(R, "MAX_PIXELS", 1000)  # 40 x 40 = 1600 pixels: "too many" here
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", lambda *a, **k: pytest.fail("decoded before the check"))
    (tmp_path / "big.tif").write_bytes(data)
    with pytest.raises(DataError, match=r"big.tif: refused: 40x40 is 0.0 megapixels"):
        read_image(tmp_path / "big.tif") if source == "file" else read_image_bytes(data, "big.tif")


def test_a_tiff_stack_is_refused_for_all_its_pages_not_the_first(tmp_path, monkeypatch):
    import nexnet.data.readers as R

    pages = np.zeros((4, 20, 20, 3), dtype=np.uint8)  # 400 pixels a page, 1600 decoded
    tifffile.imwrite(tmp_path / "stack.tif", pages, photometric="minisblack", planarconfig="contig")
    monkeypatch.setattr(R, "MAX_PIXELS", 1000)
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", lambda *a, **k: pytest.fail("decoded before the check"))
    with pytest.raises(DataError, match=r"stack.tif: refused: 4 planes of 20x20 is 0.0 megapixels"):
        read_image(tmp_path / "stack.tif")


# --- a swap killed between its two renames ----------------------------------------------------------


def _kill_between_renames(monkeypatch):
    """Make the next atomic_directory take the two-rename path and die after the first rename."""
    import nexnet.io as nio

    real, calls = os.replace, []

    def replace(src, dst):
        if not os.path.isdir(src):  # the files written inside the folder
            return real(src, dst)
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the two renames")
        real(src, dst)

    monkeypatch.setattr(nio, "_exchange", lambda a, b: False)
    monkeypatch.setattr(nio.os, "replace", replace)


def test_a_checkpoint_killed_between_the_two_renames_loads_its_previous_version(tmp_path, monkeypatch):
    import nexnet

    model = nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8])
    model.save_pretrained(tmp_path / "best", extra={"epoch": 1})
    with monkeypatch.context() as m:
        _kill_between_renames(m)
        with pytest.raises(KeyboardInterrupt):
            model.save_pretrained(tmp_path / "best", extra={"epoch": 2})
    assert not (tmp_path / "best").exists() and list(tmp_path.glob(".best.old-*"))  # the state a kill leaves
    nexnet.from_pretrained(tmp_path / "best")
    assert json.loads((tmp_path / "best" / "config.json").read_text())["epoch"] == 1


def test_a_run_killed_between_the_two_renames_of_last_resumes(data, tmp_path, monkeypatch):
    from tiny import tiny_cfg

    import nexnet.training.trainer as T

    run = tmp_path / "run"
    T.train(tiny_cfg(data, epochs=1), run, quiet=True)
    real_save = T.RunFolder.save_last

    def killed_save(self, *a, **k):
        with monkeypatch.context() as m:
            _kill_between_renames(m)
            real_save(self, *a, **k)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(T.RunFolder, "save_last", killed_save)
        T.train(tiny_cfg(data, epochs=2), run, resume=True, quiet=True)
    assert not (run / "last").exists()
    result = T.train(tiny_cfg(data, epochs=2), run, resume=True, quiet=True)  # from epoch 1's last/
    assert result["epoch"] == 2


def test_the_atomic_exchange_leaves_the_new_folder_and_nothing_else(tmp_path):
    from nexnet.io import atomic_directory, atomic_write_json

    for version in (1, 2):
        with atomic_directory(tmp_path / "best") as tmp:
            atomic_write_json(tmp / "v.json", version)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    assert json.loads((tmp_path / "best" / "v.json").read_text()) == 2


# --- no command writes into a dataset --------------------------------------------------------------


def test_predict_and_score_refuse_an_out_beside_the_datasets_folders(data, tmp_path, capsys):
    import nexnet

    root = shutil.copytree(data, tmp_path / "data")
    model = nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8])
    model.save_pretrained(tmp_path / "model", extra={"image_size": 32})
    code = main(["predict", "--checkpoint", str(tmp_path / "model"), "--input", str(root / "images"),
                 "--out", str(root / "preds"), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "dataset (of --input)" in err and "\n" not in err and not (root / "preds").exists()
    preds = tmp_path / "preds"
    assert main(["predict", "--checkpoint", str(tmp_path / "model"), "--input", str(root / "images"),
                 "--out", str(preds), "--device", "cpu"]) == 0  # fmt: skip
    code = main(["score", "--pred", str(preds), "--gt", str(root / "masks"), "--out", str(root / "score")])
    assert code == 2 and "dataset (of --gt)" in capsys.readouterr().err and not (root / "score").exists()


def test_check_data_never_writes_its_split_into_the_data_or_over_a_users_file(data, tmp_path, capsys):
    base = ["check-data", "--dataset", "folder", "--data-root", str(data)]
    assert main([*base, "--split-out", str(data / "split.json")]) == 2
    assert not (data / "split.json").exists()
    notes = tmp_path / "NOTES.txt"
    notes.write_text("my notes")
    assert main([*base, "--split-out", str(notes)]) == 2 and notes.read_text() == "my notes"
    assert f"--split-out {notes}: is a file that nexnet did not write" in capsys.readouterr().err  # the file, named
    ours = tmp_path / "split.json"
    assert main([*base, "--split-out", str(ours)]) == 0
    assert main([*base, "--split-out", str(ours)]) == 0  # its own file: replaced


# --- a mask drawn in the alpha channel --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_a_mask_drawn_in_the_alpha_channel_reads_as_drawn(tmp_path, mode):
    alpha = np.zeros((16, 16), np.uint8)
    alpha[4:12, 4:12] = 255
    colour = np.zeros((16, 16, 3 if mode == "RGBA" else 1), np.uint8)  # black everywhere
    Image.fromarray(np.dstack([colour, alpha]).squeeze(), mode).save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png"), (alpha > 0).astype(np.uint8))


def test_a_coloured_mask_with_a_plain_alpha_keeps_its_colour(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[2:6, 2:6, 0] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").sum() == 16


# --- evaluation decodes only what it scores ---------------------------------------------------------


def test_evaluate_decodes_only_the_scored_and_validation_cases(data, tmp_path, monkeypatch):
    from tiny import tiny_cfg

    import nexnet.data.cache as C
    from nexnet.evaluation import evaluate
    from nexnet.training.trainer import train

    train(tiny_cfg(data, epochs=1), tmp_path / "run", quiet=True)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    decoded = []
    real = C._map
    monkeypatch.setattr(C, "_map", lambda fn, items, *a: decoded.append(len(items)) or real(fn, items, *a))
    best = tmp_path / "run" / "best"
    s = evaluate(best, "folder", data, device="cpu", say=lambda m: None)
    assert decoded == [] and s["cases"] == len(split["test"])  # training's cache: memory-mapped, nothing decoded
    monkeypatch.setenv("NEXNET_CACHE_DIR", str(tmp_path / "empty_cache"))
    assert evaluate(best, "folder", data, device="cpu", say=lambda m: None) == s  # the same scores
    evaluate(best, "folder", data, threshold="val", device="cpu", say=lambda m: None)
    assert decoded == [len(split["test"]), len(split["test"]) + len(split["val"])]


# --- small things a new user hit ----------------------------------------------------------------------


def test_an_unknown_flag_gets_the_verbs_own_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", "runs/x", "--bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: nexnet train" in err and "unrecognized arguments: --bogus" in err


def test_an_interrupted_train_says_how_to_continue(tmp_path, monkeypatch, capsys):
    import nexnet.cli.train as cli_train

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train, "run", interrupted)
    code = main(["train", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 130 and err.endswith(f"continue with nexnet train --out {tmp_path / 'run'} --resume")


def test_predict_on_a_datasets_root_names_the_subfolder_with_images(data, tmp_path, capsys):
    import nexnet

    nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8]).save_pretrained(
        tmp_path / "m", extra={"image_size": 32}
    )
    code = main(["predict", "--checkpoint", str(tmp_path / "m"), "--input", str(data), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith(f"hold images: {data / 'images'}: pass one as --input")  # not masks/
    assert "\n" not in err


def test_predict_on_a_ph2_like_root_names_image_folders_not_mask_folders_and_counts_the_rest(tmp_path, capsys):
    import nexnet

    nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8]).save_pretrained(
        tmp_path / "m", extra={"image_size": 32}
    )
    root = tmp_path / "PH2 Dataset images"
    for case in ("IMD001", "IMD002", "IMD003", "IMD004", "IMD005"):  # PH2 nests each case and its masks
        for part in ("Dermoscopic_Image", "lesion", "roi"):
            (root / case / f"{case}_{part}").mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(root / case / f"{case}_{part}" / f"{case}_{part}.bmp")
    code = main(["predict", "--checkpoint", str(tmp_path / "m"), "--input", str(root), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "IMD001_Dermoscopic_Image, " in err and " and 2 more: pass one as --input" in err, err
    assert "_lesion" not in err and "_roi" not in err


REQUIRED = {"evaluate": ["--checkpoint", "x", "--dataset", "folder", "--data-root", "x"],
            "predict": ["--input", "x", "--out", "y"], "pretrain": ["--out", "y"], "serve": [],
            "export": ["--checkpoint", "x", "--out", "y"]}  # fmt: skip


@pytest.mark.parametrize("verb", sorted(REQUIRED))
def test_every_verb_that_computes_takes_threads(verb, capsys):
    assert main([verb, *REQUIRED[verb], "--threads", "0"]) == 2
    assert "--threads 0: give a positive number" in capsys.readouterr().err


def test_a_predictor_prints_as_one_line(tmp_path):
    import nexnet
    from nexnet.inference import Predictor

    nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8]).save_pretrained(
        tmp_path / "m", extra={"image_size": 32}
    )
    text = repr(Predictor.load(tmp_path / "m", "cpu"))
    assert "\n" not in text and text.startswith("Predictor(nexnet_seg_s, 32px, cpu, threshold 0.5")


# --- no host read per training step ---------------------------------------------------------------


def _host_reads_in_one_epoch(data, tmp_path, monkeypatch, batch_size):
    """How many times the tensors of one training epoch were read by the host (item, bool, tolist)."""
    import torch
    from tiny import tiny_cfg

    import nexnet.training.trainer as T

    reads = {"n": 0}
    real_fit = T.fit_epoch

    def counted_fit(*a, **k):
        with monkeypatch.context() as m:
            for name in ("item", "__bool__", "tolist"):
                real = getattr(torch.Tensor, name)
                m.setattr(torch.Tensor, name, lambda self, *x, _r=real: reads.update(n=reads["n"] + 1) or _r(self, *x))
            return real_fit(*a, **k)

    monkeypatch.setattr(T, "fit_epoch", counted_fit)
    cfg = tiny_cfg(data, epochs=1)
    cfg.train.batch_size = batch_size
    T.train(cfg, tmp_path / f"run{batch_size}", quiet=True)
    return reads["n"]


def test_a_training_step_waits_for_no_host_read(data, tmp_path, monkeypatch):
    four_steps = _host_reads_in_one_epoch(data, tmp_path, monkeypatch, batch_size=4)  # 17 images: 4 steps
    eight_steps = _host_reads_in_one_epoch(data, tmp_path, monkeypatch, batch_size=2)  # 8 steps
    assert eight_steps == four_steps  # per epoch, not per step


def test_a_non_finite_step_is_skipped_on_the_device_with_the_weight_average_too(data, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file
    from tiny import tiny_cfg

    import nexnet.training.trainer as T
    from nexnet.training.losses import DiceBCELoss

    calls, initial = {"n": 0}, {}
    real_loss, real_average = DiceBCELoss.forward, T.WeightAverage.__init__

    def every_step_nan(self, logits, targets):
        calls["n"] += logits.requires_grad  # training steps, not validation
        return real_loss(self, logits, targets) * float("nan")

    def recording_average(self, model, decay):
        initial.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        real_average(self, model, decay)

    monkeypatch.setattr(DiceBCELoss, "forward", every_step_nan)
    monkeypatch.setattr(T.WeightAverage, "__init__", recording_average)
    run = tmp_path / "run"
    T.train(tiny_cfg(data, epochs=1, extra=["train.ema_decay=0.9"]), run, quiet=True)
    row = dict(zip(*[line.split(",") for line in (run / "log.csv").read_text().splitlines()[:2]]))
    assert int(row["optimizer_steps"]) == 0 and int(row["skipped_batches"]) == calls["n"] > 0
    weights, average = load_file(run / "last" / "model.safetensors"), load_file(run / "best" / "model.safetensors")
    moved = [k for k, v in initial.items() if v.is_floating_point() and "running" not in k
             and not torch.equal(weights[k], v.contiguous())]  # fmt: skip
    assert not moved  # no optimizer step (BatchNorm's running statistics follow the forward passes)
    assert all(torch.equal(average[k], v.contiguous()) for k, v in initial.items() if v.is_floating_point())
