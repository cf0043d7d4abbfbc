"""Pieces every page shares: the banner, the scan picker, the linked slice viewer, synthesis.

User errors (`HidiffError`) are shown as the runtime's one-line message with `st.error`; the
page goes on, so the next scan or click works.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort
import streamlit as st

from apps import analysis, state
from apps.scan import SEQUENCES, Scan, open_path, open_upload
from apps.upload import UploadLimits
from edge_runtime.errors import HidiffError
from edge_runtime.providers import AUTO_ORDER, PROFILES

BANNER = (
    "**Synthetic images, for research only, not for diagnosis.** The MRI shown here is computed "
    "from the CT by a model; it was not acquired from the patient. Nothing leaves this computer."
)
T = TypeVar("T")


def page_setup(title: str) -> None:
    """Page config, the research-use banner and the scan picker: the top of every page."""
    st.set_page_config(
        page_title=f"HiDiff-Edge: {title}", page_icon=":material/biotech:", layout="wide"
    )
    st.warning(BANNER, icon=":material/science:")
    st.title(title)
    scan_sidebar()


def guarded(fn: Callable[[], T]) -> T | None:
    """Run `fn`; a user error becomes its one-line message in the page, not a traceback."""
    try:
        return fn()
    except HidiffError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


def upload_limits() -> UploadLimits:
    mb = int(os.environ.get(state.UPLOAD_MB_ENV, "2048"))
    return UploadLimits(max_total_bytes=mb * 1024 * 1024)


def scan_sidebar() -> None:
    """Open a scan: the demo case, a path on this computer, or an upload."""
    sb = st.sidebar
    sb.header("Scan")
    demo = os.environ.get(state.DEMO_ENV)
    sources = (["Demo case"] if demo else []) + ["Path on this computer", "Upload"]
    source = sb.radio("Open from", sources, key="scan_source")
    if source == "Demo case" and demo:
        sb.caption(f"Phantom case `{Path(demo).name}`")
        if sb.button("Open demo case", key="open_demo", type="primary"):
            _open(lambda: open_path(demo))
    elif source == "Path on this computer":
        path = sb.text_input(
            "DICOM folder, NIfTI/MHA/NRRD file or phantom case folder", key="scan_path"
        )
        if sb.button("Open", key="open_path") and path:
            _open(lambda: open_path(path.strip()))
    else:
        up = sb.file_uploader(
            "Zip of a DICOM folder, or a NIfTI/MHA/NRRD file",
            type=["zip", "nii", "gz", "mha", "nrrd", "dcm"],
            key="scan_upload",
        )
        if up is not None and st.session_state.get("last_upload") != up.file_id:
            st.session_state.last_upload = up.file_id
            limits = upload_limits()
            _open(lambda: open_upload(up.name, up.getvalue(), state.upload_dir(), limits))
    scan = state.current_scan()
    if scan is not None:
        z, y, x = scan.ct.voxels.shape
        sx, sy, sz = scan.ct.spacing
        sb.success(
            f"**{scan.name}** ({scan.kind})  \n{x}x{y}x{z} voxels, {sx:.2f}x{sy:.2f}x{sz:.2f} mm"
        )
        for note in scan.notes:
            sb.caption(note)
    err = st.session_state.get("scan_error")
    if err:
        sb.error(err, icon=":material/error:")


def _open(opener: Callable[[], Scan]) -> None:
    try:
        with st.spinner("Reading the scan..."):
            scan = opener()
    except HidiffError as exc:
        st.session_state.scan_error = str(exc)
        return
    st.session_state.scan_error = None
    state.set_scan(scan)


def available_profiles() -> list[str]:
    """Execution-provider profiles this onnxruntime can run, best first, then 'auto'."""
    offered = set(ort.get_available_providers())
    names = [n for n in AUTO_ORDER if any(p in offered for p in PROFILES[n].providers)]
    return names


def package_picker(label: str, key: str, default_index: int = 0) -> Path | None:
    packages = state.find_packages()
    if not packages:
        st.error(
            "No model package installed (looked in "
            + ", ".join(map(str, state.package_roots()))
            + ")."
        )
        return None
    labels = {}
    for p in packages:
        text = guarded(lambda p=p: state.package_label(p))
        if text is not None:
            labels[str(p)] = text
    if not labels:
        return None
    keys = list(labels)
    chosen = st.selectbox(
        label, keys, index=min(default_index, len(keys) - 1), format_func=labels.get, key=key
    )
    return Path(chosen)


def compressed_and_full(packages: list[Path]) -> tuple[int, int]:
    """Default picks: A = fewest sampler steps (compressed), B = most steps (full model)."""
    steps = []
    for i, p in enumerate(packages):
        pkg = guarded(lambda p=p: state.get_package(str(p)))
        if pkg is not None:
            steps.append((pkg.manifest.sampler.steps, i))
    if not steps:
        return 0, 0
    return min(steps)[1], max(steps)[1]


def synthesize(
    scan: Scan, package: Path, provider: str, sequence: str, seed: int
) -> state.Synthesis | None:
    """Synthesize (or reuse) with a progress bar; errors shown in the page."""
    key = state.synthesis_key(str(package), provider, sequence, seed)
    done = state.syntheses().get(key)
    if done is not None:
        return done
    bar = st.progress(0.0, text=f"Synthesizing with {package.name}...")

    def on_slice(k: int, n: int) -> None:
        bar.progress(k / max(1, n), text=f"{package.name}: slice {k} of {n}")

    def run() -> state.Synthesis:
        synth = state.get_synthesizer(str(package), provider)
        result = synth.run(scan.ct, sequence=sequence, seed=seed, on_slice=on_slice)
        return state.Synthesis(str(package), provider, sequence, seed, result)

    out = guarded(run)
    bar.empty()
    if out is not None:
        state.syntheses()[key] = out
    return out


def slice_viewer(scan: Scan, panels: dict[str, np.ndarray], key: str, diff: bool = False) -> int:
    """Linked viewer: one slice slider and window for the CT and every MR panel.

    `panels` maps a caption to an MR volume on the CT's grid; with `diff` the last panel is a
    signed difference shown with a symmetric range.
    """
    nz = scan.ct.voxels.shape[0]
    c1, c2, c3 = st.columns([3, 2, 2])
    z = (
        c1.slider("Slice", 0, nz - 1, analysis.best_slice(scan), key=f"{key}_slice")
        if nz > 1
        else 0
    )
    preset = c2.selectbox("CT window", list(analysis.CT_WINDOWS), key=f"{key}_window")
    overlay_names = [n for n, m in _masks(scan).items() if m is not None]
    shown = (
        c3.multiselect("Overlays", overlay_names, default=overlay_names[:2], key=f"{key}_overlay")
        if overlay_names
        else []
    )
    masks = {
        n: np.asarray(m[z]) > 0 for n, m in _masks(scan).items() if n in shown and m is not None
    }
    spacing_yx = (scan.ct.spacing[1], scan.ct.spacing[0])
    window = analysis.CT_WINDOWS[preset]
    images = [
        (
            f"CT ({preset} W{window.width:.0f} L{window.level:.0f})",
            analysis.window_ct(scan.ct.voxels[z], window),
        )
    ]
    for i, (caption, vol) in enumerate(panels.items()):
        if diff and i == len(panels) - 1:
            lim = float(np.percentile(np.abs(vol), 99.5)) or 1.0
            images.append((caption, analysis.window_mr(vol[z], (-lim, lim))))
        else:
            images.append((caption, analysis.window_mr(vol[z], analysis.mr_range(vol))))
    cols = st.columns(len(images))
    for col, (caption, gray) in zip(cols, images, strict=True):
        rgb = analysis.with_outlines(gray, masks)
        col.image(analysis.upscale(rgb, spacing_yx), caption=caption, width="stretch")
    return z


def _masks(scan: Scan) -> dict[str, np.ndarray | None]:
    return {"lesions": scan.lesions, "vessels": scan.vessels, "liver": scan.liver}


def metrics_of(pred: np.ndarray, ref: np.ndarray, scan: Scan) -> list[analysis.Metric]:
    """`analysis.compare_volumes`, computed once per pair of volumes in this session (vessel
    segmentation takes seconds, and Streamlit reruns the page on every click)."""
    cache = st.session_state.setdefault("metrics_cache", {})
    key = (scan.key, id(pred), id(ref))
    if key not in cache:
        with st.spinner("Computing metrics..."):
            cache[key] = analysis.compare_volumes(pred, ref, scan)
    return cache[key]


def sequence_picker(key: str) -> str:
    return st.selectbox("Sequence", list(SEQUENCES), format_func=SEQUENCES.get, key=key)
