"""``nexnet evaluate``: a checkpoint on its own test split, into summary.json."""

from __future__ import annotations

import argparse

from .flags import AMP_INFERENCE_HELP, NO_GRAPHS_HELP, add_data_flags, checkpoint_with_note


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    e = sub.add_parser("evaluate", help="score a checkpoint on a dataset split (summary.json)",
                       description="Per-case Dice, IoU, precision, recall, specificity, accuracy and HD95 "
                       "at each image's original size, honest protocol (or the authors', labelled).")  # fmt: skip
    e.add_argument("--checkpoint", "--model_path", required=True, help="a best/ folder (save_pretrained)")
    add_data_flags(e, split_help="default: the split the model was trained on (its split.json); another split is "
                   "refused if its scored cases were trained on", split_seed_default=None,
                   split_seed_help="default: the model's own split seed, else 0", pair_flags=False,
                   workers=False)  # fmt: skip
    e.add_argument("--subset", choices=["test", "val", "all"], default="test",
                   help="the split's part to score (default test); all: every labelled case, for a dataset the "
                        "model never saw (cross-dataset evaluation)")  # fmt: skip
    e.add_argument("--threshold", default="0.5", help="a number, or 'val' to choose it on the validation split")
    e.add_argument("--tta", action="store_true", help="average probabilities over flips")
    e.add_argument("--protocol", choices=["honest", "paper"], default="honest",
                   help="paper: also the authors' batch-pooled, test-thresholded Dice, labelled")  # fmt: skip
    e.add_argument("--out", default=None,
                   help="folder for summary.json (default: one folder per evaluation, RUN/eval/CHECKPOINT_DATASET_"
                        "SPLIT_SUBSET[_SETTINGS], e.g. runs/kvasir/eval/best_kvasir_pranet_test, or ..._thr-val_tta "
                        "with --threshold val --tta)")  # fmt: skip
    e.add_argument("--skip-bad", action="store_true", help="leave unreadable pairs out and list them (as train does)")
    e.add_argument("--drop-seen", action="store_true",
                   help="leave out the scored cases the model trained or was selected on (by id or pixels; named "
                        "in summary.json) instead of refusing")  # fmt: skip
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--amp", action="store_true", help=AMP_INFERENCE_HELP)
    e.add_argument("--no-graphs", action="store_true", help=NO_GRAPHS_HELP)
    e.add_argument("--onnx", default=None, help="compute the masks with this export of the checkpoint (onnxruntime)")
    e.add_argument("--openvino", default=None,
                   help="compute the masks with this export of the checkpoint (OpenVINO, e.g. int8)")  # fmt: skip
    return e


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate

    checkpoint = checkpoint_with_note(args.checkpoint)
    evaluate(checkpoint, args.dataset, args.data_root, args.split, args.subset, args.threshold,
             args.tta, args.protocol, args.out, args.device, amp=args.amp,
             split_seed=args.split_seed, graphs=not args.no_graphs, to_own_folder=True,
             skip_bad=args.skip_bad, drop_seen=args.drop_seen, onnx=args.onnx, openvino=args.openvino)  # fmt: skip
    return 0
