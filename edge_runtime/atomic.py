"""Atomic writes: an output either exists complete or not at all.

Files and folders are written under a hidden temporary name next to their destination and
renamed into place only when complete, so an interrupted run never leaves something that looks
finished. `os.replace` is atomic within one filesystem, which a sibling path guarantees.
"""

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_runtime.errors import DiskFullError, HidiffError

_PARTIAL_TAG = ".partial-"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def is_disk_full(exc: BaseException | None) -> bool:
    """True for the OSErrors of a full disk, a quota or a file-size limit, also when a library
    re-raised one as its own error (pydicom: "With tag (7FE0,0010) got exception: ...")."""
    for _ in range(8):
        if exc is None:
            return False
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path: Path) -> DiskFullError:
    """The one line for an output that did not fit; what was partly written is gone by then."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = f"{shutil.disk_usage(where).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        f"cannot write {path}: no space left on the device ({free}); nothing partial was "
        "kept: free some space or choose another output, then run again"
    )


def _partial_name(final: Path) -> Path:
    return final.parent / f".{final.name}{_PARTIAL_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` (and parents) or raise a clear error saying why it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HidiffError(f"cannot create output folder {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise HidiffError(f"output folder {path} is not writable")
    return path


@contextlib.contextmanager
def atomic_directory(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes `final`, on failure it is removed."""
    final = Path(final)
    ensure_writable_dir(final.parent)
    if final.exists() and not overwrite:
        raise HidiffError(f"{final} already exists; remove it or choose another output")
    tmp = _partial_name(final)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            trash = _partial_name(final)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc) or isinstance(exc, DiskFullError):  # named after `final`, not tmp
            raise disk_full_error(final) from exc
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary sibling and an atomic rename."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    tmp = _partial_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(path) from exc
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Write JSON atomically, indented and with sorted keys so equal objects give equal bytes."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def remove_partials(folder: Path) -> int:
    """Delete leftovers of interrupted atomic writes in `folder`; return how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in folder.iterdir():
        if entry.name.startswith(".") and _PARTIAL_TAG in entry.name:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed
