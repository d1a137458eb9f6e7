"""Decoding images and masks as users bring them, with one-line errors that name the file.

Images become ``(H, W, 3)`` uint8 RGB: grey is expanded, alpha dropped, CMYK and palette
converted, 16-bit scaled. Masks become ``(H, W)`` uint8 0/1 from every common encoding.
"""

from __future__ import annotations

import errno
import io
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

MIN_SIDE = 8  # px; thinner images cannot be resized meaningfully to a square network input
MAX_PIXELS = 100_000_000  # refuse larger images as probable decompression bombs
TIFF_SUFFIXES = {".tif", ".tiff"}


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"{path}: symbolic link loop") from None
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if st.st_size == 0:
        raise DataError(f"{path}: is empty (0 bytes)")


def _open_pil(source: Path | io.BytesIO, label: str | Path) -> Image.Image:
    """``source``: a file or the bytes of one; ``label`` names it in errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. "Corrupt EXIF data": the pixels decide
        # Pillow warns from 89.5 MP and refuses from twice that; the limit here is MAX_PIXELS, checked below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(source)
        except Image.DecompressionBombError:
            raise DataError(
                f"{label}: refused: more than {MAX_PIXELS // 1_000_000} megapixels "
                "(a decompression bomb, or an image that needs downscaling first)"
            ) from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise DataError(_too_large(label, w, h))
    try:
        im.load()
    except OSError as e:
        raise _decode_error(label, e) from None
    return im


def _decode_error(path: str | Path, e: Exception) -> DataError:
    if "truncated" in str(e).lower():
        return DataError(f"{path}: is truncated (an incomplete download or copy?)")
    return DataError(f"{path}: cannot be decoded ({e})")


def _read_tiff(source: Path | io.BytesIO, label: str | Path) -> np.ndarray:
    """A TIFF Pillow cannot read, through tifffile: its size checked from the header before any
    pixel is decoded (the same limit as Pillow's path), from the start of ``source``."""
    import tifffile

    if isinstance(source, io.BytesIO):
        source.seek(0)  # Pillow has read into it
    try:
        with tifffile.TiffFile(source) as tif:
            series = tif.series[0]
            size = dict(zip(series.axes, series.shape))
            w, h = int(size.get("X", 0)), int(size.get("Y", 0))
            planes = math.prod(int(n) for axis, n in size.items() if axis not in "YXS")  # pages, depth, ...
            if w * h * planes > MAX_PIXELS:  # asarray() decodes them all
                raise DataError(_too_large(label, w, h, planes))
            arr = np.asarray(series.asarray())
            if series.axes.endswith("SYX"):  # colour planes stored apart: channels last
                arr = np.moveaxis(arr, -3, -1)
    except DataError:
        raise
    except Exception as e:  # tifffile raises many types for bad files
        raise DataError(f"{label}: cannot be decoded as a TIFF ({e})") from None
    if arr.ndim < 2 or arr.size == 0:
        raise DataError(f"{label}: cannot be decoded as a TIFF (no pixel data)")
    return arr


def _too_large(label: str | Path, w: int, h: int, planes: int = 1) -> str:
    pages = f"{planes} planes of " if planes > 1 else ""
    return (f"{label}: refused: {pages}{w}x{h} is {w * h * planes / 1e6:.1f} megapixels, more than "
            f"{MAX_PIXELS // 1_000_000} (a decompression bomb, or an image that needs downscaling first)")  # fmt: skip


def _is_text(head: bytes) -> bool:
    try:
        text = head[:512].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _decode(
    source: Path | io.BytesIO, label: str | Path, tiff: bool, head: Callable[[], bytes]
) -> Image.Image | np.ndarray:
    """Pillow first, then tifffile for TIFFs Pillow cannot read; one-line errors naming ``label``."""
    try:
        return _open_pil(source, label)
    except UnidentifiedImageError:
        if tiff:
            return _read_tiff(source, label)
        if _is_text(head()):
            raise DataError(f"{label}: is a text file, not an image") from None
        raise DataError(f"{label}: is not an image Pillow can decode (corrupt or unknown format)") from None
    except OSError as e:
        if tiff:
            return _read_tiff(source, label)
        raise _decode_error(label, e) from None


def decode(path: str | os.PathLike) -> Image.Image | np.ndarray:
    """Open an image file: a PIL image, or a numpy array for TIFFs that Pillow cannot read."""
    path = Path(path)
    _check_file(path)

    def head() -> bytes:
        with open(path, "rb") as f:
            return f.read(512)

    return _decode(path, path, path.suffix.lower() in TIFF_SUFFIXES, head)


def decode_bytes(data: bytes, label: str) -> Image.Image | np.ndarray:
    """:func:`decode` for an image held in memory (an upload); ``label`` names it in errors."""
    if not data:
        raise DataError(f"{label}: is empty (0 bytes)")
    tiff = data[:4] in (b"II*\x00", b"MM\x00*")
    return _decode(io.BytesIO(data), label, tiff, lambda: data[:512])


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Integer or float pixel data to uint8: 16-bit by /257, floats in [0, 1] by *255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        top = 1.0 if float(np.nanmax(arr, initial=0)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(arr) * (255.0 / top), 0, 255).round().astype(np.uint8)
    top = float(arr.max(initial=0))
    scale = 257.0 if top > 255 else 1.0  # 16-bit data uses the full 0..65535 range
    return np.clip(arr / scale, 0, 255).round().astype(np.uint8)


def _check_shape(path: str | Path, arr: np.ndarray) -> None:
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise DataError(f"{path}: is {w}x{h} px; both sides must be at least {MIN_SIDE} px")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB array."""
    return _as_rgb(decode(path), Path(path))


def read_image_bytes(data: bytes, label: str = "upload") -> np.ndarray:
    """:func:`read_image` for the bytes of an image file (an upload); errors name ``label``."""
    return _as_rgb(decode_bytes(data, label), label)


def _as_rgb(im: Image.Image | np.ndarray, label: str | Path) -> np.ndarray:
    if isinstance(im, Image.Image):
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            arr = _scale_to_uint8(np.asarray(im))
        else:
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            arr = np.asarray(im.convert("RGB"))
    else:
        arr = _scale_to_uint8(im)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (1, 2):  # grey, grey + alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[:, :, :3]  # drop alpha (and any extra samples)
    else:
        raise DataError(f"{label}: unsupported image layout {arr.shape}")
    _check_shape(label, arr)
    return np.ascontiguousarray(arr)


def mask_intensity(path: str | os.PathLike) -> np.ndarray:
    """One value per pixel before binarising: palette indices, or the brightest channel."""
    path = Path(path)
    im = decode(path)
    if isinstance(im, Image.Image):
        if im.mode == "1":
            arr = np.asarray(im).astype(np.uint8)
        elif im.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            arr = np.asarray(im)  # palette masks: the indices are the labels
        elif im.mode in ("LA", "PA"):
            both = np.asarray(im)
            arr = _colour_or_alpha(both[:, :, 0], both[:, :, 1])
        elif im.mode in ("RGBA", "RGBa", "La"):
            rgba = np.asarray(im.convert("RGBA"))
            arr = _colour_or_alpha(rgba[:, :, :3].max(axis=2), rgba[:, :, 3])
        else:
            arr = np.asarray(im.convert("RGB")).max(axis=2)  # any channel above half
    elif im.ndim == 3 and im.shape[2] in (2, 4):  # grey or RGB, with alpha
        arr = _colour_or_alpha(im[:, :, :-1].max(axis=2), im[:, :, -1])
    else:
        arr = im if im.ndim == 2 else im[:, :, :3].max(axis=2)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    _check_shape(path, arr)
    return arr


def _colour_or_alpha(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The colour channels, or the alpha channel when the mask is drawn in it alone (constant colour,
    say black, under a varying alpha), which would otherwise read as an empty mask."""
    if colour.min() == colour.max() and alpha.min() != alpha.max():
        return alpha
    return colour


def binarize(path: Path | str, arr: np.ndarray) -> np.ndarray:
    """0/1 uint8 from a mask's intensities; raises when it holds several labels.

    Masks stored as 0/1 are kept as they are. Otherwise the values that cover more than 2% of the
    pixels are grouped (values within 48 of each other join, which absorbs JPEG noise); two groups
    are background and foreground, split halfway; more than two are several labels.
    """
    top = float(arr.max(initial=0))
    if top <= 1:  # stored as 0/1: thresholding at 127 would empty it
        return (arr >= 0.5).astype(np.uint8)
    values = np.unique(arr)
    if top < 32 and len(values) > 2:
        shown = ", ".join(str(v) for v in values[:8])
        raise DataError(
            f"{path}: mask has {len(values)} label values ({shown}); nexnet segments one class, "
            "so merge the labels into 0/255 (or 0/1) first"
        )
    u8 = _scale_to_uint8(arr)
    counts = np.bincount(u8.ravel(), minlength=256)
    common = np.flatnonzero(counts > 0.02 * u8.size)
    groups = np.split(common, np.flatnonzero(np.diff(common) > 48) + 1)
    if len(groups) > 2:
        shown = ", ".join(f"{g[0]}" if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in groups)
        raise DataError(f"{path}: mask has several label values (large regions at {shown}); expected a binary mask")
    threshold = (groups[0][-1] + groups[1][0]) / 2 if len(groups) == 2 else 127
    return (u8 > threshold).astype(np.uint8)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """An ``(H, W)`` uint8 array of 0/1."""
    return binarize(path, mask_intensity(path))


def describe_values(arr: np.ndarray) -> str:
    """A short summary of a raw mask's values, for reports: '{0,255}', '{0,1}', '{0,255}+noise(14)'."""
    values = np.unique(arr)
    if len(values) <= 4:
        return "{" + ",".join(str(int(v)) for v in values) + "}"
    return "{" + f"{int(values.min())},{int(values.max())}" + "}+noise"
