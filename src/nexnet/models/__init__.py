"""Models. Importing this package registers every model."""

from . import nexnet_seg, segformer, ssl_autoencoder, transunet, unet, unetpp  # noqa: F401  (registers)
from .base import SegmentationModel, from_pretrained, save_pretrained
from .blocks import ConvMaSA, DoubleConv, NExBlock
from .masa import ManhattanSelfAttention
from .nexnet_seg import NExNetSeg
from .registry import create_model, list_models, register_model
from .ssl_weights import load_ssl_encoder, ssl_folder
from .tpen import TPEN

__all__ = [
    "TPEN", "ConvMaSA", "DoubleConv", "ManhattanSelfAttention", "NExBlock", "NExNetSeg",
    "SegmentationModel", "create_model", "from_pretrained", "list_models", "load_ssl_encoder", "register_model",
    "save_pretrained", "ssl_folder",
]  # fmt: skip
