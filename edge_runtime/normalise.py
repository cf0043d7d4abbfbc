"""Intensity maps between scanner units and model space, defined once for training and inference.

DESIGN.md puts maths that both sides need in the runtime, on plain arrays: training
(`models.data.normalise`) and the package's `Normalisation` (what the clinic runs) call these
functions, so a synthetic MRI is never produced with a window the model was not trained with.
Everything is float32 and linear: HU are never quantised to 8 bits, so a 5 HU enhancement
difference survives.
"""

import numpy as np

ModelRange = tuple[float, float]
UNIT_RANGE: ModelRange = (-1.0, 1.0)


def to_model_space(
    values: np.ndarray, window: tuple[float, float], model_range: ModelRange = UNIT_RANGE
) -> np.ndarray:
    """Scanner units -> model space: `window` (a CT's HU window, an MR's intensity range) maps
    linearly onto `model_range`; values outside the window are clipped."""
    lo, hi = window
    a, b = model_range
    unit = (np.asarray(values, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(np.float32(a) + np.float32(b - a) * unit, a, b).astype(np.float32)


def from_model_space(
    x: np.ndarray, window: tuple[float, float], model_range: ModelRange = UNIT_RANGE
) -> np.ndarray:
    """Model space -> scanner units: the inverse of `to_model_space` inside the window."""
    a, b = model_range
    lo, hi = window
    unit = (np.asarray(x, dtype=np.float32) - np.float32(a)) / np.float32(b - a)
    return (np.float32(lo) + np.float32(hi - lo) * unit).astype(np.float32)


def body_percentile(volume: np.ndarray, body: np.ndarray, percentile: float) -> float:
    """The `percentile` of the signal inside `body` (the whole volume if `body` is empty).

    MR has no absolute unit, so a volume is scaled by a high percentile of its body signal,
    which ignores the Rician background and a few hot voxels. Never 0: a blank volume gives 1.
    """
    values = volume[body] if body.any() else np.asarray(volume).ravel()
    scale = float(np.percentile(values, percentile))
    return scale if scale > 0 else 1.0
