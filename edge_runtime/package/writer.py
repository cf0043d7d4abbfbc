"""`write_package`: the one way to produce a package folder, so producers cannot get the format
subtly wrong.

`compress/` (and the tests' package factory) hand over the manifest's content and the files;
this module hashes every file, adds `files` and `format_version`, parses the result with the
same strict parser the loader uses (nothing is written if it is refused), writes the folder
atomically (complete or absent) and loads it back with full verification.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_runtime.atomic import atomic_directory
from edge_runtime.errors import PackageError
from edge_runtime.package.loader import EdgePackage, load_package, sha256_file
from edge_runtime.package.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    check_rel_path,
    manifest_from_dict,
)

FileSource = bytes | Path


def _entry(rel: str, source: FileSource) -> dict[str, Any]:
    if isinstance(source, bytes):
        return {"path": rel, "sha256": hashlib.sha256(source).hexdigest(), "bytes": len(source)}
    path = Path(source)
    if not path.is_file():
        raise PackageError(f"cannot package {rel}: {path} is not a file")
    return {"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def complete_manifest(manifest: Mapping[str, Any], files: Mapping[str, FileSource]) -> dict:
    """The manifest with `format_version` and the hashed `files` list added, validated."""
    if "files" in manifest:
        raise PackageError("write_package computes `files` itself; leave it out of the manifest")
    if MANIFEST_NAME in files:
        raise PackageError(f"{MANIFEST_NAME} is written by write_package, not passed as a file")
    for rel in files:
        check_rel_path(rel, f"files[{rel!r}]")
    data = {"format_version": FORMAT_VERSION, **manifest}
    data["files"] = [_entry(rel, files[rel]) for rel in sorted(files)]
    manifest_from_dict(json.loads(json.dumps(data)))  # exactly what the loader will read
    return data


def write_package(
    dest: Path,
    manifest: Mapping[str, Any],
    files: Mapping[str, FileSource],
    overwrite: bool = False,
) -> EdgePackage:
    """Write a verified package folder at `dest` and return it loaded."""
    data = complete_manifest(manifest, files)
    with atomic_directory(Path(dest), overwrite=overwrite) as tmp:
        for rel, source in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                shutil.copyfile(source, target)
        (tmp / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        load_package(tmp)  # the copy on disk verifies before it becomes `dest`
    return load_package(dest)
