"""May a pretrained SSL encoder be fused into this run? Only if its pretraining never read a held-out
image (the weights themselves are copied by ``models.load_ssl_encoder``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..data import RunData, Split, refuse_seen_pixels
from ..errors import NexnetError
from ..models import ssl_folder
from ..models.base import read_config
from ..outputs import SEEN


def check_ssl_ids(checkpoint: str | Path, split: Split) -> None:
    """Before any image is decoded: every image of ``split.dataset`` the checkpoint was pretrained on
    must be in ``split``'s training part."""
    cfg = read_config(ssl_folder(checkpoint))
    if cfg.get("model") != "ssl_autoencoder":
        raise NexnetError(f"--ssl-checkpoint {checkpoint}: holds a {cfg.get('model')}, not an ssl_autoencoder")
    read = cfg.get("images_read")
    if read is None:
        raise NexnetError(f"--ssl-checkpoint {checkpoint}: records no list of the images it was pretrained on "
                          "(made before nexnet checked this); pretrain again")  # fmt: skip
    outside = sorted(set(read.get(split.dataset, [])) - set(split.train))
    if outside:
        raise NexnetError(
            f"--ssl-checkpoint {checkpoint}: pretrained on {len(outside)} {split.dataset} images outside this "
            f"run's training part (e.g. {outside[0]}); pretrain with this run's split ({split.name}) and "
            f"--split-seed {split.seed}"
        )


def ssl_seen_hashes(checkpoint: str | Path) -> set[str]:
    """Pixel hashes of every image an SSL checkpoint was pretrained on (empty if it records none)."""
    seen_file = ssl_folder(checkpoint) / SEEN
    return set(json.loads(seen_file.read_text())["train"]) if seen_file.is_file() else set()


def check_ssl_pixels(checkpoint: str | Path, data: RunData) -> None:
    """After decoding: no validation or test image of this run may be among the pretrained ones, under
    any name or dataset (pixel hashes)."""
    seen_file = ssl_folder(checkpoint) / SEEN
    if not seen_file.is_file():
        raise NexnetError(f"--ssl-checkpoint {checkpoint}: records no pixel hashes of the images it was "
                          "pretrained on (made before nexnet checked this); pretrain again")  # fmt: skip
    seen = ssl_seen_hashes(checkpoint)
    held_out = data.split.val + data.split.test
    fix = f"pretrain with this run's data, split ({data.split.name}) and --split-seed {data.split.seed}"
    refuse_seen_pixels(seen, data, held_out, "validation and test cases", "the SSL checkpoint was pretrained on", fix)
