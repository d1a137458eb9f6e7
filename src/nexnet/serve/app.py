"""The FastAPI application: ``POST /predict``, ``GET /model``, ``GET /health`` and the page at ``/``."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from ..inference import mask_at_size, to_original_size
from .limits import BodyLimit, UploadTooLarge, upload_label
from .runner import ModelRunner

DEFAULT_MAX_UPLOAD_MB = 30.0
FORMATS = ("png", "json", "probabilities")
FORMAT_HELP = (
    "png: the 0/255 mask at the image's size; json: its foreground fraction and bounding box; "
    "probabilities: the foreground probability x 255 as an 8-bit PNG (the page thresholds it)"
)
IMAGE_WORKERS = 2  # images decoded or post-processed at once: bounds memory; more would not be faster


@dataclass
class ServedModel:
    """What the server runs and says about it. ``info`` is what ``GET /model`` returns."""

    runner: ModelRunner
    info: dict[str, Any]  # holds the model's name, input size and threshold
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1e6)

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def image_size(self) -> int:
        return self.info["image_size"]

    @property
    def threshold(self) -> float:
        return self.info["threshold"]


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


def decode_and_shrink(data: bytes, label: str, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The network-size image and the original ``(height, width)``; a DataError names ``label``."""
    rgb = read_image_bytes(data, label)
    return resize_image(rgb, size), rgb.shape[:2]


def answer(served: ServedModel, prob: np.ndarray, shape: tuple[int, int], form: str,
           threshold: float | None) -> Response:  # fmt: skip
    """The network-size probabilities at the image's size, as the asked ``form``, thresholded as
    ``nexnet predict`` thresholds them."""
    if form == "probabilities":
        up = to_original_size(prob, *shape)
        return Response(png_bytes(np.round(np.clip(up, 0, 1) * 255).astype(np.uint8)), media_type="image/png")
    cut = served.threshold if threshold is None else threshold
    mask = mask_at_size(prob, *shape, cut)
    if form == "json":
        return JSONResponse({"model": served.name, "input_size": served.image_size, "threshold": cut,
                             "width": shape[1], "height": shape[0], **mask_facts(mask)})  # fmt: skip
    return Response(png_bytes(mask.astype(np.uint8) * 255), media_type="image/png")


def _validation_line(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one line about the first."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"][1:]) or "request"
    hint = " (send the image file as the multipart form field 'image')" if where == "image" else ""
    return f"{where}: {first['msg']}{hint}"


def _page() -> str:
    return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(served: ServedModel) -> FastAPI:
    """The application around one served model; its runner is closed when the server shuts down."""
    workers = asyncio.Semaphore(IMAGE_WORKERS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(served.runner.close)

    app = FastAPI(title="nexnet serve", summary=f"{served.name}: binary segmentation masks for images",
                  version="1", description="Research software, not a medical device.", lifespan=lifespan)  # fmt: skip
    app.add_middleware(BodyLimit, limit=served.max_upload_bytes)

    @app.exception_handler(RequestValidationError)
    async def one_line(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_line(exc)}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return _page()

    @app.get("/health")
    def health() -> JSONResponse:
        ok = served.runner.alive
        return JSONResponse({"status": "ok" if ok else "model runner stopped", "model": served.name,
                             "batches_run": served.runner.batches_run, "images_run": served.runner.images_run},
                            status_code=200 if ok else 503)  # fmt: skip

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
        limit = served.max_upload_bytes
        data = await image.read(limit + 1)
        if len(data) > limit:
            raise UploadTooLarge(limit)
        async with workers:
            try:
                small, shape = await asyncio.to_thread(decode_and_shrink, data, upload_label(image.filename),
                                                       served.image_size)  # fmt: skip
            except DataError as e:
                raise HTTPException(400, str(e)) from None
        prob = await asyncio.wrap_future(served.runner.submit(small))
        async with workers:
            return await asyncio.to_thread(answer, served, prob, shape, format, threshold)

    return app
