"""nexnet-seg: NExNet Seg and baselines for medical image segmentation."""

from ._version import __version__
from .errors import NexnetError
from .inference import Predictor
from .models import (
    SegmentationModel,
    create_model,
    from_pretrained,
    list_models,
    register_model,
    save_pretrained,
)

__all__ = [
    "NexnetError", "Predictor", "SegmentationModel", "__version__", "create_model", "from_pretrained",
    "list_models", "register_model", "save_pretrained",
]  # fmt: skip
