"""Data pipeline throughput against a training step, measured in one run.

    python benchmarks/bench_data.py [--data-root ../shared/datasets/kvasir_seg] [--size 224] [--batch 32]

Pipeline: cached uint8 arrays -> batch gather -> float on device -> flips, rotation, colour jitter.
Training step: nexnet_seg_s forward, BCE loss, backward and an Adam step on the same batch.
The ratio is the share the pipeline adds to an epoch (target: at most 5%).
Without the shared Kvasir-SEG, random arrays of the same shape stand in (the read path is the same
memory map).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import median_time

import nexnet
from nexnet.data import Augment, BatchLoader, build_arrays, get_adapter

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kvasir_seg"


def arrays(root: Path, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    if root.is_dir():
        cache = build_arrays(get_adapter("kvasir").discover(root).pairs, size)
        return cache.images, cache.masks, f"Kvasir-SEG cache ({len(cache.ids)} images)"
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    np.save(tmp / "i.npy", rng.integers(0, 255, (256, size, size, 3), dtype=np.uint8))
    np.save(tmp / "m.npy", rng.integers(0, 2, (256, size, size), dtype=np.uint8))
    return np.load(tmp / "i.npy", mmap_mode="r"), np.load(tmp / "m.npy", mmap_mode="r"), "random stand-in"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=8, help="pipeline batches to time")
    p.add_argument("--steps", type=int, default=3, help="training steps to time")
    args = p.parse_args()
    images, masks, what = arrays(args.data_root, args.size)
    loader = BatchLoader(images, masks, np.arange(len(images)), args.batch, shuffle=True,
                         augment=Augment(), drop_last=True)  # fmt: skip

    start, n = time.perf_counter(), 0
    for epoch in range(100):
        loader.epoch = epoch
        for batch in loader:
            n += len(batch.index)
            if n >= args.batches * args.batch:
                break
        if n >= args.batches * args.batch:
            break
    per_image = (time.perf_counter() - start) / n

    model = nexnet.create_model("nexnet_seg_s")
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch.images), batch.masks)
        loss.backward()
        opt.step()

    step_time = median_time(step, args.steps, warmup=1)
    pipe_batch = per_image * args.batch
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads; data: {what}; "
          f"{args.size}px, batch {args.batch}")  # fmt: skip
    print(f"pipeline (cached read + augmentation): {1 / per_image:8.1f} images/s, "
          f"{pipe_batch * 1e3:.1f} ms per batch")  # fmt: skip
    print(f"nexnet_seg_s training step:            {args.batch / step_time:8.1f} images/s, "
          f"{step_time * 1e3:.1f} ms per batch")  # fmt: skip
    print(f"pipeline / training step: {pipe_batch / step_time:.3f} (target <= 0.05)")


if __name__ == "__main__":
    main()
