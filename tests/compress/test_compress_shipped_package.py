"""The committed packages: intact, far below the size ceiling, reproduce their torch reference on
this CPU, and `hidiff demo` (what `make demo` runs) works with the default package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edge_runtime import cli
from edge_runtime.package import load_package, verify_package
from edge_runtime.providers import RuntimeOptions
from models.demo import DEFAULT_PACKAGE

PACKAGES = Path(__file__).resolve().parents[2] / "compress" / "packages"


EDGE = PACKAGES / "aphidiff-small-t2-ddim1-edge-cpu"


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", ["aphidiff-tiny-t2-fp32", "aphidiff-tiny-t2-fp32-ddim50"])
def test_committed_tiny_package_verifies(name: str) -> None:
    folder = PACKAGES / name
    pkg = load_package(folder)  # every sha256 checked
    assert _size(folder) < 10 * 2**20
    m = pkg.manifest
    assert m.provenance["compression_recipe"] is None and "fp32" in m.name
    assert (folder / "MODEL_CARD.md").is_file()
    report = verify_package(pkg, "cpu", options=RuntimeOptions(cache_dir=None))
    assert report.passed, report.to_dict()


def test_committed_edge_package() -> None:
    """The shipped edge package (issue 8): the edge-cpu recipe run on the shipped teacher, at
    most 50 MB, at most 4 sampler steps, fp32 graphs (the CPU's) beside INT8 ones (NPUs'), with
    its ledger and card, reproducing its reference on this CPU."""
    pkg = load_package(EDGE)  # every sha256 checked
    m = pkg.manifest
    assert _size(EDGE) <= 50 * 10**6
    assert m.sampler.steps <= 4 and m.grid.shape == (512, 512)
    assert m.provenance["compression_recipe"] == m.provenance["recipe"]["name"] == "edge-cpu"
    assert m.precisions == ("fp32", "int8") and m.reference.precision == "fp32"
    teacher = hashlib.sha256((TEACHER / "weights.safetensors").read_bytes()).hexdigest()
    assert m.provenance["teacher_sha256"] == teacher
    ledger = json.loads(EDGE.with_name(EDGE.name + ".ledger.json").read_text())
    assert ledger["status"] == "ok" and ledger["teacher_hash"] == teacher
    assert (EDGE / "MODEL_CARD.md").is_file()
    report = verify_package(pkg, "cpu", options=RuntimeOptions(cache_dir=None))
    assert report.passed, report.to_dict()


def test_the_demo_defaults_to_the_edge_package() -> None:
    assert DEFAULT_PACKAGE == EDGE


@pytest.mark.slow
def test_demo_with_the_default_package(tmp_path: Path, capsys) -> None:
    """`hidiff demo` on the shipped 512^2 package: 90-140 s on a 2-core CPU, so `slow`; `make
    demo` runs the same command on every fresh clone, and `hidiff demo` itself is tested on a
    small package in tests/compress/test_compress_demo.py."""
    try:
        cli.main(["demo", "--out", str(tmp_path / "demo")])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    name = load_package(EDGE).manifest.name  # the reference's precision is in it, not the folder's
    assert summary["package"] == name and summary["grid"] == [32, 512, 512]
    # the shipped model is weak but real: well above an unrelated image, far below the ceiling
    assert 0.3 < summary["ssim_body_liver_slices"] < 0.9


TEACHER = Path(__file__).resolve().parents[2] / "models" / "teachers" / "aphidiff-small-t2"
FULL = PACKAGES / "aphidiff-small-t2-fp32-ddim50"


def test_shipped_teacher_is_the_full_packages_teacher() -> None:
    """The committed teacher's weights are what its card and the full small package name."""
    digest = hashlib.sha256((TEACHER / "weights.safetensors").read_bytes()).hexdigest()
    assert digest in (TEACHER / "MODEL_CARD.md").read_text()
    manifest = load_package(FULL).manifest  # every sha256 checked
    assert manifest.provenance["teacher_sha256"] == digest
    assert manifest.sampler.steps == 50 and (FULL / "MODEL_CARD.md").is_file()


@pytest.mark.slow
def test_full_small_package_verifies() -> None:
    """50 steps at 512^2: a minute or two on 2 cores, so slow."""
    report = verify_package(load_package(FULL), "cpu", options=RuntimeOptions(cache_dir=None))
    assert report.passed, report.to_dict()
