"""Deployment on a CPU: each model in every runtime, side by side in one process.

    python benchmarks/bench_deploy.py --checkpoints RUN_A/best,RUN_B/best [--data-root DIR] [--threads 2] \
        [--batches 1,16] [--rounds 5] [--repeats 5] [--calibration-images 300] [--json OUT.json]
    python benchmarks/bench_deploy.py --untrained nexnet_seg,unet --size 224 --split-from RUN_A/best ...

Runtimes: PyTorch float32 and bf16 autocast, onnxruntime float32 and int8, OpenVINO f32, OpenVINO
with the bf16 hint, and OpenVINO int8 (``nexnet export --format openvino --int8``: calibrated on
training images, its validation mDice reported whatever the drop). onnxruntime int8 is its static
QDQ quantization (per-channel int8 weights, uint8 activations) calibrated on the same training
images; ``nexnet export`` does not write it yet, so this row says whether it should. Latency is
the median over alternating rounds (every model and runtime takes its turn each round, so machine
load hits all), after warm-up.
Validation mDice is each runtime's on the checkpoint's own validation split, at each image's
original size and the checkpoint's threshold. ``--untrained`` measures speed only: the models are
built with random weights at ``--size`` (their int8 calibrated on the training images of
``--split-from``'s split), so their mDice means nothing. Needs the onnx and deploy extras.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import alternating_medians

from nexnet import create_model
from nexnet.data import Split, to_model_input
from nexnet.inference import Predictor
from nexnet.inference.export import OnnxPredictor, write_onnx
from nexnet.inference.openvino import compile_model, require_openvino, to_openvino
from nexnet.models.checkpoint import Checkpoint
from nexnet.recipes.deploy import DEFAULT_CALIBRATION, calibration_data, export_openvino, val_masks, verify
from nexnet.runtime import autocast

RUNTIMES = ["pytorch fp32", "pytorch bf16", "onnxruntime fp32", "onnxruntime int8", "openvino f32", "openvino bf16",
            "openvino int8"]  # fmt: skip


def runtimes(checkpoint: Path, work: Path, threads: int, data_root: str | None, calibration: int) -> dict:
    """Runtime name -> a function of a ``(B, 3, S, S)`` float32 array that returns logits."""
    ov = require_openvino()
    pred = Predictor.load(checkpoint, "cpu")
    plain = Predictor.load(checkpoint, "cpu", fast_layout=False)
    out: dict = {}

    def torch_run(dtype):  # noqa: ANN001, ANN202
        model = pred.model  # placed as predict places it (channels_last where the model prefers it)

        @torch.no_grad()
        def run(x: np.ndarray) -> np.ndarray:
            with autocast(dtype, torch.device("cpu")):
                return model(torch.from_numpy(x)).float().numpy()

        return run

    out["pytorch fp32"], out["pytorch bf16"] = torch_run(None), torch_run(torch.bfloat16)
    write_onnx(plain, work / "m.onnx")
    session = OnnxPredictor.load(work / "m.onnx").session
    out["onnxruntime fp32"] = lambda x: session.run(None, {"image": x})[0]
    record = Checkpoint.read(checkpoint)
    data, ids = calibration_data(record, data_root, calibration, pred.image_size)
    images = data.arrays.images[data.arrays.index(ids)]
    inputs = [to_model_input(images[i : i + 1], "cpu").numpy() for i in range(len(images))]
    out["onnxruntime int8"] = onnxruntime_int8(work / "m.onnx", work / "m_int8.onnx", inputs, threads)
    f32 = compile_model(to_openvino(plain), threads)
    out["openvino f32"] = lambda x: f32(x)[0]
    bf16 = ov.Core().compile_model(to_openvino(plain), "CPU", {"INFERENCE_PRECISION_HINT": "bf16",
                                                                "INFERENCE_NUM_THREADS": threads})  # fmt: skip
    out["openvino bf16"] = lambda x: bf16(x)[0]
    export_openvino(checkpoint, work / "int8", int8=True, max_dice_drop=float("inf"), data_root=data_root,
                    calibration_images=calibration, threads=threads)  # fmt: skip
    int8 = compile_model(ov.Core().read_model(str(work / "int8" / "model.xml")), threads)
    out["openvino int8"] = lambda x: int8(x)[0]
    return out


def onnxruntime_int8(model: Path, out: Path, inputs: list[np.ndarray], threads: int) -> Callable:
    """onnxruntime's static int8 (QDQ) quantization of ``model``, calibrated on ``inputs`` (each a
    ``(1, 3, S, S)`` model input), as a function of a batch that returns logits."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Inputs(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(inputs)

        def get_next(self) -> dict | None:
            x = next(self.left, None)
            return None if x is None else {"image": x}

    quantize_static(str(model), str(out), Inputs(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def untrained(name: str, size: int, split_from: Path, tmp: Path) -> Path:
    """A checkpoint of ``name`` with random weights at ``size``, recording ``split_from``'s split (and
    its dataset) so that int8 calibrates on that split's training images (give --data-root)."""
    record = Checkpoint.read(split_from)
    split = Split.load(record.split_file)
    model = create_model(name).eval()
    folder = tmp / f"untrained-{name}"
    extra = {"image_size": size, "dataset": record.record["dataset"], **split.record()}
    model.save_pretrained(folder, extra=extra, json_files={"split.json": split.to_dict()})
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoints", default=None, help="comma-separated trained checkpoint folders")
    p.add_argument("--untrained", default=None, help="comma-separated model names, random weights: speed only")
    p.add_argument("--size", type=int, default=224, help="--untrained: the input size")
    p.add_argument("--split-from", default=None, help="--untrained: a checkpoint whose split calibrates int8")
    p.add_argument("--data-root", default=None, help="the dataset (default: the one each run trained on)")
    p.add_argument("--calibration-images", type=int, default=DEFAULT_CALIBRATION, help="training images for int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", default="1,16")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        funcs, sizes = {}, {}
        checkpoints = [Path(c) for c in args.checkpoints.split(",")] if args.checkpoints else []
        if args.untrained:
            checkpoints = [untrained(n, args.size, Path(args.split_from), Path(tmp)) for n in args.untrained.split(",")]
        for ckpt in checkpoints:
            record = Checkpoint.read(ckpt)
            work = Path(tmp) / record.name
            work.mkdir()
            funcs[record.name], sizes[record.name] = (
                runtimes(ckpt, work, args.threads, args.data_root, args.calibration_images),
                record.image_size,
            )
            data, _ = calibration_data(record, args.data_root, 1, record.image_size)
            val = [i for i in data.split.val if i in set(data.arrays.ids)]
            masks = {rt: val_masks(fn, data, val, float(record.threshold)) for rt, fn in funcs[record.name].items()}
            results[record.name] = {rt: {"val_mdice": verify(masks["pytorch fp32"], m)["val_mdice_int8"],
                                         "mask_pixels_differ": verify(masks["pytorch fp32"], m)["mask_pixels_differ"]}
                                    for rt, m in masks.items()}  # fmt: skip
        for batch in batches:
            calls = {}
            for name, by_runtime in funcs.items():
                x = np.random.default_rng(0).random((batch, 3, sizes[name], sizes[name]), dtype=np.float32)
                for rt, fn in by_runtime.items():
                    calls[(name, rt)] = (lambda f, a: lambda: f(a))(fn, x)
            keyed = {f"{n}|{rt}": fn for (n, rt), fn in calls.items()}
            medians = alternating_medians(keyed, args.rounds, args.repeats)
            for key, seconds in medians.items():
                name, rt = key.split("|")
                results[name][rt][f"b{batch}_ms"] = seconds * 1000
                results[name][rt][f"b{batch}_images_per_s"] = batch / seconds
    print(markdown(results, batches, args.threads))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def markdown(results: dict, batches: list[int], threads: int) -> str:
    names = list(results)
    head = ["runtime"] + [f"{n} b1 ms" for n in names]
    if len(names) == 2:
        head.append("ratio")
    head += [f"{n} b{b} img/s" for b in batches if b != 1 for n in names] + [f"{n} val mDice" for n in names]
    lines = [f"({threads} threads; medians over alternating rounds after warm-up)", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]  # fmt: skip
    for rt in RUNTIMES:
        row = [rt] + [f"{results[n][rt].get('b1_ms', float('nan')):.1f}" for n in names]
        if len(names) == 2:
            row.append(f"{results[names[0]][rt].get('b1_ms', np.nan) / results[names[1]][rt].get('b1_ms', np.nan):.2f}")
        row += [f"{results[n][rt][f'b{b}_images_per_s']:.1f}" for b in batches if b != 1 for n in names]
        row += [f"{results[n][rt]['val_mdice']:.4f}" for n in names]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
