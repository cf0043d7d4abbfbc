"""A model package that is not exactly what was shipped is refused before any model code runs.

Through the real `hidiff synthesize` (in-process, so that onnxruntime can be watched): tampered
bytes, files swapped between two packages, a manifest swapped in from another package, paths
and links leading outside the folder, and a newer format version. Each gives exit 2 and one
line naming the problem, no `InferenceSession` is ever created, and nothing is written.
A second test scans every Python file of the project for pickle loading.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from package_factory import PackageSpec, TinyModel, make_package

from edge_runtime import cli
from edge_runtime.io import MedicalImage, write_nifti

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two valid packages of the same shape and different weights."""
    base = tmp_path_factory.mktemp("pair")
    a = make_package(base / "a", PackageSpec(model=TinyModel(seed=1)))
    b = make_package(base / "b", PackageSpec(model=TinyModel(seed=2)))
    return a, b


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vox = np.full((3, 16, 16), -1000.0, np.float32)
    vox[:, 4:12, 4:12] = 60.0
    image = MedicalImage(vox, (0.0, 0.0, 0.0), (1.5, 1.5, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    image.metadata.modality = "CT"
    return write_nifti(image, tmp_path_factory.mktemp("ct") / "ct.nii.gz")


def _manifest(pkg: Path) -> dict:
    return json.loads((pkg / "manifest.json").read_text())


def _write_manifest(pkg: Path, data: dict) -> None:
    (pkg / "manifest.json").write_text(json.dumps(data))


def flipped_byte(pkg: Path, other: Path) -> str:
    rel = "graphs/fp32/denoiser.onnx"
    data = bytearray((pkg / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (pkg / rel).write_bytes(bytes(data))
    return rel


def graph_swapped_from_other(pkg: Path, other: Path) -> str:
    rel = "graphs/fp32/encoder.onnx"
    shutil.copy(other / rel, pkg / rel)
    return rel


def reference_swapped_from_other(pkg: Path, other: Path) -> str:
    rel = next(f["path"] for f in _manifest(pkg)["files"] if f["path"].endswith("output.npy"))
    shutil.copy(other / rel, pkg / rel)
    return rel


def manifest_swapped_from_other(pkg: Path, other: Path) -> str:
    shutil.copy(other / "manifest.json", pkg / "manifest.json")
    return "sha256"


def path_outside(pkg: Path, other: Path) -> str:
    data = _manifest(pkg)
    outside = pkg.parent / "outside.onnx"
    shutil.copy(pkg / "graphs/fp32/encoder.onnx", outside)
    data["graphs"]["fp32"]["encoder"] = "../outside.onnx"
    data["files"][0]["path"] = "../outside.onnx"
    _write_manifest(pkg, data)
    return "outside"


def absolute_path(pkg: Path, other: Path) -> str:
    data = _manifest(pkg)
    data["graphs"]["fp32"]["encoder"] = str(other / "graphs/fp32/encoder.onnx")
    _write_manifest(pkg, data)
    return "encoder"


def symlink_out(pkg: Path, other: Path) -> str:
    rel = "graphs/fp32/denoiser.onnx"
    (pkg / rel).unlink()
    os.symlink(other / rel, pkg / rel)
    return "outside the package"


def newer_format(pkg: Path, other: Path) -> str:
    data = _manifest(pkg)
    data["format_version"] = data["format_version"] + 1
    _write_manifest(pkg, data)
    return "newer than this runtime"


TAMPERINGS: tuple[Callable[[Path, Path], str], ...] = (
    flipped_byte,
    graph_swapped_from_other,
    reference_swapped_from_other,
    manifest_swapped_from_other,
    path_outside,
    absolute_path,
    symlink_out,
    newer_format,
)


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__)
def test_tampered_package_is_refused_before_any_model_code(
    tamper, pair, ct_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    a, b = pair
    pkg = tmp_path / "pkg"
    shutil.copytree(a, pkg)
    expect = tamper(pkg, b)
    sessions: list[tuple] = []
    real = ort.InferenceSession

    def spy(*args, **kwargs):
        sessions.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    code = 0
    try:
        cli.main(["synthesize", str(ct_file), "--package", str(pkg), "--out", str(out)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert code == 2, (code, captured.out, captured.err)
    assert err.startswith("error: ") and err.count("error: ") == 1, err
    assert "Traceback" not in captured.err
    assert expect.lower() in err.lower(), (expect, err)
    assert sessions == [], "model code ran for a refused package"
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_an_untampered_copy_still_runs(pair, ct_file: Path, tmp_path: Path, monkeypatch) -> None:
    """The refusals above are about the tampering, not the copying."""
    pkg = tmp_path / "pkg"
    shutil.copytree(pair[0], pkg)
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "mr.nii.gz"
    try:
        cli.main(["synthesize", str(ct_file), "--package", str(pkg), "--out", str(out)])
    except SystemExit as exc:
        assert not exc.code
    assert out.is_file()


# -- no pickle is loaded anywhere -----------------------------------------------------------------

SOURCE_DIRS = ("edge_runtime", "models", "compress", "benchmarks", "apps")
PICKLE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "_pickle"}


def _problems(path: Path) -> list[str]:
    """Pickle loading in one file: pickle-family imports, torch.load without weights_only=True,
    np.load / numpy.load with allow_pickle other than a literal False, pandas read_pickle."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in PICKLE_MODULES for n in names):
                found.append(f"{where}: imports a pickle module")
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        if func.endswith("read_pickle") or func.endswith("torch.load"):
            wo = kw.get("weights_only")
            if func.endswith("read_pickle") or not (
                isinstance(wo, ast.Constant) and wo.value is True
            ):
                found.append(f"{where}: {func} can unpickle")
        if func in ("np.load", "numpy.load"):
            ap = kw.get("allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                found.append(f"{where}: {func}(allow_pickle={ast.unparse(ap)})")
    return found


def test_no_pickle_is_loaded_anywhere() -> None:
    """safetensors, ONNX and JSON only: np.load defaults to allow_pickle=False, so only an
    explicit True (or a variable) is flagged; torch.load must say weights_only=True."""
    files = [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50
    problems = [p for f in files for p in _problems(f)]
    assert problems == [], "\n".join(problems)


def test_the_pickle_scan_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text(
        "import pickle\nimport numpy as np\nimport torch\n"
        "np.load('x', allow_pickle=True)\ntorch.load('m.pt')\ntorch.load('m.pt', weights_only=True)\n"
    )
    found = _problems(bad)
    assert len(found) == 3, found
