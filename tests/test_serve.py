"""nexnet serve: the API against nexnet predict, bad uploads, the request batching, a load test on a
live server and the page in headless Chromium."""

import io
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed (pip install -e '.[serve]')")

from conftest import shared_dataset  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serving import (
    browser_missing,
    drive_page,
    exif_rotated_jpeg,
    live_server,
    multipart,
    post_image,
    set_threshold_to_median,
)  # noqa: E402
from tiny import free_port, tiny_cfg  # noqa: E402

from nexnet.cli import main  # noqa: E402
from nexnet.inference import predict  # noqa: E402
from nexnet.serve.app import create_app  # noqa: E402
from nexnet.serve.runner import ModelRunner  # noqa: E402
from nexnet.serve.server import load_served  # noqa: E402
from nexnet.training import train  # noqa: E402


@pytest.fixture(scope="module")
def served(data, tmp_path_factory):
    """A tiny trained checkpoint with a threshold that splits its pixels, and nexnet predict's masks."""
    root = tmp_path_factory.mktemp("serve")
    train(tiny_cfg(data, epochs=2), root / "run", quiet=True)
    images = sorted((data / "images").iterdir())[:8]
    set_threshold_to_median(root / "run" / "best", images)
    for f in images:
        (root / "inputs").mkdir(exist_ok=True)
        (root / "inputs" / f.name).write_bytes(f.read_bytes())
    predict(root / "run" / "best", root / "inputs", root / "masks", device="cpu", say=lambda s: None)
    return root / "run" / "best", images, root / "masks"


def client(best, **kw):
    return TestClient(create_app(load_served(str(best), None, "cpu", **kw)))


def upload(c, name, data, query=""):
    return c.post(f"/predict{query}", files={"image": (name, data, "application/octet-stream")})


def test_masks_equal_nexnet_predict_byte_for_byte(served):
    best, images, masks = served
    c = client(best)
    mixed = 0
    for f in images:
        r = upload(c, f.name, f.read_bytes())
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content == (masks / f"{f.stem}.png").read_bytes(), f.name
        mask = np.asarray(Image.open(io.BytesIO(r.content)))
        assert mask.shape == np.asarray(Image.open(f)).shape[:2]  # the image's own size
        mixed += 0 < mask.mean() < 255
    assert mixed >= len(images) // 2  # masks with both classes: the comparison could fail


def test_json_gives_the_masks_facts(served):
    best, images, masks = served
    c = client(best)
    f = images[0]
    facts = upload(c, f.name, f.read_bytes(), "?format=json").json()
    mask = np.asarray(Image.open(masks / f"{f.stem}.png")) > 0
    ys, xs = np.nonzero(mask)
    assert facts["foreground_fraction"] == pytest.approx(mask.mean())
    assert facts["bbox"] == [xs.min(), ys.min(), xs.max(), ys.max()]
    assert (facts["width"], facts["height"]) == (mask.shape[1], mask.shape[0])
    assert facts["model"] == "nexnet_seg_s" and facts["input_size"] == 32
    strict = upload(c, f.name, f.read_bytes(), "?format=json&threshold=0.999").json()
    assert strict["threshold"] == 0.999 and strict["foreground_fraction"] <= facts["foreground_fraction"]


def test_probabilities_threshold_to_the_mask(served):
    best, images, masks = served
    c = client(best)
    threshold = c.get("/model").json()["threshold"]
    for f in images[:3]:
        prob = np.asarray(Image.open(io.BytesIO(upload(c, f.name, f.read_bytes(), "?format=probabilities").content)))
        mask = np.asarray(Image.open(masks / f"{f.stem}.png")) > 0
        assert prob.dtype == np.uint8 and prob.shape == mask.shape
        near = np.abs(prob / 255 - threshold) <= 0.5 / 255  # 8-bit rounding can move these across
        assert ((prob / 255 > threshold) == mask)[~near].all()


def test_model_health_page_and_openapi(served):
    import json

    best, _, _ = served
    c = client(best)
    saved = json.loads((best / "config.json").read_text())
    info = c.get("/model").json()
    assert (info["name"], info["dataset"], info["split"]) == ("nexnet_seg_s", "folder", "seeded")
    assert info["val_dice"] == saved["val_dice"] and info["threshold"] == saved["threshold"]
    assert info["config"]["widths"] == [4, 4, 8, 8, 8, 8] and info["parameters"] > 0
    assert info["checkpoint"] == "run/best"  # the run's own name, not the server's file system
    assert c.get("/health").json()["status"] == "ok"
    page = c.get("/")
    assert page.status_code == 200 and "not a medical device" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere: works offline
    assert "/predict" in c.get("/openapi.json").json()["paths"] and c.get("/docs").status_code == 200


def png_claiming(width, height):
    """A PNG whose header claims width x height; its pixels are never decoded."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


def encoded(array, fmt):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


BAD = {
    "bomb": (png_claiming(20_000, 20_000), 400, "megapixels"),
    "text": (b"patient,label\n1,polyp\n", 400, "text file, not an image"),
    "noise": (bytes(range(256)) * 4, 400, "not an image"),
    "truncated": (None, 400, "truncated"),
    "tiny": (encoded(np.zeros((4, 4, 3), np.uint8), "PNG"), 400, "at least 8 px"),
    "empty": (b"", 400, "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_uploads_get_one_line_and_the_next_request_works(served, case):
    best, images, masks = served
    c = client(best)
    data, status, words = BAD[case]
    if data is None:
        data = encoded(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "JPEG")[:-300]
    r = upload(c, f"{case}.png", data)
    detail = r.json()["detail"]
    assert r.status_code == status and words in detail and "\n" not in detail and f"{case}.png" in detail
    good = upload(c, images[0].name, images[0].read_bytes())
    assert good.status_code == 200 and good.content == (masks / f"{images[0].stem}.png").read_bytes()


def test_an_upload_name_cannot_break_the_one_line(served):
    best, _, _ = served
    body, content_type = multipart("notes\nsecond line.txt", b"just text")  # the name sent raw, as curl can
    r = client(best).post("/predict", content=body, headers={"Content-Type": content_type})
    assert r.json()["detail"] == "notes?second line.txt: is a text file, not an image"


def test_oversized_uploads_and_bad_queries_are_refused(served):
    best, images, _ = served
    c = client(best, max_upload_mb=0.005)  # 5000 bytes: the synthetic images are under 4000
    big = encoded(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8), "PNG")
    r = upload(c, "big.png", big)
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["detail"]
    declared = upload(c, "huge.png", b"\0" * 100_000)  # refused from its Content-Length, before parsing
    assert declared.status_code == 413 and "--max-upload-mb" in declared.json()["detail"]
    lines = [upload(c, "a.png", images[0].read_bytes(), "?format=tiff").json()["detail"],
             upload(c, "a.png", images[0].read_bytes(), "?threshold=1.5").json()["detail"],
             c.post("/predict").json()["detail"]]  # fmt: skip
    assert "format='tiff'" in lines[0] and lines[1].startswith("threshold:") and "field 'image'" in lines[2]
    assert upload(c, images[0].name, images[0].read_bytes()).status_code == 200


def test_a_chunked_upload_is_cut_off_once_it_passes_the_limit(served):
    """No Content-Length to refuse up front: the server counts the bytes as they arrive and stops reading
    (here after a few of the 10 MB's chunks), instead of taking the whole body first."""
    import asyncio

    best, _, _ = served
    app = create_app(load_served(str(best), None, "cpu", max_upload_mb=0.005))
    body, content_type = multipart("big.png", b"\0" * 10_000_000)
    chunks = [body[i : i + 10_000] for i in range(0, len(body), 10_000)]
    taken = 0

    async def receive():
        nonlocal taken
        taken += 1
        if taken > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[taken - 1], "more_body": taken < len(chunks)}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", content_type.encode()), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413 and b"--max-upload-mb" in sent[1]["body"]
    assert taken < 20  # of 1001 chunks: the rest is never read


class SlowDouble:
    """A predictor whose first batch waits until released; returns each image's mean as its map."""

    image_size = 4

    def __init__(self):
        self.release, self.batches = threading.Event(), []

    def probabilities(self, images, batch_size=8, tta=False):
        if not self.batches:
            self.release.wait(10)
        self.batches.append(len(images))
        if (images == 13).all():
            raise RuntimeError("bad batch")
        return images.mean(axis=3, dtype=np.float32)


def test_runner_batches_what_queued_meanwhile_and_survives_errors():
    double = SlowDouble()
    runner = ModelRunner(double, max_batch=3)
    images = [np.full((4, 4, 3), v, np.uint8) for v in range(6)]
    futures = [runner.submit(images[0])]
    time.sleep(0.2)  # the first batch is running (and waits)
    futures += [runner.submit(im) for im in images[1:]]
    gone = runner.submit(images[1])
    assert gone.cancel()  # a request that went away before its turn (a client disconnect, a timeout)
    double.release.set()
    assert [f.result(10)[0, 0] for f in futures] == list(range(6))
    assert double.batches == [1, 3, 2]  # never more than max_batch, no request waited, the cancelled one dropped
    assert runner.alive
    with pytest.raises(RuntimeError, match="bad batch"):
        runner.submit(np.full((4, 4, 3), 13, np.uint8)).result(10)
    assert runner.submit(images[2]).result(10)[0, 0] == 2  # the thread lives on
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.submit(images[0])


def test_serve_command_says_what_is_wrong_in_one_line(served, monkeypatch, capsys):
    import importlib.util

    import uvicorn

    best, _, _ = served
    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets: started.append(sockets[0].getsockname()))
    assert main(["serve", "--checkpoint", str(best.parent), "--host", "0.0.0.0", "--port", free_port()]) == 0
    out = capsys.readouterr().out
    assert started[0][0] == "0.0.0.0" and "warning: --host 0.0.0.0" in out and "not a medical device" in out
    assert main(["serve", "--checkpoint", str(best), "--max-upload-mb", "0"]) == 2
    assert main(["serve"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--checkpoint", str(best), "--port", str(taken.getsockname()[1])]) == 2
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    assert main(["serve", "--checkpoint", str(best)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and "positive" in errors[0] and "--checkpoint" in errors[1]
    assert "cannot listen there" in errors[2] and "pip install 'nexnet-seg[serve]'" in errors[3]


def chunked_upload(port, size):
    """POST ``size`` bytes as a chunked multipart upload (no Content-Length); the status and body."""
    import http.client

    boundary = "nexnet-chunked"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    chunks = [head, *[b"\0" * 10_000] * (size // 10_000), f"\r\n--{boundary}--\r\n".encode()]
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    connection.request("POST", "/predict", body=iter(chunks), encode_chunked=True,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    response = connection.getresponse()
    return response.status, response.read().decode()


def test_load_200_requests_from_8_clients_on_a_live_server(served):
    import json
    import urllib.request

    best, images, masks = served
    expected = {f.name: (masks / f"{f.stem}.png").read_bytes() for f in images}
    port = free_port()
    with live_server(best, port, "--max-upload-mb", "0.05") as url:

        def one(i):
            f = images[i % len(images)]
            return f.name, post_image(url + "predict", f, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(200), timeout=240))
        status, body = chunked_upload(port, 2_000_000)  # no Content-Length: counted as it arrives
        health = json.loads(urllib.request.urlopen(url + "health", timeout=10).read())
    assert len(answers) == 200 and health["images_run"] == 200 and health["status"] == "ok"
    assert [name for name, mask in answers if mask != expected[name]] == []  # every mask: predict's, to the byte
    assert status == 413 and "--max-upload-mb" in body


@pytest.mark.skipif(bool(browser_missing()), reason=browser_missing() or "-")
def test_the_page_in_headless_chromium(served, data, tmp_path):
    best, images, _ = served
    try:
        image = sorted((shared_dataset("kvasir_seg") / "images").iterdir())[0]
    except pytest.skip.Exception:
        image = images[0]  # the shared data is absent: a synthetic image proves the same
    with live_server(best, free_port()) as url:
        shown = drive_page(url, image, tmp_path / "page.png", rotated=exif_rotated_jpeg(tmp_path / "turned.jpg"))
    assert "nexnet_seg_s" in shown["model_line"] and "folder" in shown["model_line"]
    assert "not a medical device" in shown["notice"] and image.name in shown["caption"]
    (t0, fg0), (t1, fg1) = shown["before"], shown["after"]
    assert float(t1) == pytest.approx(float(t0) + 0.10) and fg1 <= fg0  # a higher threshold keeps fewer pixels
    assert Image.open(tmp_path / "page.png").size[0] > 500
    assert shown["left_red"] > 0.9  # the page draws a JPEG's pixels as stored, where the server's mask lies


def test_onnx_serves_the_masks_predict_onnx_writes(served, tmp_path):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    from nexnet.errors import NexnetError
    from nexnet.inference.export import export_onnx

    best, images, _ = served
    export_onnx(best, tmp_path / "m.onnx", say=lambda s: None)
    predict(None, images[0].parent, tmp_path / "masks", onnx=tmp_path / "m.onnx", say=lambda s: None)
    c = TestClient(create_app(load_served(str(best), str(tmp_path / "m.onnx"))))
    for f in images[:3]:
        assert upload(c, f.name, f.read_bytes()).content == (tmp_path / "masks" / f"{f.stem}.png").read_bytes()
    info = c.get("/model").json()
    assert info["onnx"] == "m.onnx" and info["dataset"] == "folder" and "onnxruntime" in info["device"]
    alone = load_served(None, str(tmp_path / "m.onnx")).info  # the file alone still says what it learnt on
    assert alone["checkpoint"] is None and (alone["dataset"], alone["val_dice"]) == (info["dataset"], info["val_dice"])
    assert alone["val_dice"] is not None
    with pytest.raises(NexnetError, match="--amp applies to --checkpoint"):
        load_served(str(best), str(tmp_path / "m.onnx"), amp=True)
