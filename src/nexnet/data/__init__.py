"""Datasets as released: adapters, reading, splits, caching, augmentation and batching."""

from .adapters import ADAPTERS, Adapter, get_adapter
from .augment import Augment
from .cache import ArrayCache, CaseFacts, build_arrays, scan
from .discovery import Discovery, Pair
from .loader import Batch, BatchLoader
from .readers import read_image, read_mask
from .splits import Split, build_split

__all__ = [
    "ADAPTERS", "Adapter", "ArrayCache", "Augment", "Batch", "BatchLoader", "CaseFacts", "Discovery",
    "Pair", "Split", "build_arrays", "build_split", "get_adapter", "read_image", "read_mask", "scan",
]  # fmt: skip
