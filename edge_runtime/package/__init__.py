"""The edge model package: manifest, verified loading, the engine that runs it, self-check.

A package is a folder (like a Hugging Face model folder) holding `manifest.json`, ONNX graphs
per precision and reference arrays; see docs/runtime.md for the format.
"""

from edge_runtime.package.engine import Engine
from edge_runtime.package.loader import EdgePackage, load_package, read_manifest, sha256_file
from edge_runtime.package.manifest import FORMAT_VERSION, MANIFEST_NAME, Manifest, parse_manifest
from edge_runtime.package.selfcheck import VerifyReport, verify_package

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "EdgePackage",
    "Engine",
    "Manifest",
    "VerifyReport",
    "load_package",
    "parse_manifest",
    "read_manifest",
    "sha256_file",
    "verify_package",
]
