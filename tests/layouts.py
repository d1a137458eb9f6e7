"""Generated stand-ins for each dataset's native layout, quirks included (no real images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def blob(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with an elliptical 'lesion' and its 0/1 mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ry, rx = rng.uniform(0.15, 0.3) * h, rng.uniform(0.15, 0.3) * w
    mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)
    image = rng.integers(90, 150, size=(h, w, 3), dtype=np.uint8)
    image[mask == 1] = (200, 80, 60)
    return image, mask


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def make_kvasir(root: Path, n: int = 6, size: tuple[int, int] = (60, 80)) -> Path:
    base = root / "Kvasir-SEG"
    for i in range(n):
        image, mask = blob(*size, i)
        save(base / "images" / f"case{i:02d}.jpg", image, quality=90)
        save(base / "masks" / f"case{i:02d}.jpg", np.repeat(mask[:, :, None] * 255, 3, 2), quality=75)
    (root / "Kvasir-SEG" / "kavsir_bboxes.json").write_text("{}")
    return root


def make_cvc(root: Path, n: int = 5, png: bool = False) -> Path:
    import tifffile

    base = root / "CVC-ClinicDB" / ("PNG" if png else "")
    for i in range(1, n + 1):
        image, mask = blob(48, 64, i)
        if png:
            save(base / "Original" / f"{i}.png", image)
            save(base / "Ground Truth" / f"{i}.png", mask * 255)
        else:
            (base / "Original").mkdir(parents=True, exist_ok=True)
            (base / "Ground Truth").mkdir(parents=True, exist_ok=True)
            # The release's quirk: RGB data tagged MinIsBlack with 3 samples, which Pillow refuses.
            tifffile.imwrite(base / "Original" / f"{i}.tif", image, photometric="minisblack", planarconfig="contig")
            noisy = mask * 255
            noisy[0, :5] = 12  # the faint grey noise of some CVC masks
            tifffile.imwrite(base / "Ground Truth" / f"{i}.tif", noisy)
    return root


ISIC = {
    "isic2016": [("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
                 ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth")],
    "isic2017": [("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
                 ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
                 ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth")],
    "isic2018": [("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"),
                 ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth"),
                 ("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth")],
}  # fmt: skip


def make_isic(root: Path, name: str, per_part: int = 3) -> Path:
    suffix = "_Segmentation" if name == "isic2016" else "_segmentation"
    k = 0
    for images, masks in ISIC[name]:
        for _ in range(per_part):
            image, mask = blob(40, 56, k)
            cid = f"ISIC_{k:07d}"
            save(root / images / f"{cid}.jpg", image)
            save(root / masks / f"{cid}{suffix}.png", mask * 255)
            save(root / images / f"{cid}_superpixels.png", image)  # 2017's archive quirk
            k += 1
        (root / images / "ISIC-2017_Training_Data_metadata.csv").write_text("image_id,age\n")
        (root / images / "LICENSE.txt").write_text("CC-BY-NC")
        (root / images / "ATTRIBUTION.txt").write_text("ISIC")
    return root


def make_ph2(root: Path, n: int = 4) -> Path:
    base = root / "PH2Dataset" / "PH2 Dataset images"
    for i in range(1, n + 1):
        cid = f"IMD{i:03d}"
        image, mask = blob(50, 66, i)
        save(base / cid / f"{cid}_Dermoscopic_Image" / f"{cid}.bmp", image)
        lesion = base / cid / f"{cid}_lesion" / f"{cid}_lesion.bmp"
        if i == 2:  # IMD002's lesion mask is RGB 0/255 in the release
            save(lesion, np.repeat(mask[:, :, None] * 255, 3, 2))
        else:  # the others are 1-bit BMPs
            lesion.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask * 255).convert("1").save(lesion)
        save(base / cid / f"{cid}_roi" / f"{cid}_R1_Label4.bmp", np.ones((50, 66), np.uint8) * 255)
    (root / "PH2Dataset" / "PH2_dataset.txt").write_text("Name\n")
    return root


def make_folder(root: Path, n: int = 5, mask_suffix: str = "") -> Path:
    for i in range(n):
        image, mask = blob(40, 40, i)
        save(root / "images" / f"img {i} é.png", image)
        save(root / "masks" / f"img {i} é{mask_suffix}.png", mask * 255)
    return root
