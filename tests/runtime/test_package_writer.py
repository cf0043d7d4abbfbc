"""`write_package`: producers get a verified folder or nothing at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from package_factory import TinyModel, encoder_graph

from edge_runtime.errors import HidiffError, PackageError
from edge_runtime.package import load_package
from edge_runtime.package.writer import write_package


def manifest_and_files(pkg: Path) -> tuple[dict, dict[str, bytes]]:
    """The content a producer would pass for an existing valid package."""
    data = json.loads((pkg / "manifest.json").read_text())
    files = {f["path"]: (pkg / f["path"]).read_bytes() for f in data.pop("files")}
    data.pop("format_version")
    return data, files


def test_round_trip_bytes_and_paths(tmp_path: Path, tiny_package: Path) -> None:
    manifest, files = manifest_and_files(tiny_package)
    # a producer may pass big files by path: they are copied and hashed without loading
    files["graphs/fp32/denoiser.onnx"] = tiny_package / "graphs/fp32/denoiser.onnx"
    pkg = write_package(tmp_path / "out", manifest, files)
    assert pkg.manifest.files == load_package(tiny_package).manifest.files
    with pytest.raises(HidiffError, match="already exists"):
        write_package(tmp_path / "out", manifest, files)
    write_package(tmp_path / "out", manifest, files, overwrite=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m, f: m["grid"].update(shape=[0, 16]), "grid"),
        (lambda m, f: m.update(files=[]), "computes `files` itself"),
        (lambda m, f: f.update({"manifest.json": b"{}"}), "written by write_package"),
        (lambda m, f: f.update({"../evil.bin": b"x"}), "points outside the package folder"),
        (lambda m, f: f.pop("reference/case000_noise.npy"), "case000_noise.npy is used"),
    ],
)
def test_refused_content_writes_nothing(tmp_path: Path, tiny_package: Path, change, message):
    manifest, files = manifest_and_files(tiny_package)
    change(manifest, files)
    out = tmp_path / "parent"
    out.mkdir()
    with pytest.raises(PackageError, match=message):
        write_package(out / "pkg", manifest, files)
    assert list(out.iterdir()) == []


def test_coreml_folders_are_hashed_file_by_file(tmp_path: Path, tiny_package: Path) -> None:
    """A .mlpackage is a folder: each of its files is listed and verified (the runtime does
    not execute it; the bytes here stand in for its contents only for hashing)."""
    manifest, files = manifest_and_files(tiny_package)
    files["coreml/denoiser.mlpackage/Manifest.json"] = b'{"fileFormatVersion": "1.0.0"}'
    files["coreml/denoiser.mlpackage/Data/weights.bin"] = encoder_graph(
        TinyModel()
    ).SerializeToString()
    manifest["coreml"] = {"denoiser": "coreml/denoiser.mlpackage"}
    pkg = write_package(tmp_path / "pkg", manifest, files)
    assert len(pkg.manifest.files_under("coreml/denoiser.mlpackage")) == 2
    weights = tmp_path / "pkg/coreml/denoiser.mlpackage/Data/weights.bin"
    data = bytearray(weights.read_bytes())
    data[3] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(PackageError, match=r"weights.bin fails its sha256 check"):
        load_package(tmp_path / "pkg")

    manifest["coreml"] = {"encoder": "coreml/encoder.mlpackage"}
    with pytest.raises(PackageError, match=r"no listed file under coreml/encoder.mlpackage"):
        write_package(tmp_path / "pkg2", manifest, files)
    manifest["coreml"] = {"encoder": "coreml/encoder.onnx"}
    with pytest.raises(PackageError, match=r"not a .mlpackage folder"):
        write_package(tmp_path / "pkg3", manifest, files)
