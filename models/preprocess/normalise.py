"""Intensity normalisation of prepared pairs, bound to the model's own window.

The maths lives once, in `edge_runtime.normalise`, and the window once, in the model's
`DataConfig` (HU window, MR body percentile): `prepare` applies exactly what training applies and
the model package's manifest carries, and `normalisation.json` is that manifest block, so the
prepared data cannot drift from the model it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_runtime.errors import InputError
from edge_runtime.normalise import UNIT_RANGE, body_percentile, to_model_space
from models.aphidiff.config import DataConfig

BODY_HU = -500.0  # body = CT above this (air is -1000, lung ~ -800) when no label map exists


@dataclass
class NormalisationSpec:
    """The model's intensity maps: CT window -> model range, MR body percentile -> top of it."""

    data: DataConfig = field(default_factory=DataConfig)

    @property
    def ct_hu_window(self) -> tuple[float, float]:
        return (float(self.data.hu_min), float(self.data.hu_max))

    def to_dict(self) -> dict[str, Any]:
        """The model package's `normalisation` manifest block (compress.packaging writes the same)."""
        return {
            "ct_hu_window": list(self.ct_hu_window),
            "model_range": list(UNIT_RANGE),
            "mr_method": "percentile",
            "mr_percentile": float(self.data.mr_percentile),
        }

    def ct(self, hu: np.ndarray) -> np.ndarray:
        """HU -> model space over the model's window, clipped, float32."""
        return to_model_space(hu, self.ct_hu_window)

    def mr_scale(self, mr: np.ndarray, body: np.ndarray) -> float:
        """The MR volume's scale: its body signal's `mr_percentile` (maps to the range's top)."""
        v = np.asarray(mr)
        if v.size == 0 or not np.isfinite(v).all():
            raise InputError("MR volume is empty or holds non-finite values")
        return body_percentile(v, np.asarray(body, dtype=bool), self.data.mr_percentile)

    def mr(self, mr: np.ndarray, scale: float) -> np.ndarray:
        """MR signal -> model space: 0 -> bottom, `scale` -> top, clipped, float32."""
        return to_model_space(mr, (0.0, scale))


def body_mask(ct_hu: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Where the body is: the label map's foreground (as training uses) or the CT above -500 HU."""
    if labels is not None and np.any(labels):
        return np.asarray(labels) > 0
    return np.asarray(ct_hu) > BODY_HU
