"""Helpers of the synthesis tests (a module with a unique name, importable from any test
folder): small packages from the runtime's package factory (real ONNX graphs, translation-
equivariant 3x3 convolutions) and CT volumes in any geometry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from package_factory import PackageSpec, TinyModel, make_package

from edge_runtime.io import ImageMetadata, MedicalImage

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# The factory's packages: 1.5 mm pixels, 3 mm slices, HU window [-160, 240], MR range 0..1000.
PACKAGE_SPACING = 1.5


def rotation(axis: Sequence[float], degrees: float) -> tuple[float, ...]:
    """Row-major rotation matrix (Rodrigues) about `axis`: an oblique direction."""
    a = np.asarray(axis, dtype=np.float64)
    a /= np.linalg.norm(a)
    th = np.deg2rad(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    r = np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * k @ k
    return tuple(float(v) for v in r.ravel())


def ct_volume(
    shape: tuple[int, int, int] = (6, 40, 48),
    spacing: tuple[float, float, float] = (PACKAGE_SPACING, PACKAGE_SPACING, 3.0),
    origin: tuple[float, float, float] = (-30.0, -25.5, 112.0),
    direction: Sequence[float] = IDENTITY,
    modality: str = "CT",
    seed: int = 0,
) -> MedicalImage:
    """A CT-like volume: air outside an elliptic body of soft tissue, with a bright blob and
    noise, in HU; every slice different."""
    z, y, x = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:y, 0:x]
    body = ((yy - y / 2) / (0.42 * y)) ** 2 + ((xx - x / 2) / (0.42 * x)) ** 2 < 1
    vox = np.full(shape, -1000.0, dtype=np.float32)
    for k in range(z):
        blob = np.exp(-((yy - y * 0.4 - k) ** 2 + (xx - x * 0.6) ** 2) / 18.0)
        vox[k][body] = (40 + 160 * blob + rng.normal(0, 15, (y, x)))[body]
    return MedicalImage(vox, origin, spacing, tuple(direction), ImageMetadata(modality=modality))


def package_of_size(dest: Path, size: int) -> Path:
    """The same network (same seeded weights) on a size x size grid."""
    return make_package(dest, PackageSpec(model=TinyModel(height=size, width=size)))
