"""Session-scoped phantom renders shared by the phantom tests (render once, assert many facts).

Sizes are small where the fact does not depend on size (128^2) and 256^2 where it does (SSIM
ceiling, lesion diameters, motion Dice at the demo's resolution).
"""

from __future__ import annotations

import pytest

from models.phantom import PhantomConfig, render_case
from models.phantom.config import merged_config

# A config that draws many, larger lesions with every add-on, so one patient shows every
# tissue; it is the ordinary generator with other numbers, not a special mode.
RICH = {
    "lesions": {
        "count": [4, 4],
        "diameter_mm": [18.0, 30.0],
        "satellite_probability": 1.0,
        "pvtt_probability": 1.0,
        "ap_shunt_probability": 1.0,
    }
}


def rich_config(noise: bool) -> PhantomConfig:
    cfg = merged_config(RICH)
    cfg.noise = noise
    return cfg


@pytest.fixture(scope="session")
def clean_rich():
    """Noise-free 128^2 x 48 renders of two lesion-rich patients: seed 10 (hcc, two
    hemangiomas, pvtt, satellites) and seed 6 (metastasis, cyst, shunt)."""
    cfg = rich_config(noise=False)
    return [render_case(s, cfg, grid=128, slices=48, ssim=False) for s in (10, 6)]


@pytest.fixture(scope="session")
def noisy_case():
    """Default config (noise on), 128^2 x 32."""
    return render_case(3, grid=128, slices=32, ssim=False)


@pytest.fixture(scope="session")
def case256():
    """Default config at the demo's resolution, with the SSIM ceiling."""
    return render_case(7, grid=256, slices=48)
