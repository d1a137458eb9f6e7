"""Every kind of bad input gets a one-line error naming the file, or is handled as documented."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from layouts import blob, make_folder, save
from PIL import Image

from nexnet.cli import main
from nexnet.data import get_adapter, read_image, read_mask
from nexnet.data.check import check_dataset
from nexnet.errors import DataError


def png_header_only(path, width, height):
    """A PNG that declares ``width x height`` but holds almost nothing (a decompression bomb's header)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))  # fmt: skip
    return path


def jpeg_bytes(arr, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", **kw)
    return buf.getvalue()


IMAGE, MASK = blob(40, 48, 0)


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("zero.jpg", lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        ("corrupt.png", lambda p: p.write_bytes(os.urandom(300)), "is not an image Pillow can decode"),
        ("cut.jpg", lambda p: p.write_bytes(jpeg_bytes(IMAGE)[:400]), "is truncated"),
        ("notes.jpg", lambda p: p.write_text("this is a note, not a picture\n"), "is a text file, not an image"),
        ("thin.png", lambda p: save(p, np.zeros((1, 4000), np.uint8)), "is 4000x1 px; both sides must be at least 8"),
        ("bomb.png", lambda p: png_header_only(p, 20000, 20000), "refused"),
        ("big.png", lambda p: png_header_only(p, 10001, 10001), "is 100.0 megapixels, more than 100"),
        # Under the 100 MP limit, though past Pillow's own warning at 89.5 MP: read, and so found empty.
        ("large.png", lambda p: png_header_only(p, 9990, 9990), "is truncated"),
        ("broken.tif", lambda p: p.write_bytes(b"II*\x00" + os.urandom(64)), "cannot be decoded"),
    ],
)  # fmt: skip
def test_bad_images_give_one_line_naming_the_file(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(DataError) as e:
        read_image(path)
    text = str(e.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_symlink_loop_is_named(tmp_path):
    link = tmp_path / "loop.jpg"
    os.symlink(link, link)
    with pytest.raises(DataError, match="symbolic link loop"):
        read_image(link)


@pytest.mark.parametrize(
    "make, expected_first_pixel",
    [
        (lambda p: save(p, (np.full((20, 30), 65535, np.uint16))), (255, 255, 255)),  # 16-bit grey
        (lambda p: save(p, np.dstack([IMAGE, np.zeros((40, 48), np.uint8)])), tuple(IMAGE[0, 0])),  # RGBA
        (lambda p: save(p, np.full((20, 30), 77, np.uint8)), (77, 77, 77)),  # grey
        (lambda p: Image.fromarray(IMAGE).convert("P").save(p), None),  # palette
    ],
)
def test_image_modes_become_rgb_uint8(tmp_path, make, expected_first_pixel):
    path = tmp_path / "x.png"
    make(path)
    arr = read_image(path)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    if expected_first_pixel is not None:
        assert tuple(arr[0, 0]) == expected_first_pixel


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(IMAGE).convert("CMYK").save(path)
    arr = read_image(path)
    assert arr.shape == (40, 48, 3) and np.abs(arr.astype(int) - IMAGE).mean() < 20


# --- masks --------------------------------------------------------------------------------------


def write_mask(path, kind):
    if kind == "jpeg_noise":
        path.write_bytes(jpeg_bytes(MASK * 255, quality=60))
    elif kind == "colour":
        save(path, np.dstack([MASK * 200, MASK * 30, np.zeros_like(MASK)]))  # red lesion on black
    elif kind == "bmp_1bit":
        Image.fromarray(MASK * 255).convert("1").save(path)
    elif kind == "palette":
        im = Image.fromarray(MASK, mode="L").convert("P")
        im.putpalette([0, 0, 0, 255, 255, 0] + [0] * 762)
        im.save(path)
    elif kind == "tiff":
        save(path, MASK * 255)
    elif kind == "zero_one":
        save(path, MASK)
    elif kind == "sixteen_bit":
        save(path, MASK.astype(np.uint16) * 65535)
    return path


@pytest.mark.parametrize(
    "kind, suffix",
    [("jpeg_noise", ".jpg"), ("colour", ".png"), ("bmp_1bit", ".bmp"), ("palette", ".png"),
     ("tiff", ".tif"), ("zero_one", ".png"), ("sixteen_bit", ".png")],
)  # fmt: skip
def test_every_mask_encoding_becomes_the_same_0_1_mask(tmp_path, kind, suffix):
    mask = read_mask(write_mask(tmp_path / f"m{suffix}", kind))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert (mask != MASK).mean() < 0.01  # JPEG may move a few edge pixels


def test_mask_with_several_small_labels_is_refused(tmp_path):
    labels = MASK.copy()
    labels[:5] = 2
    path = save(tmp_path / "labels.png", labels)
    with pytest.raises(DataError, match=r"labels.png: mask has 3 label values \(0, 1, 2\)"):
        read_mask(path)


def test_mask_with_grey_label_regions_is_refused(tmp_path):
    labels = MASK * 255
    labels[:20] = 128
    path = save(tmp_path / "grey.png", labels)
    with pytest.raises(DataError, match="grey.png: mask has several label values"):
        read_mask(path)


# --- folders ------------------------------------------------------------------------------------


def folder_problems(root):
    return get_adapter("folder").discover(root).problems


def test_mask_missing_and_mask_without_image(tmp_path):
    make_folder(tmp_path, n=3)
    (tmp_path / "masks" / "img 0 é.png").unlink()
    save(tmp_path / "masks" / "orphan.png", MASK * 255)
    problems = folder_problems(tmp_path)
    assert any("img 0 é.png: no mask" in p for p in problems)
    assert any("orphan.png: mask has no image" in p for p in problems)


def test_two_files_with_one_stem(tmp_path):
    make_folder(tmp_path, n=2)
    save(tmp_path / "images" / "img 1 é.jpg", IMAGE)
    assert any("two files share the stem 'img 1 é'" in p for p in folder_problems(tmp_path))


def test_system_files_are_ignored(tmp_path):
    make_folder(tmp_path, n=2)
    for name in (".DS_Store", "Thumbs.db", "._img 0 é.png", "desktop.ini"):
        (tmp_path / "images" / name).write_bytes(b"\x00\x01")
    found = get_adapter("folder").discover(tmp_path)
    assert len(found.pairs) == 2 and not found.problems and len(found.ignored) == 4


def test_symlink_loop_among_images_is_reported(tmp_path):
    make_folder(tmp_path, n=2)
    loop = tmp_path / "images" / "loop.png"
    os.symlink(loop, loop)
    assert any("loop.png: symbolic link loop" in p for p in folder_problems(tmp_path))


def test_mask_of_another_size(tmp_path):
    make_folder(tmp_path, n=2)
    save(tmp_path / "masks" / "img 0 é.png", np.zeros((10, 20), np.uint8))
    report, _ = check_dataset("folder", tmp_path, workers=1)
    assert any("mask is 20x10 but its image img 0 é.png is 40x40" in p for p in report.problems)


def test_empty_mask_is_allowed_and_counted(tmp_path):
    make_folder(tmp_path, n=4)
    save(tmp_path / "masks" / "img 0 é.png", np.zeros((40, 40), np.uint8))
    report, _ = check_dataset("folder", tmp_path, workers=1)
    assert report.usable and any("empty masks: 1" in line for line in report.lines)


@pytest.mark.parametrize("state, message", [("missing", "data root does not exist"), ("empty", "data root is empty")])
def test_missing_or_empty_data_root(tmp_path, state, message):
    root = tmp_path / "data"
    if state == "empty":
        root.mkdir()
    with pytest.raises(DataError, match=message):
        get_adapter("kvasir").discover(root)


def test_a_data_root_one_level_too_deep_names_its_parent(tmp_path):
    for part in ("images", "masks"):
        (tmp_path / "kvasir" / part).mkdir(parents=True)
        save(tmp_path / "kvasir" / part / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"images: is one part of the dataset at .*kvasir; give --data-root that"):
        get_adapter("kvasir").discover(tmp_path / "kvasir" / "images")
    (tmp_path / "kvasir" / "mine").mkdir()  # a folder of another layout beside a dataset: no such advice
    save(tmp_path / "kvasir" / "mine" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="no Kvasir-SEG layout found"):
        get_adapter("kvasir").discover(tmp_path / "kvasir" / "mine")


def test_wrong_layout_names_the_expected_one(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match="no Kvasir-SEG layout found"):
        get_adapter("kvasir").discover(tmp_path)


def test_check_data_exits_nonzero_with_one_line_per_problem_and_skip_bad(tmp_path, capsys):
    make_folder(tmp_path, n=6)
    (tmp_path / "images" / "img 1 é.png").write_bytes(b"")
    (tmp_path / "masks" / "img 2 é.png").unlink()
    args = ["check-data", "--dataset", "folder", "--data-root", str(tmp_path), "--workers", "1"]
    assert main(args) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 2 and "NOT USABLE" in out
    assert main([*args, "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "readable pairs: 4 of 5" in out and out.count("warning: ") == 2
    assert "the 1 unreadable pair(s) keep their place in these lists" in out  # the split still names it


def test_unknown_dataset_is_one_line(capsys):
    assert main(["check-data", "--dataset", "kvasirr", "--data-root", "."]) == 2
    assert "unknown dataset 'kvasirr'" in capsys.readouterr().err
