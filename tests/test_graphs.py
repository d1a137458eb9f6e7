"""Batch-1 inference from captured CUDA graphs (issue 15): the CPU fallback, the opt-out flag, and on
CUDA the same probabilities and masks as eager."""

import numpy as np
import pytest
import torch
from PIL import Image

import nexnet
from nexnet.cli import build_parser, main
from nexnet.inference import predictor as inference
from nexnet.inference.predictor import Predictor

CUDA = torch.cuda.is_available()


def checkpoint(tmp_path, name="nexnet_seg_s", size=64):
    torch.manual_seed(0)
    return nexnet.create_model(name).save_pretrained(tmp_path / name, extra={"image_size": size})


def test_cpu_runs_eagerly_with_graphs_on_and_gives_the_eager_probabilities(tmp_path, monkeypatch):
    ckpt = checkpoint(tmp_path)
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    eager = Predictor.load(ckpt, "cpu", graphs=False)
    monkeypatch.setattr(inference, "GraphedForward", lambda *a, **k: pytest.fail("no graph capture on CPU"))
    graphed = Predictor.load(ckpt, "cpu")  # graphs on by default
    assert graphed.graphs and not graphed.uses_graphs
    for tta in (False, True):
        a, b = eager.probabilities(images, 2, tta), graphed.probabilities(images, 2, tta)
        assert np.array_equal(a, b)
        assert np.array_equal(a > eager.threshold, b > graphed.threshold)
    assert graphed._graphed == {}


@pytest.mark.parametrize("verb", ["predict", "evaluate"])
def test_no_graphs_flag_reaches_the_predictor(verb, tmp_path, monkeypatch):
    seen = {}
    package = {"predict": "nexnet.inference", "evaluate": "nexnet.evaluation"}[verb]
    monkeypatch.setattr(f"{package}.{verb}", lambda *a, **k: seen.update(k) or {"failed": []})
    base = {
        "predict": ["--checkpoint", "c", "--input", "i", "--out", "o"],
        "evaluate": ["--checkpoint", "c", "--dataset", "folder", "--data-root", "d"],
    }[verb]
    assert build_parser().parse_args([verb, *base]).no_graphs is False  # graphs by default
    assert main([verb, *base, "--no-graphs"]) == 0 and seen["graphs"] is False
    assert main([verb, *base]) == 0 and seen["graphs"] is True


def test_predict_with_no_graphs_writes_masks_on_cpu(tmp_path):
    ckpt = checkpoint(tmp_path)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(
        tmp_path / "in" / "a.png"
    )
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-graphs"]) == 0  # fmt: skip
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).shape == (50, 70)


@pytest.mark.skipif(not CUDA, reason="needs CUDA: the graph path is checked on the device (benchmarks/gpu_speed.sh)")
@pytest.mark.parametrize("name", ["nexnet_seg", "unet"])
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_graph_replay_gives_the_eager_masks(name, amp, tmp_path):
    """Probabilities within float rounding (TF32 convolutions; bf16 under amp) and masks identical except
    at pixels whose eager probability lies within that rounding of the threshold."""
    ckpt = checkpoint(tmp_path, name, 224)
    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    eager = Predictor.load(ckpt, "cuda", amp=amp, graphs=False)
    graphed = Predictor.load(ckpt, "cuda", amp=amp)
    tol = 2e-2 if amp else 1e-3
    for tta in (False, True):
        a, b = eager.probabilities(images, 2, tta), graphed.probabilities(images, 2, tta)
        again = graphed.probabilities(images, 2, tta)  # a replay, not a capture
        diff = np.abs(a - b).max()
        differ = (a > 0.5) != (b > 0.5)
        print(f"{name} amp={amp} tta={tta}: max |p_graph - p_eager| {diff:.2e}, "
              f"{int(differ.sum())} of {differ.size} mask pixels differ")  # fmt: skip
        assert diff <= tol and np.array_equal(b, again)
        assert not (differ & (np.abs(a - 0.5) > tol)).any()
    assert graphed.uses_graphs and set(graphed._graphed) == {(2, 3, 224, 224), (1, 3, 224, 224)}
