"""Intensity normalisation of CT (HU window) and MR (robust per-volume scale) to [-1, 1].

Float throughout: HU are mapped linearly, never quantised to 8 bits, so a 5 HU enhancement
difference survives. MR has no absolute unit, so each volume is divided by a high percentile of
its body signal; the median scale per sequence over the training cases is kept with the run so
that predictions can be written back in the phantom's signal units.
"""

from __future__ import annotations

import numpy as np

from models.aphidiff.config import DataConfig


def ct_to_unit(hu: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """HU -> [-1, 1] over the window [hu_min, hu_max], clipped outside, float32."""
    x = (hu.astype(np.float32) - cfg.hu_min) / (cfg.hu_max - cfg.hu_min)
    return np.clip(2.0 * x - 1.0, -1.0, 1.0).astype(np.float32)


def mr_scale(volume: np.ndarray, body: np.ndarray, percentile: float) -> float:
    """The percentile of the signal inside `body` (the whole volume if `body` is empty)."""
    values = volume[body] if body.any() else volume.ravel()
    scale = float(np.percentile(values, percentile))
    return scale if scale > 0 else 1.0


def mr_to_unit(x: np.ndarray, scale: float) -> np.ndarray:
    """Signal -> [-1, 1] with `scale` -> 1 (values above the percentile clipped)."""
    return np.clip(2.0 * x.astype(np.float32) / scale - 1.0, -1.0, 1.0).astype(np.float32)


def mr_from_unit(x: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of `mr_to_unit` (inside the clip range), float32."""
    return ((np.asarray(x, dtype=np.float32) + 1.0) * 0.5 * scale).astype(np.float32)
