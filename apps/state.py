"""Session state and the resources loaded once per app process.

Packages are verified and ONNX sessions are made once (`st.cache_resource`): a verified
package is immutable, and building a session costs more than synthesizing a small scan.
Per-user state (the open scan, the synthesized volumes) lives in `st.session_state`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from apps.scan import Scan
from edge_runtime.package import EdgePackage, load_package
from edge_runtime.synthesizer import SynthesisResult, Synthesizer

REPO = Path(__file__).resolve().parent.parent
# Where packages are looked for: $HIDIFF_PACKAGES (os.pathsep-separated), else the repository's.
PACKAGES_ENV = "HIDIFF_PACKAGES"
DEMO_ENV = "HIDIFF_APP_DEMO_CASE"
UPLOAD_MB_ENV = "HIDIFF_APP_MAX_UPLOAD_MB"


def package_roots() -> list[Path]:
    env = os.environ.get(PACKAGES_ENV)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [REPO / "compress" / "packages"]


def find_packages() -> list[Path]:
    """Every folder holding a manifest.json under the package roots (looked up each run, so a
    package installed while the app runs appears)."""
    found: list[Path] = []
    for root in package_roots():
        if (root / "manifest.json").is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p.parent for p in root.glob("*/manifest.json")))
    return found


@st.cache_resource(show_spinner="Verifying the model package...")
def get_package(path: str) -> EdgePackage:
    return load_package(path)


@st.cache_resource(show_spinner="Loading the model on the device...")
def get_synthesizer(path: str, provider: str) -> Synthesizer:
    return Synthesizer(get_package(path), provider=provider)


def package_label(path: Path) -> str:
    """'name (DDIM 4 steps, fp32)': enough to tell the compressed from the full model."""
    m = get_package(str(path)).manifest
    precisions = ", ".join(m.graphs)
    return f"{m.name} ({m.sampler.kind.upper()} {m.sampler.steps} steps, {precisions})"


def upload_dir() -> Path:
    """A per-process scratch folder for uploads (removed with the system's temp files)."""
    if "upload_dir" not in st.session_state:
        st.session_state.upload_dir = tempfile.mkdtemp(prefix="hidiff-app-")
    return Path(st.session_state.upload_dir)


@dataclass
class Synthesis:
    """One synthesized volume and what made it."""

    package: str
    provider: str
    sequence: str
    seed: int
    result: SynthesisResult


def current_scan() -> Scan | None:
    return st.session_state.get("scan")


def set_scan(scan: Scan) -> None:
    """A new scan invalidates everything computed on the previous one."""
    st.session_state.scan = scan
    st.session_state.syntheses = {}
    st.session_state.comparison = None
    st.session_state.metrics_cache = {}


def syntheses() -> dict[str, Synthesis]:
    return st.session_state.setdefault("syntheses", {})


def synthesis_key(package: str, provider: str, sequence: str, seed: int) -> str:
    return f"{package}|{provider}|{sequence}|{seed}"
