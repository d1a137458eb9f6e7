"""Inference: the ``Predictor`` (resize, CUDA graphs, threshold), ``predict`` and ONNX ``export``."""

from .predict_folder import PREDICT_RECORD, find_gt, predict, split_part
from .predictor import Predictor, predict_mask, run_dir_of, to_original_size

__all__ = [
    "PREDICT_RECORD", "Predictor", "find_gt", "predict", "predict_mask", "run_dir_of",
    "split_part", "to_original_size",
]  # fmt: skip
