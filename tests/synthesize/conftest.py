"""Fixtures of the synthesis tests: small packages from the runtime's package factory (real ONNX
graphs, translation-equivariant 3x3 convolutions), CT volumes in any geometry, and `hidiff` run
in-process through its real root (`edge_runtime.cli.main`, one-line errors, exit codes)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from package_factory import PackageSpec, TinyModel, make_package

from edge_runtime import cli
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


@dataclass(frozen=True)
class HidiffRun:
    code: int
    out: str
    err: str


@pytest.fixture
def hidiff(capsys: pytest.CaptureFixture[str]):
    """Run `hidiff ARGS...` in-process through the real root (entry points, error contract)."""

    def run(*args: str) -> HidiffRun:
        code = 0
        try:
            cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return HidiffRun(code, captured.out, captured.err)

    return run


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Optimised graphs and records go to a temporary folder, never ~/.cache."""
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path_factory.mktemp("hidiff-cache")))


@pytest.fixture(scope="session")
def package32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32x32 package (DDIM 4 steps, one T2 output), shared read-only."""
    return make_package(
        tmp_path_factory.mktemp("pkg") / "p32", PackageSpec(model=TinyModel(height=32, width=32))
    )


def package_of_size(dest: Path, size: int) -> Path:
    """The same network (same seeded weights) on a size x size grid."""
    return make_package(dest, PackageSpec(model=TinyModel(height=size, width=size)))
