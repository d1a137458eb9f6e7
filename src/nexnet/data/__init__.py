"""Datasets as released: adapters, reading, splits, caching, augmentation, batching, and the one
entry point a run takes its data from (``prepare_data``)."""

from .adapters import ADAPTERS, Adapter, get_adapter
from .augment import Augment
from .cache import ArrayCache, CaseFacts, build_arrays, resize_image, scan
from .config import DataConfig, checked_keys
from .discovery import MASK_SUFFIXES, Discovery, Pair, find_gt
from .loader import Batch, BatchLoader, to_model_input
from .prepare import RunData, discover_and_split, prepare_data, refuse_seen_pixels, seen_pixel_cases
from .readers import read_image, read_image_bytes, read_mask
from .splits import Split, build_split, split_part

__all__ = [
    "ADAPTERS", "MASK_SUFFIXES", "Adapter", "ArrayCache", "Augment", "Batch", "BatchLoader", "CaseFacts", "DataConfig",
    "Discovery", "Pair", "RunData", "Split", "build_arrays", "build_split", "checked_keys", "discover_and_split",
    "find_gt", "get_adapter", "prepare_data", "read_image", "read_image_bytes", "read_mask", "refuse_seen_pixels",
    "resize_image", "scan", "seen_pixel_cases", "split_part", "to_model_input",
]  # fmt: skip
