"""Inference: the ``Predictor`` (resize, CUDA graphs, threshold), ``predict`` and ONNX ``export``."""

from .predict_folder import predict
from .predictor import Predictor, mask_at_size, predict_mask, to_original_size

__all__ = ["Predictor", "mask_at_size", "predict", "predict_mask", "to_original_size"]
