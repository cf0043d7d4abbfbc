"""Masks and statistics the phantom tests share."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from models.phantom.render import tissue_names

CUBE = np.ones((3, 3, 3), dtype=bool)


def eroded(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Erode by one voxel in 3D: what is left has no partial volume (the covered-fraction ramp
    is at most one voxel wide)."""
    return ndimage.binary_erosion(mask, CUBE, iterations=iterations)


def tissue_mask(case, name: str, erode: bool = True) -> np.ndarray:
    idx = tissue_names(case.config).index(name)
    m = case.extras["tissue"] == idx
    return eroded(m) if erode else m


def lesion_type_mask(case, kind: str) -> np.ndarray:
    ids = [r["id"] for r in case.lesion_table if r["type"] == kind]
    return np.isin(case.lesions, ids) if ids else np.zeros(case.lesions.shape, bool)


def equivalent_diameter(voxels: int, voxel_volume: float) -> float:
    return float((6.0 * voxels * voxel_volume / np.pi) ** (1.0 / 3.0))
