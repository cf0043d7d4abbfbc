"""Intensity normalisation of training pairs: CT HU window -> [-1, 1], MR percentile scaling.

The runtime must apply exactly the same maths at inference, so these functions are pure numpy
(no torch) and their parameters are recorded in `normalisation.json` next to the prepared data,
from where the model package's manifest will carry them. They move to `edge_runtime` when the
Synthesizer lands; until then this module is their single home.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_runtime.errors import InputError


@dataclass
class HUWindow:
    """CT window mapped linearly onto [-1, 1], values outside clipped."""

    lower: float = -200.0  # keeps fat (-100) apart from air/lung, which MR shows as dark alike
    upper: float = 1000.0  # keeps cortical bone (1000, no MR signal) apart from cancellous bone

    def __post_init__(self) -> None:
        if not self.upper > self.lower:
            raise InputError(f"HU window upper {self.upper} must exceed lower {self.lower}")


@dataclass
class MRScaling:
    """Per-volume percentile scaling: [p_low, p_high] of the body's voxels -> [-1, 1].

    MR intensities have no absolute unit (coil, gain, bias), so each volume is scaled by its own
    robust range; percentiles ignore the Rician background and a few hot voxels.
    """

    p_low: float = 0.5
    p_high: float = 99.5
    body_fraction: float = 0.05  # voxels above this share of the 99th percentile count as body


@dataclass
class NormalisationSpec:
    """Everything `normalisation.json` records; the model package will carry it."""

    ct: HUWindow = field(default_factory=HUWindow)
    mr: MRScaling = field(default_factory=MRScaling)
    format: str = "hidiff-normalisation/1"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ct"]["maps_to"] = [-1.0, 1.0]
        d["mr"]["maps_to"] = [-1.0, 1.0]
        d["ct"]["formula"] = "2 * (clip(hu, lower, upper) - lower) / (upper - lower) - 1"
        d["mr"]["formula"] = "clip(2 * (s - lo) / (hi - lo) - 1, -1, 1), lo/hi per volume"
        return d


def normalise_ct(hu: np.ndarray, window: HUWindow | None = None) -> np.ndarray:
    """HU -> [-1, 1] through the window (float32)."""
    w = window or HUWindow()
    x = np.clip(np.asarray(hu, dtype=np.float32), w.lower, w.upper)
    return (2.0 * (x - w.lower) / (w.upper - w.lower) - 1.0).astype(np.float32)


def denormalise_ct(x: np.ndarray, window: HUWindow | None = None) -> np.ndarray:
    """[-1, 1] -> HU (inverse of `normalise_ct` inside the window)."""
    w = window or HUWindow()
    return ((np.asarray(x, dtype=np.float32) + 1.0) * 0.5 * (w.upper - w.lower) + w.lower).astype(
        np.float32
    )


def mr_range(mr: np.ndarray, scaling: MRScaling | None = None) -> tuple[float, float]:
    """(lo, hi) intensities of one MR volume by its body percentiles."""
    s = scaling or MRScaling()
    v = np.asarray(mr, dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).all():
        raise InputError("MR volume is empty or holds non-finite values")
    top = np.percentile(v, 99.0)
    body = v[v > s.body_fraction * top]
    if body.size == 0:
        raise InputError("MR volume has no signal above the background")
    lo, hi = np.percentile(body, [s.p_low, s.p_high])
    if not hi > lo:
        raise InputError("MR volume is constant inside the body; it cannot be scaled")
    return float(lo), float(hi)


def normalise_mr(mr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """MR -> [-1, 1] by the volume's (lo, hi), clipped."""
    x = 2.0 * (np.asarray(mr, dtype=np.float32) - lo) / (hi - lo) - 1.0
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def denormalise_mr(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[-1, 1] -> MR intensities of the reference range (lo, hi)."""
    return ((np.asarray(x, dtype=np.float32) + 1.0) * 0.5 * (hi - lo) + lo).astype(np.float32)
