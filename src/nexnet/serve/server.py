"""Loading what ``nexnet serve`` serves, and running it under uvicorn."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import NexnetError
from ..inference.backends import load_predictor, refuse_other_model
from ..models.checkpoint import TRAINING_FACTS, Checkpoint

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
NOT_A_DEVICE = "Research software: not a medical device, not for diagnosis."


def require_extra() -> None:
    """One line when the ``[serve]`` extra is not installed."""
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if not _importable(m)]
    if missing:
        raise NexnetError(f"nexnet serve needs the [serve] extra ({', '.join(missing)} missing): "
                          "pip install 'nexnet-seg[serve]'")  # fmt: skip


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _checkpoint_info(record: Checkpoint) -> dict[str, Any]:
    keys = (*TRAINING_FACTS, "image_size", "threshold")
    shown = "/".join(record.path.resolve().parts[-2:])  # e.g. kvasir/best: not the server's file system
    return {"name": record.name, "checkpoint": shown, "config": record.record.get("config", {}),
            **{k: record.record.get(k) for k in keys}}  # fmt: skip


def load_served(checkpoint: str | None, onnx: str | None, device: str = "auto", amp: bool = False,
                tta: bool = False, max_batch: int | None = None, max_upload_mb: float = 30.0,
                openvino: str | None = None) -> Any:  # fmt: skip
    """The ``ServedModel`` for a checkpoint folder, an export (an ONNX file or an OpenVINO folder), or
    both (the checkpoint then describes the model and the export's runtime runs it)."""
    from .app import ServedModel
    from .runner import ModelRunner

    if checkpoint is None and onnx is None and openvino is None:
        raise NexnetError("give --checkpoint DIR (a best/ folder or a run folder), --onnx FILE or --openvino DIR")
    if max_upload_mb <= 0:
        raise NexnetError(f"--max-upload-mb {max_upload_mb}: must be positive")
    record = Checkpoint.read(checkpoint) if checkpoint is not None else None  # read once
    pred: Any = load_predictor(record, onnx, openvino, device, amp)
    exported = onnx if onnx is not None else openvino
    if exported is not None:
        info = {**pred.info, "checkpoint": None}
        if record is not None:
            refuse_other_model(pred, record, "--onnx" if onnx is not None else "--openvino")
            info = _checkpoint_info(record)
        info.update(onnx=Path(onnx).name if onnx else None, openvino=Path(openvino).name if openvino else None)
        parameters = None
    else:
        info = {**_checkpoint_info(record), "onnx": None, "openvino": None}
        parameters = sum(p.numel() for p in pred.model.parameters())
    where, precision = str(pred.device), pred.precision
    info.update(image_size=pred.image_size, threshold=pred.threshold, parameters=parameters, device=where,
                precision=precision, tta=tta, notice=NOT_A_DEVICE)  # fmt: skip
    if max_batch is None:  # one at a time on a CPU: masks equal predict's to the byte; batches pay on a GPU
        max_batch = 8 if where.startswith("cuda") else 1
    info["max_batch"] = max_batch
    runner = ModelRunner(pred, tta=tta, max_batch=max_batch)
    return ServedModel(runner, info, int(max_upload_mb * 1e6))


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on (one bind: no race between a check and
    the server), or one line saying why not. SO_REUSEADDR: a port a stopped server left in TIME_WAIT
    is free."""
    if not 0 < port < 65536:
        raise NexnetError(f"--port {port}: must be between 1 and 65535")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise NexnetError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); "
                          "choose another --port") from None  # fmt: skip
    return sock


def serve(checkpoint: str | None, onnx: str | None, host: str = "127.0.0.1", port: int = 8000,
          device: str = "auto", amp: bool = False, tta: bool = False, max_batch: int | None = None,
          max_upload_mb: float = 30.0, say: Callable[[str], None] = print,
          openvino: str | None = None) -> int:  # fmt: skip
    """Load the model, then serve it until interrupted (Ctrl-C)."""
    require_extra()
    import uvicorn

    from .app import create_app

    with bind(host, port) as sock:  # before the model loads: a taken port fails at once
        served = load_served(checkpoint, onnx, device, amp, tta, max_batch, max_upload_mb, openvino)
        if host not in LOCAL_HOSTS:
            say(f"warning: --host {host} makes the model reachable from other machines; nexnet serve has no "
                "authentication, so put it behind one for anything but a trusted network")  # fmt: skip
        shown = f"[{host}]" if ":" in host else host
        say(f"serving {served.name} ({served.info['device']}, {served.info['precision']}) at http://{shown}:{port}/ "
            f"(API docs at /docs); {NOT_A_DEVICE} Ctrl-C stops it.")  # fmt: skip
        uvicorn.Server(uvicorn.Config(create_app(served), log_level="warning")).run(sockets=[sock])
    return 0
