"""The FastAPI application: ``POST /predict``, ``GET /model``, ``GET /health`` and the page at ``/``."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image

from ..data import read_image_bytes, resize_image
from ..errors import DataError
from ..inference import to_original_size
from .runner import ModelRunner

DEFAULT_MAX_UPLOAD_MB = 30.0
FORMATS = ("png", "json", "probabilities")
FORMAT_HELP = (
    "png: the 0/255 mask at the image's size; json: its foreground fraction and bounding box; "
    "probabilities: the foreground probability x 255 as an 8-bit PNG (the page thresholds it)"
)


@dataclass
class ServedModel:
    """What the server runs and says about it. ``info`` is what ``GET /model`` returns."""

    runner: ModelRunner
    image_size: int
    threshold: float
    name: str
    info: dict[str, Any]
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1e6)


def png_bytes(array: np.ndarray) -> bytes:
    """A PNG of a uint8 array, encoded as ``nexnet predict`` writes its masks (so the bytes match)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def mask_facts(mask: np.ndarray) -> dict[str, Any]:
    """Foreground fraction and bounding box ``[x_min, y_min, x_max, y_max]`` (inclusive pixels; None if empty)."""
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())] if len(xs) else None
    return {"foreground_fraction": float(mask.mean()), "bbox": box}


def _refuse_large_body(request: Request, limit: int) -> JSONResponse | None:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + 64 * 1024:  # the form's own bytes around the file
        return JSONResponse({"detail": _too_large(limit)}, status_code=413)
    return None


def _too_large(limit: int) -> str:
    return f"upload refused: larger than the server's limit of {limit / 1e6:g} MB (nexnet serve --max-upload-mb)"


async def _decode(upload: UploadFile, limit: int) -> np.ndarray:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, _too_large(limit))
    name = upload.filename or "upload"
    try:
        return await asyncio.to_thread(read_image_bytes, data, name)
    except DataError as e:
        raise HTTPException(400, str(e)) from None


def _validation_line(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one line about the first."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"][1:]) or "request"
    hint = " (send the image file as the multipart form field 'image')" if where == "image" else ""
    return f"{where}: {first['msg']}{hint}"


def _page() -> str:
    return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(served: ServedModel) -> FastAPI:
    """The application around one served model."""
    app = FastAPI(title="nexnet serve", summary=f"{served.name}: binary segmentation masks for images",
                  version="1", description="Research software, not a medical device.")  # fmt: skip

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # noqa: ANN001, ANN202 - starlette's signature
        refused = _refuse_large_body(request, served.max_upload_bytes) if request.method == "POST" else None
        return refused or await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def one_line(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_line(exc)}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return _page()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, "batches_run": served.runner.batches_run,
                "images_run": served.runner.images_run}  # fmt: skip

    @app.get("/model")
    def model() -> dict[str, Any]:
        return served.info

    @app.post("/predict", responses={200: {"content": {"image/png": {}}}})
    async def predict(
        image: Annotated[UploadFile, File(description="an image file (JPEG, PNG, TIFF, BMP, ...)")],
        format: Annotated[str, Query(description=FORMAT_HELP)] = "png",
        threshold: Annotated[float | None, Query(gt=0, lt=1, description="default: the checkpoint's")] = None,
    ) -> Response:
        if format not in FORMATS:
            raise HTTPException(400, f"format={format!r}: use one of {', '.join(FORMATS)}")
        rgb = await _decode(image, served.max_upload_bytes)
        small = await asyncio.to_thread(resize_image, rgb, served.image_size)
        prob = await asyncio.wrap_future(served.runner.submit(small))
        prob = await asyncio.to_thread(to_original_size, prob, *rgb.shape[:2])
        if format == "probabilities":
            return Response(png_bytes(np.round(np.clip(prob, 0, 1) * 255).astype(np.uint8)), media_type="image/png")
        cut = served.threshold if threshold is None else threshold
        mask = prob > cut
        if format == "json":
            return JSONResponse({"model": served.name, "input_size": served.image_size, "threshold": cut,
                                 "width": rgb.shape[1], "height": rgb.shape[0], **mask_facts(mask)})  # fmt: skip
        return Response(png_bytes(mask.astype(np.uint8) * 255), media_type="image/png")

    return app
