"""Safe extraction of an uploaded zip (a DICOM export) before anything reads it.

A zip from a USB stick or an e-mail is untrusted: a member named `../../.bashrc` would write
outside the folder (path traversal), a symlink member would point the reader anywhere on the
disk, and a few kilobytes can declare gigabytes (a zip bomb). Everything is checked from the
central directory before a byte is written, and the bytes actually inflated are counted while
writing, so a header that lies about sizes is caught too. Files that are not images (reports,
viewers shipped on CDs, thumbnails) are skipped with a note instead of failing the upload.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from edge_runtime.errors import InputError

# Single-file volumes the runtime reads (edge_runtime.io); `.mhd` needs its raw file beside it.
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".nrrd")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may expand to; a CT series is ~0.5 MB per slice, ~1000 slices at most."""

    max_total_bytes: int = 2 * 1024**3  # uncompressed, whole archive
    max_files: int = 10_000  # members, directories included
    # Uncompressed / compressed per member. DICOM compresses ~2-4x (air is zeros: up to ~20x);
    # bombs reach 1000x and more.
    max_ratio: float = 100.0
    ratio_min_bytes: int = 1 << 20  # tiny members (headers, text) may compress arbitrarily well


@dataclass
class Extracted:
    """Where the images landed and what was left out (one note per skipped file)."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def safe_member_path(name: str) -> PurePosixPath:
    """The member's relative path, or an InputError for absolute, drive or `..` names."""
    if "\x00" in name:
        raise InputError(f"zip member {name!r}: NUL in the name; upload refused")
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in path.parts:
        raise InputError(f"zip member {name!r} points outside the upload folder; upload refused")
    return path


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _kind(path: PurePosixPath, head: bytes) -> str | None:
    """'dicom', 'volume' or None (not an image) from the name and the first bytes."""
    name = path.name.lower()
    if name.endswith(VOLUME_SUFFIXES):
        return "volume"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"  # preamble-less DICOM; the reader decides
    return None


def check_archive(zf: zipfile.ZipFile, limits: UploadLimits) -> list[zipfile.ZipInfo]:
    """Every check that the central directory allows, before anything is written."""
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise InputError(
            f"zip holds {len(infos)} entries, more than the {limits.max_files} allowed; "
            "upload refused"
        )
    total = 0
    for info in infos:
        safe_member_path(info.filename)
        if _is_symlink(info):
            raise InputError(f"zip member {info.filename!r} is a symbolic link; upload refused")
        total += info.file_size
        big = info.file_size >= limits.ratio_min_bytes
        ratio = info.file_size / max(1, info.compress_size)
        if big and ratio > limits.max_ratio:
            raise InputError(
                f"zip member {info.filename!r} expands {ratio:.0f}x (limit {limits.max_ratio:.0f}x):"
                " looks like a zip bomb; upload refused"
            )
    if total > limits.max_total_bytes:
        raise InputError(
            f"zip expands to {total / 1e6:.0f} MB, more than the "
            f"{limits.max_total_bytes / 1e6:.0f} MB allowed; upload refused"
        )
    return infos


def extract_zip(
    source: str | Path | BinaryIO, dest: str | Path, limits: UploadLimits | None = None
) -> Extracted:
    """Extract the image files of a zip into `dest` (which must be empty or absent)."""
    limits = limits or UploadLimits()
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest}: the extraction folder must be empty")
    try:
        return _extract(source, dest, limits)
    except BaseException:
        # A refused or broken archive leaves nothing behind, not even the members before it.
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _extract(source: str | Path | BinaryIO, dest: Path, limits: UploadLimits) -> Extracted:
    out = Extracted(folder=dest)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"the upload is not a readable zip archive ({exc})") from exc
    with zf:
        infos = check_archive(zf, limits)
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        for info in infos:
            if info.is_dir():
                continue
            rel = safe_member_path(info.filename)
            if rel.name.lower().endswith(".zip"):
                out.skipped.append(f"{info.filename}: nested zip archives are not opened")
                continue
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                written = _copy_member(zf, info, target, written, limits)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InputError(f"zip member {info.filename!r} cannot be read ({exc})") from exc
            with target.open("rb") as fh:
                head = fh.read(132)
            if _kind(rel, head) is None:
                target.unlink()
                out.skipped.append(f"{info.filename}: not a DICOM or volume file, skipped")
                continue
            out.files.append(target)
    if not out.files:
        raise InputError("the zip holds no DICOM, NIfTI, MHA or NRRD file")
    return out


def _copy_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, written: int, limits: UploadLimits
) -> int:
    """Inflate one member, counting real bytes: a header that understates sizes is caught."""
    member_bytes = 0
    with zf.open(info) as src, target.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            member_bytes += len(chunk)
            written += len(chunk)
            if member_bytes > info.file_size or written > limits.max_total_bytes:
                raise InputError(
                    f"zip member {info.filename!r} inflates beyond its declared size or the "
                    "upload limit; upload refused"
                )
            dst.write(chunk)
    return written


def single_volume_name(name: str) -> str:
    """The safe file name to store an uploaded single file under, or InputError."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if not base.lower().endswith(VOLUME_SUFFIXES + DICOM_SUFFIXES):
        raise InputError(
            f"{base!r} is not a NIfTI (.nii, .nii.gz), MHA, NRRD or DICOM file; "
            "upload a zip for a DICOM folder"
        )
    return base
