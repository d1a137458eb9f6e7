"""Decode each pair once: per-case facts, and resized uint8 arrays cached on disk.

The cache key covers every source file (path, size, modification time), the target size and the
resize settings, so a changed file or setting builds a new entry and a second run decodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import DataError
from ..io import atomic_directory, atomic_write_json
from .discovery import Pair
from .readers import binarize, describe_values, mask_intensity, read_image

CACHE_VERSION = 2  # bump when reading or resizing changes
RESIZE = "pil-bilinear-image, pil-bilinear-mask>0.5"


CACHE_PARTS = ("facts", "arrays")  # the only folders nexnet writes under the cache root


def cache_root() -> Path:
    return Path(os.environ.get("NEXNET_CACHE_DIR", Path.home() / ".cache" / "nexnet-seg"))


def cache_size() -> int:
    """Bytes held by the decode cache."""
    parts = [cache_root() / p for p in CACHE_PARTS]
    return sum(f.stat().st_size for part in parts if part.is_dir() for f in part.rglob("*") if f.is_file())


def clear_cache() -> int:
    """Delete the decode cache (only the folders nexnet writes there); the bytes freed."""
    import shutil

    freed = cache_size()
    for part in CACHE_PARTS:
        shutil.rmtree(cache_root() / part, ignore_errors=True)
    return freed


@dataclass
class CaseFacts:
    """What decoding one pair tells: its size, raw mask values, foreground fraction and pixel hash."""

    id: str
    width: int = 0
    height: int = 0
    mask_values: str = ""
    foreground: float = 0.0
    pixel_hash: str = ""
    error: str = ""


def _decode_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray, CaseFacts]:
    image = read_image(pair.image)
    raw = mask_intensity(pair.mask)
    mask = binarize(pair.mask, raw)
    if mask.shape != image.shape[:2]:
        raise DataError(
            f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {pair.image.name} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    digest = hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()
    facts = CaseFacts(pair.id, image.shape[1], image.shape[0], describe_values(raw),
                      float(mask.mean()), digest)  # fmt: skip
    return image, mask, facts


def _guarded(pair: Pair, work: Callable[[Pair], tuple]) -> tuple:
    try:
        return work(pair)
    except DataError as e:
        return None, CaseFacts(pair.id, error=str(e))
    except Exception as e:  # an unforeseen decoder failure still names the file
        return None, CaseFacts(pair.id, error=f"{pair.image}: unexpected {type(e).__name__}: {e}")


def _facts_only(pair: Pair) -> tuple:
    return None, _decode_pair(pair)[2]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 image as every model sees it: Pillow bilinear to ``size`` x ``size``. The cache
    and the predictor both call this, so training and inference never resize differently."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def _resized(pair: Pair, size: int) -> tuple:
    image, mask, facts = _decode_pair(pair)
    img = resize_image(image, size)
    m = Image.fromarray(mask * 255).resize((size, size), Image.BILINEAR)
    return (img, (np.asarray(m) > 127).astype(np.uint8)), facts


def _run_resized(args: tuple[Pair, int]) -> tuple:
    pair, size = args
    return _guarded(pair, lambda p: _resized(p, size))


def _run_facts(pair: Pair) -> tuple:
    return _guarded(pair, _facts_only)


def _map(fn: Callable, items: list, workers: int, desc: str) -> list:
    bar = dict(total=len(items), desc=desc, unit="img", dynamic_ncols=True, leave=False,
               disable=os.environ.get("NEXNET_QUIET") == "1")  # --quiet  # fmt: skip
    if workers <= 1 or len(items) < 8:
        return [fn(i) for i in tqdm(items, **bar)]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun the process group already exists: forked workers would inherit its sockets
        # and threads, and spawned ones would re-run the user's script. Pillow decodes and resizes
        # without the GIL, so threads still decode in parallel.
        with ThreadPoolExecutor(workers) as threads:
            return list(tqdm(threads.map(fn, items), **bar))
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
        return list(tqdm(pool.map(fn, items, chunksize=8), **bar))


def _key(pairs: Iterable[Pair], extra: dict) -> str:
    h = hashlib.sha1(json.dumps({"v": CACHE_VERSION, **extra}, sort_keys=True).encode())
    for p in pairs:
        for f in (p.image, p.mask):
            st = f.stat()
            h.update(f"{p.id}|{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def scan(pairs: list[Pair], workers: int | None = None, use_cache: bool = True) -> list[CaseFacts]:
    """Decode every pair and return its facts (errors included), cached by the source files."""
    entry = cache_root() / "facts" / f"{_key(pairs, {'kind': 'facts'})}.json"
    if use_cache and entry.is_file():
        return [CaseFacts(**d) for d in json.loads(entry.read_text())]
    results = _map(_run_facts, pairs, workers or default_workers(), "checking")
    facts = [r[1] for r in results]
    if use_cache:
        try:
            atomic_write_json(entry, [asdict(f) for f in facts])
        except OSError as err:
            _not_kept(err)
    return facts


_SAID_NOT_KEPT: list[bool] = []


def _not_kept(err: OSError) -> None:
    """A cache that cannot be written costs a second decode next time, not the command: say so once."""
    if _SAID_NOT_KEPT:
        return
    _SAID_NOT_KEPT.append(True)
    where = f"{err.strerror}: {err.filename}" if err.filename else str(err)
    print(f"nexnet: note: the decode cache is not kept ({where}); this run decodes into memory. Set "
          "NEXNET_CACHE_DIR to a folder you may write, and the next run decodes nothing", file=sys.stderr)  # fmt: skip


@dataclass
class ArrayCache:
    """Resized pairs as arrays: ``images (N, S, S, 3)`` and ``masks (N, S, S)``, uint8, memory-mapped
    from the cache (or in memory, when the cache cannot be written)."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    facts: dict[str, CaseFacts]
    path: Path

    def index(self, ids: Iterable[str]) -> np.ndarray:
        pos = {cid: i for i, cid in enumerate(self.ids)}
        return np.array([pos[i] for i in ids], dtype=np.int64)


def _arrays_entry(pairs: list[Pair], size: int) -> Path:
    return cache_root() / "arrays" / _key(pairs, {"kind": "arrays", "size": size, "resize": RESIZE})


def is_cached(pairs: list[Pair], size: int) -> bool:
    """Whether :func:`build_arrays` would read ``pairs`` at ``size`` from the cache, decoding nothing."""
    return (_arrays_entry(pairs, size) / "meta.json").is_file()


def build_arrays(pairs: list[Pair], size: int, workers: int | None = None, skip_bad: bool = False) -> ArrayCache:
    """Decoded and resized arrays for ``pairs``; built once, then memory-mapped from the cache (held
    in memory when the cache cannot be written)."""
    entry = _arrays_entry(pairs, size)
    if (entry / "meta.json").is_file():
        meta = json.loads((entry / "meta.json").read_text())
        images, masks = _mapped(entry)
    else:
        images, masks, meta = _decode_arrays(pairs, size, workers)
        try:
            with atomic_directory(entry) as tmp:
                np.save(tmp / "images.npy", images)
                np.save(tmp / "masks.npy", masks)
                atomic_write_json(tmp / "meta.json", meta)
            images, masks = _mapped(entry)
        except OSError as err:
            _not_kept(err)
    facts = {d["id"]: CaseFacts(**d) for d in meta["facts"]}
    bad = [f.error for f in facts.values() if f.error]
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{bad[0]}{more}; --skip-bad leaves unreadable pairs out")
    ids = [cid for cid, f in facts.items() if not f.error]
    return ArrayCache(ids, images, masks, facts, entry)


def _decode_arrays(pairs: list[Pair], size: int, workers: int | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The readable pairs' arrays, stacked, and the cache entry's ``meta.json`` (every pair's facts)."""
    results = _map(_run_resized, [(p, size) for p in pairs], workers or default_workers(), f"decoding at {size}px")
    good = [r for r in results if not r[1].error]
    if not good:
        raise DataError(f"none of the {len(pairs)} pairs could be read: {results[0][1].error}")
    meta = {"size": size, "resize": RESIZE, "facts": [asdict(r[1]) for r in results]}
    return np.stack([r[0][0] for r in good]), np.stack([r[0][1] for r in good]), meta


def _mapped(entry: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(entry / "images.npy", mmap_mode="r"), np.load(entry / "masks.npy", mmap_mode="r")
