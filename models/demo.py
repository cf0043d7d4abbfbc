"""`hidiff demo`: one phantom patient, synthesized end to end by the shipped package.

It renders a phantom case at the package's grid (the CT and the true MR of the same patient at
the same breathing phase), runs the torch-free runtime on the CT exactly as a clinic would
(`edge_runtime.Synthesizer`), and shows what came out: NIfTI volumes, a PNG with
CT | synthetic | true MRI | difference, the time per slice, and the SSIM against the true MR.
It lives in `models` because rendering the phantom needs the full stack; the synthesis itself
uses nothing above `edge_runtime`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from edge_runtime import metrics
from edge_runtime.atomic import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from edge_runtime.console import console
from edge_runtime.errors import InputError
from edge_runtime.io import ImageMetadata, MedicalImage, write_nifti
from edge_runtime.machine import provenance
from edge_runtime.synthesizer import Synthesizer
from models.data.normalise import mr_scale
from models.phantom import LABELS, render_case
from models.phantom.case import PhantomCase

# The package `make demo` uses: committed in the repository (compress/packages/).
DEFAULT_PACKAGE = (
    Path(__file__).resolve().parent.parent / "compress/packages/aphidiff-small-t2-ddim1-edge-cpu"
)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo renders and how it scores."""

    # A patient outside the shipped package's training and validation cohort (seed 7, 10 cases).
    seed: int = 2026
    # The phantom's z field of view; slices are chosen so their spacing is the package's.
    fov_z_mm: float = 200.0
    # Fewest slices rendered (the phantom needs >= 4).
    min_slices: int = 8
    # SSIM is scored on slices holding liver, inside the body, in units of the true MR's body
    # 99.5th percentile (the training normalisation): the convention of the validation metrics.
    mr_percentile: float = 99.5


def ct_image(case: PhantomCase, phase: str = "portal") -> MedicalImage:
    """The phantom's CT as a scanner would hand it over (LPS, HU, modality and phase known)."""
    return MedicalImage(
        case.images[f"ct_{phase}"].astype(np.float32),
        case.origin,
        case.spacing,
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        ImageMetadata(modality="CT", phase_hint=phase, series_description=f"PHANTOM CT {phase}"),
    )


def score(
    synthetic: np.ndarray, truth: np.ndarray, body: np.ndarray, liver: np.ndarray, pct: float
) -> dict[str, float]:
    """SSIM (body-masked, mean over liver slices), PSNR and MAE in true-MR-scale units."""
    scale = mr_scale(truth, body, pct)
    a, b = synthetic / scale, truth / scale
    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    if zs.size == 0:
        raise InputError("the rendered case has no liver slices")
    ssim = [metrics.masked_ssim(a[z], b[z], body[z], 1.0) for z in zs]
    return {
        "ssim_body_liver_slices": float(np.mean(ssim)),
        "psnr_db_body": metrics.psnr(a[zs], b[zs], 1.0, body[zs]),
        "mae_body": metrics.mae(a[zs], b[zs], body[zs]),
        "liver_slices": int(zs.size),
    }


def comparison_png(
    ct: np.ndarray, synthetic: np.ndarray, truth: np.ndarray, z: int, title: str
) -> bytes:
    """CT | synthetic | true MRI | difference of slice z, as PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hi = float(np.percentile(truth[z], 99.5)) or 1.0
    diff = synthetic[z] - truth[z]
    fig, axes = plt.subplots(1, 4, figsize=(14, 4))
    panels = [
        (ct[z], "CT (HU, window -160..240)", dict(cmap="gray", vmin=-160, vmax=240)),
        (synthetic[z], "synthetic MR", dict(cmap="gray", vmin=0, vmax=hi)),
        (truth[z], "true MR (phantom)", dict(cmap="gray", vmin=0, vmax=hi)),
        (diff, "synthetic - true", dict(cmap="coolwarm", vmin=-hi / 2, vmax=hi / 2)),
    ]
    for ax, (img, name, kw) in zip(axes, panels, strict=True):
        im = ax.imshow(img, **kw)
        ax.set_title(name)
        ax.axis("off")
        if name.startswith("synthetic -"):
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def run_demo(
    package: Path,
    out: Path,
    seed: int,
    provider: str = "auto",
    sequence: str | None = None,
    cfg: DemoConfig | None = None,
) -> dict[str, Any]:
    """Render, synthesize, score and write; returns the numbers (also `demo.json`)."""
    cfg = cfg or DemoConfig()
    if not Path(package).is_dir():
        raise InputError(f"package {package} not found (pass --package)")
    ensure_writable_dir(out)
    synth = Synthesizer(package, provider=provider)
    m = synth.manifest
    _, out_spec = synth.output_for(sequence)
    grid = m.grid.shape[0]
    thickness = m.grid.slice_thickness_mm or cfg.fov_z_mm / 32
    slices = max(cfg.min_slices, round(cfg.fov_z_mm / thickness))
    t0 = time.perf_counter()
    case = render_case(cfg.seed if seed is None else seed, grid=grid, slices=slices, ssim=False)
    render_s = time.perf_counter() - t0
    ct = ct_image(case)
    result = synth.run(ct, out_spec.sequence, seed=0)
    synthetic = result.image.voxels
    truth = case.images[f"mr_{out_spec.sequence}_ctphase"].astype(np.float32)
    body = case.labels > 0
    liver = case.labels == LABELS["liver"]
    scores = score(synthetic, truth, body, liver, cfg.mr_percentile)

    write_nifti(ct, out / "ct_portal.nii.gz", overwrite=True)
    write_nifti(result.image, out / f"synthetic_mr_{out_spec.sequence}.nii.gz", overwrite=True)
    write_nifti(
        ct.with_voxels(truth, modality="MR"),
        out / f"true_mr_{out_spec.sequence}.nii.gz",
        overwrite=True,
    )
    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    z = int(zs[len(zs) // 2])
    s = result.stats
    title = (
        f"{m.name}: phantom seed {case.seed}, slice {z}; SSIM {scores['ssim_body_liver_slices']:.3f}"
        f", {s.seconds_per_slice:.3f} s/slice"
    )
    atomic_write_bytes(
        out / "comparison.png", comparison_png(ct.voxels, synthetic, truth, z, title)
    )
    summary = {
        "package": m.name,
        "package_manifest_sha256": synth.package.manifest_sha256,
        "sequence": out_spec.sequence,
        "phantom_seed": case.seed,
        "grid": [slices, grid, grid],
        "render_seconds": render_s,
        "slices": s.slices,
        "seconds_per_slice": s.seconds_per_slice,
        "model_seconds_per_slice": s.seconds_model / max(1, s.slices),
        "provider": s.provider,
        "steps": s.steps,
        **scores,
        "provenance": provenance(),
    }
    atomic_write_json(out / "demo.json", summary)
    return summary


def demo(
    package: Annotated[
        Path, typer.Option("--package", help="Model package (default: the shipped one).")
    ] = DEFAULT_PACKAGE,
    seed: Annotated[int, typer.Option("--seed", help="Phantom patient seed.")] = DemoConfig.seed,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo_out"),
    provider: Annotated[str, typer.Option("--provider", "-p", help="Execution provider.")] = "auto",
) -> None:
    """Render a phantom patient, synthesize its MR with the shipped package, show and score it."""
    r = run_demo(package, out, seed, provider)
    print(
        f"{r['package']}: {r['slices']} slices of {r['grid'][1]}x{r['grid'][2]} in "
        f"{r['seconds_per_slice']:.3f} s/slice ({r['model_seconds_per_slice']:.3f} s/slice in "
        f"the model, {r['steps']} steps, {r['provider']})"
    )
    print(
        f"SSIM vs the phantom's true MR (mr_{r['sequence']}_ctphase, body, liver slices): "
        f"{r['ssim_body_liver_slices']:.3f}; PSNR {r['psnr_db_body']:.1f} dB"
    )
    console.print(f"wrote {out}/comparison.png, NIfTI volumes and demo.json")
