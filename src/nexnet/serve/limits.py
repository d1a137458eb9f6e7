"""What keeps one request from hurting the others: a body-size limit enforced on the bytes received
(chunked uploads included), one-line names for uploads, and a bound on concurrent image work."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import HTTPException

FORM_SLACK = 64 * 1024  # the multipart form's own bytes around the file


def too_large(limit: int) -> str:
    return f"upload refused: larger than the server's limit of {limit / 1e6:g} MB (nexnet serve --max-upload-mb)"


class UploadTooLarge(HTTPException):
    """Raised from inside the request body's stream; FastAPI answers it as a 413 like any HTTPException."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


class BodyLimit:
    """Pure ASGI middleware: a request whose declared ``Content-Length`` or received bytes pass
    ``limit`` (plus the form's slack) gets a 413 with one line; the rest of the body is never read."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most = self.limit + FORM_SLACK
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > most:
            await _answer_413(send, self.limit)
            return
        received = 0
        started = False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > most:
                    raise UploadTooLarge(self.limit)
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except UploadTooLarge:  # raised where no exception handler sits (outside a route's body parsing)
            if not started:
                await _answer_413(send, self.limit)


async def _answer_413(send: Any, limit: int) -> None:
    body = json.dumps({"detail": too_large(limit)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def upload_label(filename: str | None) -> str:
    """An upload's name as errors show it: control characters (a newline would split the one line)
    replaced, and at most 120 characters."""
    name = re.sub(r"[\x00-\x1f\x7f]", "?", filename or "") or "upload"
    return name if len(name) <= 120 else name[:117] + "..."
