"""The ``nexnet`` command line: one verb per step."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .commands import (
    cmd_cache,
    cmd_check_data,
    cmd_datasets,
    cmd_demo,
    cmd_evaluate,
    cmd_export,
    cmd_models,
    cmd_predict,
    cmd_pretrain,
    cmd_profile,
    cmd_reproduce,
    cmd_score,
    cmd_serve,
    cmd_train,
)
from .errors import NexnetError

Handler = Callable[[argparse.Namespace], int]


NO_GRAPHS_HELP = (
    "on CUDA, run the network eagerly instead of replaying captured CUDA graphs "
    "(default: graphs on CUDA; the CPU always runs eagerly)"
)
AMP_INFERENCE_HELP = (
    "bf16 autocast (fp16 on CUDA without bf16): on CPUs with AMX 1.85x faster for nexnet_seg, "
    "slower on CPUs without fast bf16; masks can differ from float32 at the edges"
)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


SPLIT_SEED_HELP = (
    "seed of the seeded, kfold and CVC pranet test parts and of the carved validation part "
    "(default 0); apart from --seed, so that a multi-seed study keeps its test and val sets"
)


def add_part_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--split-file", default=None, metavar="SPLIT_JSON", help=what)
    p.add_argument("--subset", choices=["test", "val", "train"], default="test",
                   help="with --split-file: which part (default test)")  # fmt: skip


def add_data_flags(p: argparse.ArgumentParser, split_required: bool = False) -> None:
    """The flags every data-reading verb shares."""
    p.add_argument("--dataset", required=True, help="adapter name: see 'nexnet datasets'")
    p.add_argument("--data-root", required=True, help="the dataset folder as downloaded, or a folder holding it")
    p.add_argument("--split", required=split_required, default=None,
                   help="official, pranet, medico2020, paper, kfold:K/N, seeded, or a split.json "
                        "(default: the dataset's usual split)")  # fmt: skip
    p.add_argument("--split-seed", "--seed", dest="split_seed", type=int, default=0, help=SPLIT_SEED_HELP)
    p.add_argument("--mask-suffix", default=None, help="folder adapter: mask name suffix, e.g. _segmentation")
    p.add_argument("--skip-bad", action="store_true", help="leave unreadable pairs out and list them")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: up to 4)")


def _add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="parameters, GMACs/GFLOPs and latency of registered models",
        description="Count parameters and multiply-accumulates (attention included) and time the "
        "forward pass of one or more registered models on a random input.",
    )
    p.add_argument("--models", type=_csv, default=["nexnet_seg"],
                   help="comma-separated registry names, or 'all' (default: nexnet_seg)")  # fmt: skip
    p.add_argument("--image-size", type=int, default=224, help="square input size (default 224)")
    p.add_argument("--batch-size", type=int, default=1, help="batch for the latency (default 1)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--no-latency", action="store_true", help="count parameters and MACs only")
    p.add_argument("--amp", action="store_true", help="time under bf16 autocast (fast on CPUs with AMX and on GPUs)")
    p.add_argument("--throughput-batch", type=int, default=16, help="batch for images/s (0: skip; default 16)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write a markdown table (the paper's Table 4 shape)")
    p.set_defaults(func=cmd_profile)


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless it is unset (None, False) or the help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default in (None, False, [], argparse.SUPPRESS)
        if not action.option_strings or unset or "default" in text:
            return text
        return f"{text} (default: {action.default})".strip()


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="nexnet",
        description="NExNet Seg and baselines for medical image segmentation.",
        epilog="Run 'nexnet VERB --help' for the flags of one step.",
    )
    parser.add_argument("--version", action="version", version=f"nexnet-seg {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    d = sub.add_parser("demo", help="a small end-to-end run that needs no data",
                       description="Generate 240 SYNTHETIC polyp-like images, train nexnet_seg_s on them for "
                       "about two minutes on the CPU, evaluate it on their test split, predict with overlays, "
                       "and write OUT/report.md. Synthetic data: it shows the pipeline works, no more.")  # fmt: skip
    d.add_argument("--out", default="demo", help="output folder (default: demo)")
    d.add_argument("--seconds", type=float, default=120, help="training budget in seconds (default 120)")
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("models", help="list registered model names")
    m.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'segformer*'")
    m.set_defaults(func=cmd_models)

    _add_profile(sub)

    ds = sub.add_parser("datasets", help="dataset names and the folder layout each expects")
    ds.set_defaults(func=cmd_datasets)

    ca = sub.add_parser("cache", help="where decoded images are cached, and how much; --clear removes them",
                        description="Each dataset is decoded and resized once into ~/.cache/nexnet-seg "
                        "(NEXNET_CACHE_DIR moves it); about 200 MB for Kvasir-SEG at 224 px.")  # fmt: skip
    ca.add_argument("--clear", action="store_true", help="delete the cache; it is rebuilt when next needed")
    ca.set_defaults(func=cmd_cache)

    c = sub.add_parser(
        "check-data", help="report pairs, sizes, mask values, splits and problems of a dataset",
        description="Decode every pair once and report what a training run would see. Exits 1, "
        "with one line per problem, when the data cannot be used.",
    )  # fmt: skip
    add_data_flags(c)
    c.add_argument("--split-out", metavar="FILE", help="also write the split as JSON")
    c.set_defaults(func=cmd_check_data)
    for add in (
        _add_train,
        _add_pretrain,
        _add_evaluate,
        _add_predict,
        _add_reproduce,
        _add_export,
        _add_score,
        _add_serve,
    ):
        add(sub)
    for verb in sub.choices.values():
        verb.formatter_class = DefaultsFormatter
    return parser


def _add_train(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train", help="train a registered model on a dataset",
        description="Train with the default recipe (configs/default.yaml) unless told otherwise; "
        "--config configs/paper_exact.yaml gives NExNet Seg's paper network and recipe, "
        "configs/paper_recipe.yaml the paper's recipe for any model. The run "
        "folder gets config.yaml, split.json, best/, last/, log.csv and curves.png. Under torchrun "
        "(python -m torch.distributed.run --nproc_per_node N -m nexnet train ...) it trains with DDP.",
    )  # fmt: skip
    t.add_argument("--model", default=None, help="registry name (default nexnet_seg); see 'nexnet models'")
    t.add_argument("--dataset", default=None, help="adapter name: see 'nexnet datasets'")
    t.add_argument("--data-root", default=None, help="the dataset folder as downloaded")
    t.add_argument("--split", default=None, help="official, pranet, medico2020, paper, kfold:K/N, seeded or FILE")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--config", action="append", default=None,
                   help="YAML file (e.g. configs/paper_exact.yaml); repeatable, later files win")  # fmt: skip
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.lr=3e-4 --set model.gamma=rmt")  # fmt: skip
    t.add_argument("--epochs", type=int, default=None, help="default 250 (configs/default.yaml), or the --config's")
    t.add_argument("--batch-size", type=int, default=None, help="per process; default 16 (configs/default.yaml)")
    t.add_argument("--image-size", type=int, default=None,
                   help="square side in px, a multiple of 32 (16: UNet, UNet++, TransUNet); default 224")  # fmt: skip
    t.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="default auto: CUDA if present")
    t.add_argument("--amp", action="store_true", help="autocast: bf16 (or fp16 without bf16) on CUDA, bf16 on CPU: "
                   "on CPUs with AMX 1.75x the images/s for nexnet_seg, slower on CPUs without fast bf16 "
                   "(docs/performance.md)")  # fmt: skip
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward pass: +20%% images/s for nexnet_seg with --amp on an "
                        "H100, none on CPU; the first steps wait for the compiler")  # fmt: skip
    t.add_argument("--seed", type=int, default=None, help="training seed: weights, order, augmentation (default 0)")
    t.add_argument("--split-seed", type=int, default=None, help=SPLIT_SEED_HELP)
    t.add_argument("--max-minutes", type=float, default=None,
                   help="time budget: stop before an epoch would pass it; the cosine schedule spans it")  # fmt: skip
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last epoch, from any folder; with --data-root, on "
                        "data that moved (its split's cases must all be there)")  # fmt: skip
    t.add_argument("--mask-suffix", default=None)
    t.add_argument("--skip-bad", action="store_true", help="leave unreadable pairs out")
    t.add_argument("--workers", type=int, default=None, help="decoding processes")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--ssl-checkpoint", default=None,
                   help="a 'nexnet pretrain' run: fuse its encoder's embedding at the bottleneck")  # fmt: skip
    t.add_argument("--freeze-encoder", action="store_true", help="keep the SSL encoder's weights fixed")
    t.set_defaults(func=cmd_train)


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    pt = sub.add_parser(
        "pretrain", help="pretrain the SSL denoising autoencoder on training images",
        description="Train the MaSA U-Net denoising autoencoder on the training part of each dataset's split "
        "(never its validation or test images). Loss 0.7 MSE + 0.2 (1-SSIM) + 0.1 perceptual (with "
        "--vgg-weights; without, 0.78 MSE + 0.22 (1-SSIM)).",
    )  # fmt: skip
    pt.add_argument("--dataset", default=None, help="one or more adapter names, comma-separated")
    pt.add_argument("--data-root", default=None, help="one folder per dataset, comma-separated")
    pt.add_argument("--split", default=None, help="whose training part to use (default: each dataset's usual)")
    pt.add_argument("--out", required=True)
    pt.add_argument("--epochs", type=int, default=None, help="default 100")
    pt.add_argument("--batch-size", type=int, default=None, help="default 16")
    pt.add_argument("--image-size", type=int, default=None, help="a multiple of 32; default 224")
    pt.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    pt.add_argument("--noise", type=float, default=None, help="Gaussian noise sigma on [0, 1] images (default 0.1)")
    pt.add_argument("--vgg-weights", default=None, help="local VGG16 weights (.safetensors or torchvision .pth)")
    pt.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    pt.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="as train's; fine-tuning on this checkpoint needs the same --split and --split-seed",
    )
    pt.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    pt.add_argument("--max-minutes", type=float, default=None)
    pt.add_argument("--workers", type=int, default=None)
    pt.add_argument("--resume", action="store_true")
    pt.add_argument("--quiet", action="store_true")
    pt.set_defaults(func=cmd_pretrain)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("evaluate", help="score a checkpoint on a dataset split (summary.json)",
                       description="Per-case Dice, IoU, precision, recall, specificity, accuracy and HD95 "
                       "at each image's original size, honest protocol (or the authors', labelled).")  # fmt: skip
    e.add_argument("--checkpoint", "--model_path", required=True, help="a best/ folder (save_pretrained)")
    e.add_argument("--dataset", required=True)
    e.add_argument("--data-root", required=True)
    e.add_argument("--split", default=None,
                   help="default: the split the model was trained on (its split.json); another split is refused "
                        "if its scored cases were trained on")  # fmt: skip
    e.add_argument("--split-seed", type=int, default=None, help="default: the model's own split seed, else 0")
    e.add_argument("--subset", choices=["test", "val", "all"], default="test",
                   help="the split's part to score (default test); all: every labelled case, for a dataset the "
                        "model never saw (cross-dataset evaluation)")  # fmt: skip
    e.add_argument("--threshold", default="0.5", help="a number, or 'val' to choose it on the validation split")
    e.add_argument("--tta", action="store_true", help="average probabilities over flips")
    e.add_argument("--protocol", choices=["honest", "paper"], default="honest",
                   help="paper: also the authors' batch-pooled, test-thresholded Dice, labelled")  # fmt: skip
    e.add_argument("--out", default=None, help="folder for summary.json (default: the checkpoint folder)")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--amp", action="store_true", help=AMP_INFERENCE_HELP)
    e.add_argument("--no-graphs", action="store_true", help=NO_GRAPHS_HELP)
    e.set_defaults(func=cmd_evaluate)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="masks (and overlays) for an image or a folder of images",
                       description="Write a 0/255 PNG mask per image at the image's original size (resized to "
                       "the model's input size, thresholded at the checkpoint's threshold, resized back); with "
                       "--overlay, contour overlays and a preview grid. Never writes into the input or "
                       "ground-truth folders.")  # fmt: skip
    p.add_argument("--checkpoint", "--model_path", default=None, help="a best/ folder (save_pretrained)")
    p.add_argument("--onnx", default=None, help="run an exported ONNX file through onnxruntime instead")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder (never the input folder)")
    p.add_argument("--overlay", action="store_true", help="also write contour overlays")
    p.add_argument("--gt", default=None, help="ground-truth mask folder, drawn in blue on overlays")
    p.add_argument("--tta", action="store_true", help="average probabilities over the four flips (4x the time)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto: CUDA if present")
    p.add_argument("--amp", action="store_true", help=AMP_INFERENCE_HELP)
    p.add_argument("--no-graphs", action="store_true", help=NO_GRAPHS_HELP)
    add_part_flags(p, "predict only the images of one part of a split.json, e.g. runs/kvasir/split.json")
    p.set_defaults(func=cmd_predict)


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "reproduce", help="run the paper's Table 1, 2 or 4 as a resumable grid",
        description="Table 1: datasets x models; Table 2: the ablation variants (first dataset found); "
        "Table 4: the profile. Finished runs are skipped, interrupted ones resume. --quick: 64 px, 8 epochs, "
        "batch 16, lr 1e-3, NExNet Seg and UNet on Kvasir, over either recipe (see docs/reproduce.md).",
    )  # fmt: skip
    r.add_argument("--table", required=True, choices=["1", "2", "4"])
    r.add_argument("--data-root", default=None, help="a folder holding the datasets under their usual names")
    r.add_argument("--datasets", type=_csv, default=None, help="comma-separated (default: all six; quick: kvasir)")
    r.add_argument("--models", type=_csv, default=None, help="comma-separated registry names")
    r.add_argument("--quick", action="store_true", help="a reduced grid that runs on 2 CPU cores")
    r.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    r.add_argument("--out", default="results")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key in every run")
    r.add_argument("--paper-exact", action="store_true",
                   help="the paper's recipe (configs/paper_recipe.yaml) for every model and NExNet Seg's "
                        "paper form, in tableN_paper_exact/")  # fmt: skip
    r.set_defaults(func=cmd_reproduce)


def _add_export(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("export", help="export a checkpoint to ONNX, checked with onnxruntime",
                       description="Export to ONNX (needs the onnx extra: pip install 'nexnet-seg[onnx]') and "
                       "compare onnxruntime with PyTorch on a random input and an image.")  # fmt: skip
    x.add_argument("--checkpoint", "--model_path", required=True)
    x.add_argument("--format", default="onnx", choices=["onnx"])
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--dynamic", action="store_true", help="dynamic height and width as well as batch")
    x.add_argument("--image", default=None, help="an image for the check (default: a synthetic one)")
    x.add_argument("--opset", type=int, default=17)
    x.set_defaults(func=cmd_export)


def _add_score(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("score", help="score any folder of predicted masks against ground truth")
    s.add_argument("--pred", required=True, help="predicted masks (0/255, 0/1 or probability PNGs)")
    s.add_argument("--gt", required=True, help="ground-truth masks, paired by file stem")
    s.add_argument("--out", default=None, help="folder for summary.json (default: --pred)")
    add_part_flags(s, "score only the ground truth of one part of a split.json, e.g. runs/kvasir/split.json")
    s.add_argument("--ignore-missing", action="store_true",
                   help="leave out ground-truth masks that have no prediction (default: score them as empty "
                        "masks); either way summary.json counts and names them")  # fmt: skip
    s.set_defaults(func=cmd_score)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("serve", help="serve a model: a web page at / and an HTTP API (POST /predict)",
                       description="Serve one model behind a local web page (drop images, see the contour, "
                       "move the threshold, download the mask) and an HTTP API: POST /predict with a multipart "
                       "'image' returns the 0/255 PNG mask at the image's size, as nexnet predict writes it "
                       "(?format=json: its facts); GET /model, GET /health; API docs at /docs. Needs the "
                       "serve extra: pip install 'nexnet-seg[serve]'.")  # fmt: skip
    v.add_argument("--checkpoint", default=None, help="a best/ folder or a run folder")
    v.add_argument("--onnx", default=None, help="run this exported ONNX file through onnxruntime (with "
                   "--checkpoint, that folder describes the model)")  # fmt: skip
    v.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but this machine's "
                   "own gets a warning (no authentication)")  # fmt: skip
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto: CUDA if present")
    v.add_argument("--amp", action="store_true", help=AMP_INFERENCE_HELP)
    v.add_argument("--tta", action="store_true", help="average over the four flips (4x the time)")
    v.add_argument("--max-batch", type=int, default=8, help="requests that arrive together run as one batch of "
                   "up to this many images")  # fmt: skip
    v.add_argument("--max-upload-mb", type=float, default=30.0, help="larger uploads are refused (413)")
    v.set_defaults(func=cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .runtime import keep_freed_memory

    keep_freed_memory()  # one process per command: reuse freed activations instead of faulting them in
    quiet = getattr(args, "quiet", False)
    before = os.environ.get("NEXNET_QUIET")
    if quiet:
        os.environ["NEXNET_QUIET"] = "1"  # every progress bar, the decoding bars inside the data layer too
    try:
        return int(args.func(args) or 0)
    except NexnetError as e:
        print(f"nexnet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nexnet {args.verb}: interrupted", file=sys.stderr)
        return 130
    finally:
        if quiet and before is None:
            os.environ.pop("NEXNET_QUIET", None)


if __name__ == "__main__":
    raise SystemExit(main())
