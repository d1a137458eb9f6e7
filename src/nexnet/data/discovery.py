"""Finding image/mask pairs in folders, and what to ignore there."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NexnetError
from ..outputs import OUTPUT_RECORDS

# How mask files are named after their image (ISIC: _segmentation; PH2: _lesion).
MASK_SUFFIXES = ("", "_segmentation", "_Segmentation", "_mask", "_lesion")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
# Folder names that mark masks, not images to segment (PH2's IMD002_lesion and IMD002_roi, ISIC's
# ..._GroundTruth, Kvasir's masks).
MASK_FOLDER_MARKS = ("_lesion", "_roi", "_segmentation", "_mask", "_masks", "masks")
SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"}


def _image_stems(folder: Path, look: int = 500) -> set[str]:
    """The stems of the image files among ``folder``'s first ``look`` entries."""
    stems = set()
    try:
        with os.scandir(folder) as entries:
            for i, entry in enumerate(entries):
                if i >= look:
                    break
                if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                    stems.add(Path(entry.name).stem)
    except OSError:
        pass
    return stems


def _pairs_with(folder: Path, stems: set[str]) -> bool:
    """Whether ``folder`` holds images named after ``stems`` (``a.jpg`` beside ``a.png`` or
    ``a_mask.png``): the other half of a dataset."""
    for other in _image_stems(folder):
        cuts = [i for i, c in enumerate(other) if c == "_"]
        if other in stems or any(other[:i] in stems for i in cuts):
            return True
    return False


def source_folders(flag: str, folder: str | os.PathLike | None, besides: Iterable[str | os.PathLike] = (),
                   inputs: Iterable[str | os.PathLike] = ()) -> dict[str, Path]:  # fmt: skip
    """The folders a command must not write into for a source folder given as ``flag``: the folder,
    the dataset root it belongs to (its parent, when a sibling folder holds the other half of the
    pairs, as ``masks/`` beside ``images/``), so that ``--out data/preds`` beside ``data/images``
    is refused, and the folder of datasets that holds that root (``dataset_collection``), found
    from where the root really is and, for a symlinked dataset, from where the link lies.
    ``besides``: the command's own outputs, which are no half of a dataset. ``inputs``: its other
    sources (the predictions being scored): no half of this dataset either, but the dataset that
    holds them still counts toward a folder of datasets."""
    if folder is None:
        return {}
    path = Path(folder).resolve()
    found = {flag: path}
    stems = _image_stems(path) if path.is_dir() else set()
    besides = list(besides)
    skip = {path, *(Path(b).resolve() for b in [*besides, *inputs])}
    siblings = [d for d in _subfolders(path.parent) if d not in skip] if stems else []
    if any(_pairs_with(d, stems) for d in siblings[:20]):
        found[f"dataset (of {flag})"] = path.parent
    root = found.get(f"dataset (of {flag})", path)
    linked = _where_the_link_lies(Path(folder) if root == path else Path(folder).absolute().parent)
    for candidate in dict.fromkeys([root, linked]):
        if (collection := dataset_collection(candidate, outs=besides)) is not None:
            found[f"datasets (holding {flag}'s dataset)"] = collection
            break
    return found


def _where_the_link_lies(folder: Path) -> Path:
    """``folder`` with every link above it followed but not ``folder`` itself (``datasets/kvasir``
    stays there when it links to another disk); ``..`` is followed as the system does."""
    if folder.name in ("", ".", ".."):
        return folder.resolve()
    return Path(os.path.realpath(folder.parent)) / folder.name


# What marks a folder as someone's workspace rather than a folder of datasets: nexnet's records, a
# source tree, a repository, an environment.
WORKSPACE_MARKS = (*OUTPUT_RECORDS, "pyproject.toml", "setup.py", ".git", ".hg", ".venv")
# How many folders a folder of datasets is looked into, at most, to find its datasets.
COLLECTION_LOOKS = 200


def dataset_collection(folder: str | os.PathLike, outs: Iterable[str | os.PathLike] = ()) -> Path | None:
    """``folder``'s parent (as written, without following a link at ``folder``) when it is a folder
    of datasets and one of ``outs`` lies inside it, else None.

    A folder of datasets is named for data (``datasets/``, ``data/``, ``shared_data/``), holds two
    datasets or more and is no workspace. A dataset is a subfolder with two folders side by side
    that pair images with masks (``images/`` and ``masks/``), the pair at most three levels down
    (PH2's ``PH2Dataset/PH2 Dataset images/IMD002/``). A workspace has a dot-folder at its top, or
    ``WORKSPACE_MARKS`` there, or in a subfolder (the one holding the out included) or one level
    below it. So ``~/proj`` holding ``data_a/`` and ``data_b/`` is none, and once ``runs/`` holds
    a run, ``runs/next`` is never refused."""
    parent = Path(os.path.abspath(folder)).parent
    dsts = list(dict.fromkeys(q for o in outs for q in (Path(os.path.abspath(o)), Path(o).resolve())))
    inside = [d for d in dsts if parent in d.parents]
    if "data" not in parent.name.lower() or not inside or parent == Path.home():
        return None
    try:
        entries = list(parent.iterdir())
        if any(e.name.startswith(".") and e.is_dir() for e in entries) or _has_marks(parent):
            return None
        subfolders = sorted(e for e in entries if e.is_dir() and not is_system_file(e))
        if len(subfolders) > 50 or any(_is_workspace(d) for d in subfolders):
            return None
        holding_an_out = {d for d in subfolders if any(d == o or d in o.parents for o in inside)}
        looks = [COLLECTION_LOOKS]
        roots = 0
        for d in subfolders:
            roots += d not in holding_an_out and _holds_dataset(d, looks)
            if roots >= 2:
                return parent
    except OSError:  # an unreadable entry: no claim either way
        return None
    return None


def _has_marks(folder: Path) -> bool:
    return any((folder / mark).exists() for mark in WORKSPACE_MARKS)


def _is_workspace(folder: Path) -> bool:
    """``WORKSPACE_MARKS`` at ``folder``'s top or one level down."""
    return _has_marks(folder) or any(_has_marks(d) for d in _subfolders(folder)[:50])


def _holds_dataset(folder: Path, looks: list[int], depth: int = 3) -> bool:
    """Whether ``folder`` is a dataset root or holds one up to ``depth`` levels down (Kvasir's
    ``kvasir/Kvasir-SEG/``, PH2's ``PH2Dataset/PH2 Dataset images/IMD002/``), shallowest first,
    each folder looked into taken from the budget ``looks[0]``."""
    level = [folder]
    for down in range(depth + 1):
        below = []
        for d in level:
            if looks[0] <= 0:
                return False
            looks[0] -= 1
            subfolders = _subfolders(d)[:20]
            if _pairs_among(subfolders):
                return True
            below += subfolders if down < depth else []
        level = below
    return False


def _is_dataset_root(folder: Path) -> bool:
    """Whether two of ``folder``'s subfolders hold the two halves of image/mask pairs."""
    return _pairs_among(_subfolders(folder)[:20])


def _pairs_among(subfolders: list[Path]) -> bool:
    for d in subfolders:
        stems = _image_stems(d)
        if stems and any(_pairs_with(other, stems) for other in subfolders if other != d):
            return True
    return False


def looks_like_mask_folder(folder: Path) -> bool:
    """Whether ``folder``'s name marks masks (``IMD002_lesion``, ``..._GroundTruth``, ``masks``)."""
    name = folder.name.lower()
    return name.endswith(MASK_FOLDER_MARKS) or "groundtruth" in name or "ground truth" in name


def _subfolders(folder: Path, look: int = 500) -> list[Path]:
    """The subfolders among ``folder``'s first ``look`` entries, sorted, dot-folders left out."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for i, entry in enumerate(entries):
                if i >= look:
                    break
                if not entry.name.startswith(".") and entry.is_dir():
                    found.append(Path(entry.path))
    except OSError:
        return []
    return sorted(found)


@dataclass(frozen=True)
class Pair:
    """One image and its mask. ``id`` is unique within a dataset; ``subset`` is the folder's own
    split (``train``/``val``/``test``) or ``all`` where the release has none."""

    id: str
    image: Path
    mask: Path
    subset: str = "all"


@dataclass
class Discovery:
    """What an adapter found: usable pairs, problems (one line each) and what it ignored."""

    pairs: list[Pair] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    root: Path | None = None

    def extend(self, other: Discovery) -> None:
        self.pairs += other.pairs
        self.problems += other.problems
        self.ignored += other.ignored

    def subsets(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.pairs:
            out.setdefault(p.subset, []).append(p.id)
        return out


def is_system_file(path: Path) -> bool:
    name = path.name.lower()
    return name in SYSTEM_FILES or name.startswith("._") or name.startswith(".")


def list_image_files(folder: Path, found: Discovery, skip: Iterable[str] = ()) -> list[Path]:
    """Image files directly in ``folder``, sorted; anything else goes to ``found.ignored``.

    ``skip`` holds lower-case name fragments that mark files that are not images to segment
    (ISIC's ``_superpixels``). Broken or looping links become problems.
    """
    skip = tuple(skip)
    files = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        try:
            is_file = entry.is_file()  # follows links
        except OSError:
            is_file = False
        if not is_file:
            if entry.is_symlink():
                try:
                    os.stat(path)
                except OSError as e:
                    why = "symbolic link loop" if e.errno == errno.ELOOP else "broken symbolic link"
                    found.problems.append(f"{path}: {why} (skipped)")
            continue
        if (
            is_system_file(path)
            or path.suffix.lower() not in IMAGE_SUFFIXES
            or any(s in path.name.lower() for s in skip)
        ):
            found.ignored.append(path)
            continue
        files.append(path)
    return files


def by_stem(files: list[Path], found: Discovery, strip: str = "") -> dict[str, Path]:
    """Map each stem (less a ``strip`` suffix) to its file; stems held by two files are problems."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        stem = f.stem
        if strip and stem.endswith(strip):
            stem = stem[: -len(strip)]
        groups.setdefault(stem, []).append(f)
    out = {}
    for stem, paths in groups.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            found.problems.append(f"{paths[0].parent}: two files share the stem '{stem}' ({names}); "
                                  "remove one")  # fmt: skip
        else:
            out[stem] = paths[0]
    return out


def pair_folders(
    image_dir: Path,
    mask_dir: Path,
    mask_suffix: str = "",
    subset: str = "all",
    id_prefix: str = "",
    skip: Iterable[str] = (),
) -> Discovery:
    """Pair ``image_dir/STEM.*`` with ``mask_dir/STEM{mask_suffix}.*``."""
    found = Discovery()
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            found.problems.append(f"{folder}: folder missing")
            return found
    images = by_stem(list_image_files(image_dir, found, skip), found)
    masks = by_stem(list_image_files(mask_dir, found, skip), found, strip=mask_suffix)
    for stem, image in images.items():
        mask = masks.get(stem)
        if mask is None:
            found.problems.append(f"{image}: no mask (looked for {mask_dir}/{stem}{mask_suffix}.*)")
            continue
        found.pairs.append(Pair(id_prefix + stem, image, mask, subset))
    for stem, mask in masks.items():
        if stem not in images:
            found.problems.append(f"{mask}: mask has no image (looked for {image_dir}/{stem}.*)")
    return found


def best_mask_suffix(image_dir: Path, mask_dir: Path, candidates: Iterable[str] = MASK_SUFFIXES) -> str:
    """The candidate suffix that pairs the most files (the first on ties)."""
    return _best_suffix({p.stem for p in list_image_files(image_dir, Discovery())}, mask_dir, candidates)


def _best_suffix(stems: set[str], mask_dir: Path, candidates: Iterable[str]) -> str:
    mask_stems = [p.stem for p in list_image_files(mask_dir, Discovery())]
    best, best_n = "", -1
    for suffix in candidates:
        n = sum(1 for s in mask_stems if s.endswith(suffix) and s[: len(s) - len(suffix)] in stems)
        if n > best_n:
            best, best_n = suffix, n
    return best


def find_gt(gt_dir: Path | None, stems: list[str]) -> dict[str, Path]:
    """The ground-truth mask of each of ``stems`` in ``gt_dir``, under the suffix that pairs the most
    (:data:`MASK_SUFFIXES`); empty without a folder.

    Raises:
        NexnetError: ``gt_dir`` is not a folder.
    """
    if gt_dir is None:
        return {}
    if not gt_dir.is_dir():
        raise NexnetError(f"--gt {gt_dir}: not a folder")
    suffix = _best_suffix(set(stems), gt_dir, MASK_SUFFIXES)
    return by_stem(list_image_files(gt_dir, Discovery()), Discovery(), strip=suffix)
