"""`load_package(path)`: open an edge model package only after proving it is intact.

Order matters: the manifest is parsed (format version first), every path is checked to stay
inside the package folder (no absolute paths, no `..`, no symlink out), every listed file must
exist with its recorded size and sha256. Only then does anything get loaded; and graphs and
arrays are handed out as the very bytes that were hashed (`read_verified`), so a file swapped
between the check and the load is caught too. Nothing is ever written into the package.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import PackageError
from edge_runtime.package.manifest import MANIFEST_NAME, FileEntry, Manifest, parse_manifest
from edge_runtime.samplers import Sampler

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks so large graphs do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inside(root: Path, rel: str) -> Path:
    """`root / rel`, refused unless it resolves (symlinks followed) to a place inside `root`."""
    candidate = root / rel
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise PackageError(
            f"package file {rel} points outside the package folder (to {resolved}); refused"
        )
    return candidate


def check_file(root: Path, entry: FileEntry) -> None:
    """Refuse a listed file that is outside the folder, missing, resized or re-hashed."""
    path = inside(root, entry.path)
    if not path.is_file():
        raise PackageError(f"package file {entry.path} is missing (listed in {MANIFEST_NAME})")
    size = path.stat().st_size
    if size != entry.bytes:
        raise PackageError(
            f"package file {entry.path} has {size} bytes, the manifest says {entry.bytes}: "
            "sha256 check failed (truncated, corrupted or tampered)"
        )
    if sha256_file(path) != entry.sha256:
        raise PackageError(
            f"package file {entry.path} fails its sha256 check (corrupted or tampered); refused"
        )


@dataclass(frozen=True)
class EdgePackage:
    """A package folder whose manifest parsed and whose files all matched their hashes."""

    root: Path
    manifest: Manifest
    # sha256 of the manifest bytes that were parsed: names this exact package version.
    manifest_sha256: str = ""

    @property
    def name(self) -> str:
        return self.manifest.name

    def read_verified(self, rel: str) -> bytes:
        """The bytes of a listed file, hashed again as they are read: what is used is what was
        verified."""
        entry = self.manifest.file(rel)
        data = inside(self.root, rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise PackageError(f"package file {rel} changed after it was verified; refused")
        return data

    def load_array(self, rel: str) -> np.ndarray:
        """A verified .npy array; pickled objects are refused (allow_pickle=False)."""
        try:
            return np.load(io.BytesIO(self.read_verified(rel)), allow_pickle=False)
        except ValueError as exc:
            raise PackageError(f"package file {rel} is not a plain .npy array: {exc}") from exc

    def graph_bytes(self, precision: str, role: str) -> bytes:
        """The verified ONNX graph of `role` ("encoder"/"denoiser") at `precision`."""
        graphs = self.manifest.graphs
        if precision not in graphs:
            raise PackageError(
                f"package {self.name!r} has no {precision} graphs; it ships {sorted(graphs)}"
            )
        return self.read_verified(graphs[precision][role])

    def make_sampler(self) -> Sampler:
        """The manifest's sampler with its timesteps set, ready for a denoising loop."""
        return self.manifest.sampler.build()

    def unlisted_files(self) -> list[str]:
        """Files in the folder that the manifest does not list (ignored by the runtime)."""
        listed = {e.path for e in self.manifest.files} | {MANIFEST_NAME}
        found = []
        for path in sorted(self.root.rglob("*")):
            if path.is_file() or path.is_symlink():
                rel = path.relative_to(self.root).as_posix()
                if rel not in listed:
                    found.append(rel)
        return found


def read_manifest(path: Path | str) -> EdgePackage:
    """The package with its parsed manifest, WITHOUT checking any other file (for display);
    use `load_package` for anything that runs it."""
    root = Path(path)
    if not root.is_dir():
        raise PackageError(f"{root} is not a package folder")
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise PackageError(f"{root} has no {MANIFEST_NAME}: not a HiDiff-Edge package")
    data = manifest_path.read_bytes()
    manifest = parse_manifest(data, source=str(manifest_path))
    return EdgePackage(root, manifest, hashlib.sha256(data).hexdigest())


def load_package(path: Path | str) -> EdgePackage:
    """Parse and verify the package at `path`; PackageError names the first problem found."""
    package = read_manifest(path)
    for entry in package.manifest.files:
        check_file(package.root, entry)
    return package
