"""Tiny synthetic runs shared by the training, evaluation and inference tests."""

import socket
import sys

from nexnet.training.config import resolve

TINY = ["model.widths=[4,4,8,8,8,8]", "train.warmup_epochs=1", "train.lr=0.003", "train.eval_batch_size=8"]


def tiny_cfg(data, epochs=2, extra=()):
    return resolve(None, [*TINY, *extra], model__name="nexnet_seg_s", data__dataset="folder",
                   data__data_root=str(data), data__split="seeded", data__image_size=32,
                   train__epochs=epochs, train__batch_size=4, train__device="cpu")  # fmt: skip


def cli_train(data, out, *more):
    return [sys.executable, "-m", "nexnet", "train", "--model", "nexnet_seg_s", "--dataset", "folder",
            "--data-root", str(data), "--split", "seeded", "--out", str(out), "--image-size", "32",
            "--batch-size", "4", "--device", "cpu", "--quiet", *sum((["--set", s] for s in TINY), []), *more]  # fmt: skip


def log_rows(run):
    return (run / "log.csv").read_text().splitlines()[1:]


def free_port() -> str:
    """A TCP port nothing listens on now, so that torchrun runs do not collide or reuse one in TIME_WAIT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])
