"""Training's view of the intensity maps: the runtime's functions bound to the run's config.

The maths lives once, in `edge_runtime.normalise`, so training and the clinic's runtime cannot
drift apart. CT: the HU window [hu_min, hu_max] -> [-1, 1]. MR has no absolute unit: each volume
is divided by a high percentile of its body signal (`scale` -> 1, 0 -> -1); the median scale per
sequence over the training cases is kept with the run so that predictions can be written back in
the phantom's signal units.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.normalise import body_percentile, from_model_space, to_model_space
from models.aphidiff.config import DataConfig

mr_scale = body_percentile


def ct_to_unit(hu: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """HU -> [-1, 1] over the window [hu_min, hu_max], clipped outside, float32."""
    return to_model_space(hu, (cfg.hu_min, cfg.hu_max))


def mr_to_unit(x: np.ndarray, scale: float) -> np.ndarray:
    """Signal -> [-1, 1] with `scale` -> 1 (values above it clipped)."""
    return to_model_space(x, (0.0, scale))


def mr_from_unit(x: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of `mr_to_unit` (inside the clip range), float32."""
    return from_model_space(x, (0.0, scale))
