"""Shared pieces of the serve tests: a served checkpoint, a live server, multipart uploads, and the
browser run that also makes the README's screenshot:

    python tests/serving.py --url http://127.0.0.1:8000/ --image IMAGE --out docs/figures/serve_page.png
"""

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def set_threshold_to_median(best: Path, images: list[Path]) -> float:
    """Give a tiny checkpoint the median of its probabilities as its threshold, so that its masks hold
    both classes (a barely trained model sits near 0.5 and would give all-foreground masks)."""
    import numpy as np

    from nexnet.data import read_image, resize_image
    from nexnet.inference import Predictor
    from nexnet.inference.predictor import to_original_size

    pred = Predictor.load(best, "cpu")
    probs = [to_original_size(pred.probabilities(resize_image(read_image(f), pred.image_size)[None])[0],
                              *read_image(f).shape[:2]) for f in images]  # fmt: skip
    threshold = float(np.median(np.concatenate([p.ravel() for p in probs])))
    cfg = json.loads((best / "config.json").read_text())
    (best / "config.json").write_text(json.dumps({**cfg, "threshold": threshold}))
    return threshold


def wait_for(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    """Until ``url`` answers, the process dies, or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {process.stderr.read()}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2).read()
            return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@contextlib.contextmanager
def live_server(checkpoint: Path, port: str, *more: str):
    """``nexnet serve`` in a subprocess on 127.0.0.1:port, stopped on exit."""
    cmd = [sys.executable, "-m", "nexnet", "serve", "--checkpoint", str(checkpoint), "--port", port,
           "--device", "cpu", *more]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field ``image``, and its content type."""
    boundary = "nexnet-test-boundary-7f3a"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_image(url: str, path: Path, timeout: float = 60) -> bytes:
    body, content_type = multipart(path.name, path.read_bytes())
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def browser_missing() -> str:
    """Why the browser test cannot run here ('' when it can)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        return f"{CHROMIUM} and {CHROMEDRIVER} are absent (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return ""


def drive_page(url: str, image: Path, screenshot: Path, timeout: float = 90, rotated: Path | None = None) -> dict:
    """Load the page in headless Chromium, upload ``image``, wait for its overlay, save a screenshot,
    then move the threshold slider up by 0.10 with the keyboard. With ``rotated`` (a JPEG made by
    :func:`exif_rotated_jpeg`), also upload it and measure how the page drew it. Returns what the page showed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, timeout)
        wait.until(lambda d: "Model " in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "files").send_keys(str(image.resolve()))
        card = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "figure[data-state=done], figure[data-state=error]")
        )
        if card.get_attribute("data-state") == "error":
            raise AssertionError(f"the page showed an error: {card.text}")
        before = (card.get_attribute("data-threshold"), int(card.get_attribute("data-foreground")))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))  # at the model's own threshold
        slider = card.find_element(By.CSS_SELECTOR, "input[type=range]")
        slider.send_keys(*[Keys.ARROW_RIGHT] * 10)
        after = (card.get_attribute("data-threshold"), int(card.get_attribute("data-foreground")))
        left_red = _left_red_share(driver, wait, rotated) if rotated else None
        return {"model_line": driver.find_element(By.ID, "model").text, "notice": driver.find_element(By.ID, "notice").text,
                "caption": card.text, "before": before, "after": after, "left_red": left_red}  # fmt: skip
    finally:
        driver.quit()


def exif_rotated_jpeg(path: Path) -> Path:
    """A 60 x 40 JPEG, left half red and right half blue as stored, whose EXIF says: turn 90 degrees to show."""
    import numpy as np
    from PIL import Image

    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :30], pixels[:, 30:] = (255, 0, 0), (0, 0, 255)
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    im.save(path, exif=exif, quality=95)
    return path


def _left_red_share(driver, wait, rotated: Path) -> float:  # noqa: ANN001
    """Upload ``rotated``; of the non-green pixels the page drew in its left quarter, the share that is
    red. The stored pixels give about 1; pixels turned by the EXIF orientation (and squeezed into the
    mask's shape) about 0.5."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "files").send_keys(str(rotated.resolve()))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f'figure[data-name="{rotated.name}"][data-state="done"]'))
    return driver.execute_script(f"""
        const c = document.querySelector('figure[data-name="{rotated.name}"] canvas');
        const px = c.getContext("2d").getImageData(0, 0, Math.floor(c.width / 4), c.height).data;
        let red = 0, counted = 0;
        for (let i = 0; i < px.length; i += 4) {{
            if (px[i + 1] > 150 && px[i] < 100) continue;  // the green contour
            counted++; if (px[i] > px[i + 2]) red++;
        }}
        return red / counted;""")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Screenshot the nexnet serve page with one image on it.")
    p.add_argument("--url", default="http://127.0.0.1:8000/")
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args()
    print(drive_page(a.url, a.image, a.out))
