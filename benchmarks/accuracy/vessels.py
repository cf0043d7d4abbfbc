"""Vessel topology: clDice and Betti-0 error between vessels seen on prediction and on truth.

A synthetic MRI can score a high global SSIM and still break the portal tree into pieces, which
is what a surgeon cares about. So vessels are segmented on the predicted and on the true MRI by
one fixed method, and the two segmentations are compared by topology:

- clDice (Shit et al., CVPR 2021): the harmonic mean of topology precision (fraction of the
  prediction's centreline inside the true vessels) and topology sensitivity (fraction of the
  true centreline inside the predicted vessels). A broken vessel loses the centreline in the gap.
- Betti-0 error: |number of connected components (26-connectivity) of the prediction's vessels
  minus the truth's|. A break adds a component; a hallucinated vessel fragment adds one.

The segmentation (docs/accuracy.md): each image is normalised by its own liver median and MAD,
Sato tubeness (scikit-image, 3D Hessian, voxel-unit scales) is computed with the vessel polarity
the truth shows, and thresholded at the Otsu threshold of the *truth's* tubeness inside the
liver, the same number for prediction and truth; voxels outside the eroded liver and components
smaller than `min_voxels` are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import sato, threshold_otsu
from skimage.morphology import skeletonize

_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


@dataclass(frozen=True)
class VesselConfig:
    """The fixed vessel segmentation every method is judged by."""

    sigmas: tuple[float, ...] = (1.0, 1.5, 2.0)  # tubeness scales in voxels: radii ~1-3 voxels
    liver_erosion: int = 1  # voxels; drops the ridge the liver's own edge makes
    min_voxels: int = 4  # smaller components are noise, not vessels


def component_count(mask: np.ndarray) -> int:
    """Betti-0: the number of 26-connected components of a binary mask."""
    mask = np.asarray(mask, dtype=bool)
    structure = _FULL if mask.ndim == 3 else np.ones((3,) * mask.ndim, dtype=bool)
    return int(ndi.label(mask, structure=structure)[1])


def betti0_error(pred: np.ndarray, truth: np.ndarray) -> int:
    """|Betti-0(pred) - Betti-0(truth)|."""
    return abs(component_count(pred) - component_count(truth))


def cldice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Centreline Dice of two binary masks (1.0 when both are empty, 0.0 when one is)."""
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if not p.any() and not t.any():
        return 1.0
    if not p.any() or not t.any():
        return 0.0
    sp = skeletonize(p)
    st = skeletonize(t)
    tprec = float((sp & t).sum()) / max(int(sp.sum()), 1)
    tsens = float((st & p).sum()) / max(int(st.sum()), 1)
    if tprec + tsens == 0.0:
        return 0.0
    return 2.0 * tprec * tsens / (tprec + tsens)


@dataclass(frozen=True)
class VesselReference:
    """What the truth fixes for the segmentation of every image of one case and sequence."""

    bright: bool  # vessels brighter than liver on this sequence
    threshold: float  # tubeness threshold (Otsu on the truth)
    liver: np.ndarray  # eroded liver mask the segmentation is confined to
    truth_tubeness: np.ndarray  # kept so the truth's own segmentation costs no second filter


def _normalise(image: np.ndarray, liver: np.ndarray) -> np.ndarray:
    values = image[liver]
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * 1.4826
    return (image - med) / (mad if mad > 0 else 1.0)


def _tubeness(image: np.ndarray, liver: np.ndarray, bright: bool, cfg: VesselConfig) -> np.ndarray:
    z = _normalise(np.asarray(image, dtype=np.float64), liver)
    # Confine the filter to the liver's bounding box (plus a margin): faster, same result inside.
    idx = np.argwhere(liver)
    margin = int(np.ceil(3 * max(cfg.sigmas))) + 1
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, z.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    out = np.zeros_like(z)
    out[box] = sato(z[box], sigmas=cfg.sigmas, black_ridges=not bright, mode="reflect")
    return out


def vessel_reference(
    truth: np.ndarray, liver: np.ndarray, vessels: np.ndarray, cfg: VesselConfig = VesselConfig()
) -> VesselReference:
    """Fix polarity and threshold from the true image and the true vessel mask."""
    liver_e = (
        ndi.binary_erosion(liver, iterations=cfg.liver_erosion) if cfg.liver_erosion else liver
    )
    liver_e = np.asarray(liver_e, dtype=bool)
    v = np.asarray(vessels) > 0
    inside = liver_e & v
    outside = liver_e & ~v
    bright = bool(np.median(truth[inside]) > np.median(truth[outside])) if inside.any() else True
    tube = _tubeness(truth, liver_e, bright, cfg)
    threshold = float(threshold_otsu(tube[liver_e]))
    return VesselReference(bright=bright, threshold=threshold, liver=liver_e, truth_tubeness=tube)


def segment_vessels(
    image: np.ndarray | None, ref: VesselReference, cfg: VesselConfig = VesselConfig()
) -> np.ndarray:
    """Binary vessel mask of `image` by the fixed method, with the truth's polarity/threshold.

    `image=None` segments the truth the reference was made from.
    """
    tube = ref.truth_tubeness if image is None else _tubeness(image, ref.liver, ref.bright, cfg)
    mask = (tube > ref.threshold) & ref.liver
    lab, n = ndi.label(mask, structure=_FULL)
    if n:
        sizes = np.bincount(lab.ravel())
        keep = sizes >= cfg.min_voxels
        keep[0] = False
        mask = keep[lab]
    return mask
