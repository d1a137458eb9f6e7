"""One adapter per dataset: where its files live in the released layout and which splits it knows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .discovery import Discovery, best_mask_suffix, pair_folders
from .sequences import cvc_splits
from .split_tools import Parts, from_list, shipped_list


@dataclass(frozen=True)
class Adapter:
    """A dataset's native layout.

    ``markers`` are relative paths whose presence identifies the dataset folder; ``folder_names``
    are the names it is usually unpacked under, so a data root holding several datasets works.
    """

    name: str
    title: str
    layout: str
    markers: tuple[str, ...]
    folder_names: tuple[str, ...]
    find: Callable[[Path, dict], Discovery]
    splits: tuple[str, ...]
    default_split: str
    options: dict = field(default_factory=dict)
    # The dataset's own splits: (name, sorted ids, seed, notes to append) -> (train, val, test), or
    # None for a split every dataset has (paper, kfold, seeded, its release's official parts).
    own_splits: Callable[[str, list[str], int, list[str]], Parts | None] | None = None
    official: str | None = None  # what "official" means for a release without official parts

    def locate(self, root: Path) -> Path:
        """The dataset folder: ``root`` itself or a usual-named folder up to two levels below it."""
        root = Path(root)
        if not root.exists():
            raise DataError(f"{root}: data root does not exist; check the path given to --data-root")
        if not root.is_dir():
            raise DataError(f"{root}: data root is not a folder")
        if not any(root.iterdir()):
            raise DataError(f"{root}: data root is empty")
        candidates = [root]
        for name in self.folder_names:
            candidates += [root / name, *sorted(root.glob(f"*/{name}"))]
        for c in candidates:
            if any((c / m).is_dir() for m in self.markers):
                return c
        parent = root.resolve().parent
        part_names = {Path(m).name.lower() for m in self.markers} | {"images", "masks"}
        if root.name.lower() in part_names and any((parent / m).is_dir() for m in self.markers):
            raise DataError(f"{root}: is one part of the dataset at {parent}; give --data-root that folder")
        raise DataError(
            f"{root}: no {self.title} layout found (expected {self.layout}); run 'nexnet datasets' for every layout"
        )

    def discover(self, root: Path, **options) -> Discovery:
        folder = self.locate(root)
        found = self.find(folder, {**self.options, **options})
        found.root = folder
        if not found.pairs and not found.problems:
            raise DataError(f"{folder}: no image/mask pairs found (expected {self.layout})")
        return found


def _kvasir(folder: Path, opts: dict) -> Discovery:
    return pair_folders(folder / "images", folder / "masks")


def _cvc(folder: Path, opts: dict) -> Discovery:
    for sub in ("", "PNG", "TIF", "TIFF"):
        base = folder / sub if sub else folder
        if (base / "Original").is_dir():
            return pair_folders(base / "Original", base / "Ground Truth")
    raise DataError(f"{folder}: neither Original/ nor PNG/Original/ found")


def _isic(year: str, sets: dict[str, tuple[str, str]], suffix: str) -> Callable[[Path, dict], Discovery]:
    def find(folder: Path, opts: dict) -> Discovery:
        found = Discovery()
        for subset, (images, masks) in sets.items():
            if (folder / images).is_dir() and (folder / masks).is_dir():
                found.extend(pair_folders(folder / images, folder / masks, suffix, subset, skip=("_superpixels",)))
            elif (folder / images).is_dir():
                found.problems.append(f"{folder / masks}: missing, so the {subset} images are unused")
        return found

    find.__name__ = f"_isic{year}"
    return find


def _ph2(folder: Path, opts: dict) -> Discovery:
    found = Discovery()
    base = folder / "PH2 Dataset images"
    if not base.is_dir():
        base = folder
    for case in sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("IMD")):
        cid = case.name
        image_dir = case / f"{cid}_Dermoscopic_Image"
        lesion_dir = case / f"{cid}_lesion"  # IMDnnn_roi/ holds colour regions, not the lesion
        missing = [d.name for d in (image_dir, lesion_dir) if not d.is_dir()]
        if missing:
            found.problems.append(f"{case}: no {' or '.join(missing)} folder")
            continue
        found.extend(pair_folders(image_dir, lesion_dir, "_lesion"))
    return found


def _folder(folder: Path, opts: dict) -> Discovery:
    suffix = opts.get("mask_suffix")
    if suffix is None:
        suffix = best_mask_suffix(folder / "images", folder / "masks")
    return pair_folders(folder / "images", folder / "masks", suffix)


def _kvasir_splits(name: str, ids: list[str], seed: int, notes: list[str]) -> Parts | None:
    """Kvasir-SEG's own splits: the shipped test lists of PraNet and of Medico 2020."""
    if name not in ("pranet", "medico2020"):
        return None
    train, test = from_list(ids, shipped_list(f"kvasir_{name}_test.txt"), f"kvasir {name}")
    return train, [], test


COMMON_SPLITS = ("paper", "kfold:K/N", "seeded")

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in [
        Adapter(
            "kvasir", "Kvasir-SEG", "Kvasir-SEG/images/<id>.jpg and Kvasir-SEG/masks/<id>.jpg",
            ("images",), ("Kvasir-SEG", "kvasir-seg", "kvasir_seg", "Kvasir_SEG"), _kvasir,
            ("official", "medico2020", "pranet", *COMMON_SPLITS), "pranet",
            own_splits=_kvasir_splits, official="medico2020",
        ),
        Adapter(
            "cvc_clinicdb", "CVC-ClinicDB",
            "CVC-ClinicDB/Original/<n>.tif and 'Ground Truth'/<n>.tif, or PNG/Original/<n>.png and "
            "PNG/'Ground Truth'/<n>.png",
            ("Original", "PNG/Original", "TIF/Original"), ("CVC-ClinicDB", "cvc-clinicdb", "cvc_clinicdb",
                                                          "CVC_ClinicDB"),
            _cvc, ("official", "pranet", "sequence", "seqfold:K/N", *COMMON_SPLITS), "pranet",
            own_splits=cvc_splits, official="pranet",
        ),
        Adapter(
            "isic2016", "ISIC 2016", "ISBI2016_ISIC_Part1_{Training,Test}_Data/ISIC_<id>.jpg and "
            "..._GroundTruth/ISIC_<id>_Segmentation.png",
            ("ISBI2016_ISIC_Part1_Training_Data",), ("ISIC2016", "ISIC-2016", "isic2016"),
            _isic("2016", {
                "train": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
                "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
            }, "_Segmentation"),
            ("official", *COMMON_SPLITS), "official",
        ),
        Adapter(
            "isic2017", "ISIC 2017", "ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_<id>.jpg and "
            "ISIC-2017_..._Part1_GroundTruth/ISIC_<id>_segmentation.png",
            ("ISIC-2017_Training_Data", "ISIC-2017_Validation_Data", "ISIC-2017_Test_v2_Data"),
            ("ISIC2017", "ISIC-2017", "isic2017", "isic2017_256", "isic2017_fullres"),
            _isic("2017", {
                "train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
                "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
                "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
            }, "_segmentation"),
            ("official", *COMMON_SPLITS), "official",
        ),
        Adapter(
            "isic2018", "ISIC 2018 Task 1", "ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_<id>.jpg "
            "and ISIC2018_Task1_..._GroundTruth/ISIC_<id>_segmentation.png",
            ("ISIC2018_Task1-2_Training_Input",), ("ISIC2018", "ISIC-2018", "isic2018"),
            _isic("2018", {
                "train": ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"),
                "val": ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth"),
                "test": ("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth"),
            }, "_segmentation"),
            ("official", *COMMON_SPLITS), "official",
        ),
        Adapter(
            "ph2", "PH2", "PH2Dataset/'PH2 Dataset images'/IMDnnn/IMDnnn_Dermoscopic_Image/IMDnnn.bmp and "
            "IMDnnn_lesion/IMDnnn_lesion.bmp (IMDnnn_roi/ is ignored)",
            ("PH2 Dataset images",), ("PH2Dataset", "PH2", "ph2"), _ph2, COMMON_SPLITS, "seeded",
        ),
        Adapter(
            "folder", "plain folder", "images/<stem>.<ext> and masks/<stem>[suffix].<ext>, paired by stem; "
            "the mask suffix (e.g. _segmentation) is detected or given with --mask-suffix",
            ("images",), (), _folder, COMMON_SPLITS, "seeded",
        ),
    ]
}  # fmt: skip


def get_adapter(name: str) -> Adapter:
    if name not in ADAPTERS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(ADAPTERS)})")
    return ADAPTERS[name]
