"""OpenVINO deployment at toy size: the float32 IR gives PyTorch's masks, int8 calibrates on training
images only (refused when a calibration image is a held-out one) and is refused when it loses too
much validation mDice; predict, evaluate and serve run the export."""

import json
import shutil

import numpy as np
import pytest
from tiny import tiny_cfg

from nexnet.cli import main
from nexnet.data import Split, read_image
from nexnet.errors import NexnetError
from nexnet.inference import Predictor, predict_mask
from nexnet.training import train

pytest.importorskip("openvino", reason="the deploy extra (openvino) is not installed")
pytest.importorskip("nncf", reason="the deploy extra (nncf) is not installed")

from nexnet.inference.openvino import OpenVinoPredictor  # noqa: E402
from nexnet.recipes.deploy import export_openvino  # noqa: E402


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A tiny trained model (4 epochs) and its own copy of the data, which tests may alter."""
    root = tmp_path_factory.mktemp("deploy")
    shutil.copytree(data, root / "data")
    train(tiny_cfg(root / "data", epochs=4), root / "run", quiet=True)
    return root / "run"


def test_float32_ir_gives_pytorchs_masks(run, tmp_path):
    info = export_openvino(run / "best", tmp_path / "ov", say=lambda m: None)
    assert info["precision"] == "float32" and info["fp32_parity"] <= 1e-4
    ov, torch_pred = OpenVinoPredictor.load(tmp_path / "ov"), Predictor.load(run / "best", "cpu")
    data = run.parent / "data"
    for image in sorted((data / "images").iterdir())[:4]:
        picture = read_image(image)
        assert np.array_equal(predict_mask(ov, picture), predict_mask(torch_pred, picture)), image.name


def test_int8_calibrates_on_training_images_only_and_records_its_check(run, tmp_path):
    info = export_openvino(run / "best", tmp_path / "q", int8=True, max_dice_drop=1.0, say=lambda m: None)
    split = Split.load(run / "split.json")
    assert info["precision"] == "int8" and info["calibration_part"] == "train"
    assert info["calibration_ids"] and set(info["calibration_ids"]) <= set(split.train)
    assert info["validation_cases"] == len(split.val)
    assert 0 <= info["mask_pixels_differ"] <= 1 and 0 <= info["val_mdice_int8"] <= 1
    assert json.loads((tmp_path / "q" / "deploy.json").read_text()) == json.loads(json.dumps(info))


def test_int8_that_loses_more_than_the_allowed_drop_writes_nothing(run, tmp_path):
    tried = r"\(every layer: [0-9.]+; T-PEN at float32: [0-9.]+\); nothing written"  # both attempts
    with pytest.raises(NexnetError, match="drops by more than --max-dice-drop -1 .*" + tried):
        export_openvino(run / "best", tmp_path / "q", int8=True, max_dice_drop=-1.0, say=lambda m: None)
    assert not (tmp_path / "q").exists()


def test_a_network_without_tpen_layers_gets_no_second_int8_attempt(run, tmp_path, monkeypatch):
    import nncf

    from nexnet.inference.openvino import to_openvino
    from nexnet.recipes import deploy

    names = deploy.matching_layers(to_openvino(Predictor.load(run / "best", "cpu")), deploy.TPEN_SCOPE["patterns"])
    assert names and all("/tpen/" in n for n in names)  # module paths survive ONNX and OpenVINO
    attempts = []  # the calibration itself is the test above's: here only which attempts run
    monkeypatch.setattr(nncf, "quantize", lambda model, data, subset_size, **kw: attempts.append(kw) or model)
    monkeypatch.setitem(deploy.TPEN_SCOPE, "patterns", [".*no_such_layer.*"])
    with pytest.raises(NexnetError, match=r"\(every layer: [0-9.]+\); nothing written"):
        export_openvino(run / "best", tmp_path / "q", int8=True, max_dice_drop=-1.0, say=lambda m: None)
    assert attempts == [{}]


def test_a_bad_calibration_count_is_refused_before_the_conversion(run, tmp_path, monkeypatch):
    from nexnet.recipes import deploy

    monkeypatch.setattr(deploy, "to_openvino", lambda pred: pytest.fail("converted before checking the flags"))
    with pytest.raises(NexnetError, match="--calibration-images 0: give at least 1"):
        export_openvino(run / "best", tmp_path / "q", int8=True, calibration_images=0, say=lambda m: None)


def test_calibration_refuses_a_training_image_that_is_a_held_out_one(run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(run.parent / "data", data)
    split = Split.load(run / "split.json")
    for folder in ("images", "masks"):  # the training case's files now hold a test case's pixels
        test_file = next((data / folder).glob(f"{split.test[0]}.*"))
        shutil.copyfile(test_file, next((data / folder).glob(f"{split.train[0]}.*")))
    with pytest.raises(NexnetError, match="calibration images are pixel-identical to images the model is validated"):
        export_openvino(run / "best", tmp_path / "q", int8=True, data_root=data, calibration_images=100,
                        say=lambda m: None)  # fmt: skip
    assert not (tmp_path / "q").exists()


def test_predict_and_evaluate_run_the_export(run, tmp_path, capsys):
    assert (
        main(["export", "--checkpoint", str(run / "best"), "--format", "openvino", "--out", str(tmp_path / "ov")]) == 0
    )
    data = run.parent / "data"
    assert main(["predict", "--openvino", str(tmp_path / "ov"), "--input", str(data / "images"),
                 "--out", str(tmp_path / "p")]) == 0  # fmt: skip
    assert main(["predict", "--checkpoint", str(run / "best"), "--input", str(data / "images"), "--device", "cpu",
                 "--out", str(tmp_path / "t")]) == 0  # fmt: skip
    for mask in sorted((tmp_path / "t").glob("*.png")):
        assert (tmp_path / "p" / mask.name).read_bytes() == mask.read_bytes(), mask.name
    assert main(["evaluate", "--checkpoint", str(run / "best"), "--openvino", str(tmp_path / "ov"), "--dataset",
                 "folder", "--data-root", str(data), "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["runtime"] == "cpu (OpenVINO)" and summary["precision"] == "float32"
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run / "best"), "--format", "onnx", "--int8", "--out", "x.onnx"]) == 2
    assert capsys.readouterr().err.strip() == "nexnet export: error: --int8 goes with --format openvino"


def test_serve_says_which_runtime_and_precision_it_runs(run, tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from nexnet.serve.server import load_served

    export_openvino(run / "best", tmp_path / "ov", say=lambda m: None)
    served = load_served(str(run / "best"), None, openvino=str(tmp_path / "ov"))
    assert (served.info["device"], served.info["precision"], served.info["openvino"]) == (
        "cpu (OpenVINO)", "float32", "ov")  # fmt: skip
    assert served.info["name"] == "nexnet_seg_s" and served.info["checkpoint"].endswith("run/best")


def test_an_export_served_alone_still_says_what_it_was_trained_on(run, tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from nexnet.models.checkpoint import TRAINING_FACTS, Checkpoint
    from nexnet.serve.server import load_served

    export_openvino(run / "best", tmp_path / "ov", say=lambda m: None)
    record = Checkpoint.read(run / "best").record
    assert record["val_dice"] is not None and record["dataset"] == "folder"
    info = load_served(None, None, openvino=str(tmp_path / "ov")).info
    assert {k: info[k] for k in TRAINING_FACTS} == {k: record[k] for k in TRAINING_FACTS}
    deployed = json.loads((tmp_path / "ov" / "deploy.json").read_text())
    assert deployed["checkpoint"] == str((run / "best").resolve())  # absolute: found from anywhere
