import numpy as np
import pytest
from layouts import make_cvc, make_folder, make_isic, make_kvasir, make_ph2

from nexnet.data import build_split, get_adapter, read_image, read_mask
from nexnet.data.check import check_dataset
from nexnet.errors import DataError


def read_all(found):
    for p in found.pairs:
        image, mask = read_image(p.image), read_mask(p.mask)
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert mask.shape == image.shape[:2] and set(np.unique(mask)) <= {0, 1} and mask.max() == 1


def test_kvasir_layout_found_from_parent_or_itself(tmp_path):
    make_kvasir(tmp_path)
    for root in (tmp_path, tmp_path / "Kvasir-SEG"):
        found = get_adapter("kvasir").discover(root)
        assert len(found.pairs) == 6 and not found.problems
    read_all(found)


@pytest.mark.parametrize("png", [False, True])
def test_cvc_tiff_and_png_layouts(tmp_path, png):
    make_cvc(tmp_path, png=png)
    found = get_adapter("cvc_clinicdb").discover(tmp_path)
    assert sorted(p.id for p in found.pairs) == ["1", "2", "3", "4", "5"]
    read_all(found)


@pytest.mark.parametrize("name, parts", [("isic2016", {"train", "test"}),
                                         ("isic2017", {"train", "val", "test"}),
                                         ("isic2018", {"train", "val", "test"})])  # fmt: skip
def test_isic_layouts_ignore_superpixels_csv_and_licences(tmp_path, name, parts):
    make_isic(tmp_path, name)
    found = get_adapter(name).discover(tmp_path)
    assert set(found.subsets()) == parts and all(len(v) == 3 for v in found.subsets().values())
    ignored = {p.name for p in found.ignored}
    assert "LICENSE.txt" in ignored and any("superpixels" in n for n in ignored)
    assert not found.problems
    split = build_split(name, found, "official")
    if name == "isic2016":
        assert len(split.test) == 3 and len(split.val) == 1 and len(split.train) == 2
    else:
        assert (len(split.train), len(split.val), len(split.test)) == (3, 3, 3)
    read_all(found)


def test_ph2_ignores_roi_masks_and_reads_1bit_and_rgb_lesions(tmp_path):
    make_ph2(tmp_path)
    found = get_adapter("ph2").discover(tmp_path)
    assert [p.id for p in found.pairs] == ["IMD001", "IMD002", "IMD003", "IMD004"]
    assert all("_lesion" in p.mask.name for p in found.pairs)
    read_all(found)
    with pytest.raises(DataError, match="no official split"):
        build_split("ph2", found, "official")


@pytest.mark.parametrize("suffix", ["", "_segmentation"])
def test_folder_pairs_by_stem_with_detected_suffix(tmp_path, suffix):
    make_folder(tmp_path, mask_suffix=suffix)
    found = get_adapter("folder").discover(tmp_path)
    assert len(found.pairs) == 5 and not found.problems  # spaces and non-ASCII names included
    read_all(found)


def test_check_data_report_on_a_generated_layout(tmp_path):
    make_kvasir(tmp_path, n=12)
    report, split = check_dataset("kvasir", tmp_path, "seeded", workers=1)
    text = "\n".join(report.lines)
    assert report.usable and "readable pairs: 12 of 12" in text and "60x80" not in text
    assert "80x60 to 80x60" in text and "empty masks: 0" in text
    assert len(split.train) + len(split.val) + len(split.test) == 12
