"""Write a rendered case as the contract's folder (docs/phantom-contract.md, docs/phantom.md).

NIfTI volumes go through SimpleITK (LPS geometry: spacing, origin, identity direction). Its
gzip stream carries no timestamp, and JSON is written with sorted keys, so the same seed and
config give byte-identical files.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from edge_runtime.atomic import atomic_directory, atomic_write_json, ensure_writable_dir
from edge_runtime.errors import HidiffError
from edge_runtime.io.write import write_sitk_image
from models.phantom.case import PhantomCase


def to_image(array: np.ndarray, case: PhantomCase) -> sitk.Image:
    """A SimpleITK image with the case's geometry; a trailing axis of 3 becomes a vector image."""
    vector = array.ndim == 4
    img = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=vector)
    img.SetSpacing(case.grid.spacing)
    img.SetOrigin(case.grid.origin)
    img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return img


def write_nifti(path: Path, array: np.ndarray, case: PhantomCase) -> None:
    """gzip NIfTI, read back before the folder is renamed (ITK ignores a full disk)."""
    write_sitk_image(to_image(array, case), Path(path))


def case_volumes(case: PhantomCase) -> dict[str, np.ndarray]:
    """Every volume of the case folder, by file stem."""
    vols: dict[str, np.ndarray] = dict(case.images)
    vols["labels"] = case.labels
    vols["mr_labels"] = case.mr_labels
    vols["vessels"] = case.vessels
    vols["lesions"] = case.lesions
    vols["motion_ct_to_mr"] = case.motion_ct_to_mr
    vols.update(case.four_dct)
    return vols


def write_case_files(case: PhantomCase, folder: Path, preview: bool = True) -> None:
    """Write all files of `case` into an existing (temporary) folder."""
    folder = Path(folder)
    for stem, arr in sorted(case_volumes(case).items()):
        write_nifti(folder / f"{stem}.nii.gz", arr, case)
    atomic_write_json(folder / "lesions.json", case.lesion_table)
    atomic_write_json(folder / "vessels.json", case.vessel_segments)
    atomic_write_json(folder / "case.json", case.meta)
    if preview:
        from models.phantom.preview import write_preview

        write_preview(case, folder / "preview.png")


def check_output(out_dir: Path) -> Path:
    """Fail early, with one clear line, when `out_dir` cannot be created and written."""
    out_dir = Path(out_dir)
    parent = ensure_writable_dir(out_dir.parent)
    try:
        probe = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.probe-", dir=parent))
        probe.rmdir()
    except OSError as exc:
        raise HidiffError(f"cannot write into {parent}: {exc.strerror or exc}") from exc
    if out_dir.exists() and not out_dir.is_dir():
        raise HidiffError(f"{out_dir} exists and is not a folder")
    return out_dir


def write_case(
    case: PhantomCase, out_dir: Path, overwrite: bool = False, preview: bool = True
) -> Path:
    """Write `case` to `out_dir` atomically: the folder appears complete or not at all."""
    out_dir = check_output(out_dir)
    try:
        with atomic_directory(out_dir, overwrite=overwrite) as tmp:
            write_case_files(case, tmp, preview=preview)
    except OSError as exc:
        raise HidiffError(f"cannot write case folder {out_dir}: {exc.strerror or exc}") from exc
    return out_dir


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_volume(path: Path) -> tuple[np.ndarray, sitk.Image]:
    """(array (z, y, x[, 3]), image) of a case volume."""
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img
