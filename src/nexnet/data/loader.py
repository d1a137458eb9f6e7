"""Batches from cached arrays: seeded shuffling, sharding across processes, augmentation on device."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .augment import Augment


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, S, S) float in [0, 1]
    masks: torch.Tensor  # (B, 1, S, S) float 0/1
    index: np.ndarray  # rows of the array cache


class BatchLoader:
    """Yields ``Batch`` es of the rows ``index`` of ``images``/``masks`` (uint8 arrays).

    Each epoch's order comes from ``seed + epoch``; with ``world > 1`` each rank takes every
    ``world``-th batch of the same order, so ranks see disjoint data and the same step count.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        index: np.ndarray,
        batch_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.images, self.masks, self.index = images, masks, np.asarray(index)
        self.batch_size, self.device = batch_size, torch.device(device)
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.drop_last, self.rank, self.world = drop_last, rank, world
        self.epoch = 0

    def batches(self) -> list[np.ndarray]:
        order = self.index
        if self.shuffle:
            order = order[np.random.default_rng(self.seed + self.epoch).permutation(len(order))]
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        chunks = [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]
        if self.world > 1:
            chunks = chunks[: len(chunks) - len(chunks) % self.world]  # equal steps on every rank
            chunks = chunks[self.rank :: self.world]
        return chunks

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 101 + self.rank)
        for rows in self.batches():
            sorted_rows = np.sort(rows)  # sequential reads from the memory map
            pos = np.searchsorted(sorted_rows, rows)
            imgs = torch.from_numpy(np.ascontiguousarray(self.images[sorted_rows][pos]))
            msks = torch.from_numpy(np.ascontiguousarray(self.masks[sorted_rows][pos]))
            non_blocking = self.device.type == "cuda"
            imgs = to_model_input(imgs, self.device, non_blocking)
            msks = msks.to(self.device, non_blocking=non_blocking).unsqueeze(1).float()
            if self.augment is not None:
                imgs, msks = self.augment(imgs, msks, gen)
            yield Batch(imgs.contiguous(), msks, rows)


def to_model_input(images: np.ndarray | torch.Tensor, device: torch.device | str,
                   non_blocking: bool = False) -> torch.Tensor:  # fmt: skip
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` float32 in [0, 1] on ``device``: what every model
    takes (no mean/std normalisation); a channels_last view of the uploaded bytes."""
    if not isinstance(images, torch.Tensor):
        array = np.ascontiguousarray(images)
        images = torch.from_numpy(array if array.flags.writeable else array.copy())  # a read-only memory map
    t = images
    return t.to(device, non_blocking=non_blocking).permute(0, 3, 1, 2).float().div_(255)
