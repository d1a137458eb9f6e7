"""Atomic file writes: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp and mkdtemp create 0600 files and 0700 folders; outputs get the usual modes instead, so
# that colleagues can read checkpoints and results where the umask allows it.
FILE_MODE, DIR_MODE = 0o666 & ~_umask(), 0o777 & ~_umask()


@contextmanager
def naming_the_target(tmp: str | os.PathLike, path: Path) -> Iterator[None]:
    """Re-raise an ``OSError`` about the temporary ``tmp`` (a file, a folder, or the prefix of one
    being made) or about no file as one about ``path``: the user asked for ``path``, and should read
    that name, not ``.NAME.xxxx.tmp``."""
    try:
        yield
    except OSError as e:
        target = _target_name(e.filename, os.fspath(tmp), path)
        if e.errno is None or target is None:
            raise
        try:
            renamed = type(e)(e.errno, e.strerror, target)
        except TypeError:  # a subclass with its own signature: keep it as it is
            raise e from None
        raise renamed from e


def _target_name(name: Any, tmp: str, path: Path) -> str | None:
    """``path`` (plus what lies below ``tmp``) for an error about ``tmp``; None for another file."""
    if name is None:
        return str(path)
    name = os.fsdecode(name)
    if not name.startswith(tmp):
        return None
    rest = name[len(tmp) :]
    return str(path) + (rest[rest.index(os.sep) :] if os.sep in rest else "")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming_the_target(path.parent / f".{path.name}.", path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with naming_the_target(tmp, path):
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it takes the place of ``path``.

    Where the kernel can, the two folders are exchanged in one atomic rename, so a kill leaves the
    old ``path`` or the new one. Elsewhere ``path`` moves aside first; a kill between the two renames
    leaves ``.NAME.old-PID``, which :func:`restore_interrupted` (run by every reader and writer of
    such folders) puts back. A kill before the swap leaves ``path`` untouched (plus a ``.tmp`` folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    restore_interrupted(path)
    with naming_the_target(path.parent / f".{path.name}.", path):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with naming_the_target(tmp, path):
            os.chmod(tmp, DIR_MODE)
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists() and _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # it holds the old folder now
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's ``renameat2``, looked up once (None where it has none)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic rename (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    kernel, the C library or the file system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def restore_interrupted(path: str | os.PathLike) -> bool:
    """Put back ``path`` from ``.NAME.old-PID`` when a swap by a process that is no longer running
    stopped between its two renames; True if it did."""
    path = Path(path)
    if path.exists():
        return False
    for old in sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            os.replace(old, path)
            return True
    return False


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not in the middle of a swap when it reads
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` then rename ``tmp_path`` onto ``path`` (for libraries that want a path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming_the_target(path.parent / f".{path.name}.", path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        with naming_the_target(tmp, path):
            writer(Path(tmp))
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
