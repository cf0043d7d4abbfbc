"""Training augmentation with MONAI: elastic deformation, modality-specific noise, intensity jitter.

Geometry changes are applied by ONE MONAI dictionary transform to every key of a sample, so the
CT, the MR and the label maps of a pair are warped by the same random field (labels with nearest
neighbour); noise and jitter touch intensities only.

The seed's elastic parameters sigma = 50, alpha = 10 are used in the control-grid convention of
MONAI's `Rand2DElastic`, expressed in millimetres: control points every sigma = 50 mm, each
displaced by a Gaussian offset of standard deviation alpha = 10 mm, the field between them
interpolated bicubically. In the other common convention (Simard et al. 2003, MONAI's
`Rand3DElastic`: uniform noise smoothed by a Gaussian of sigma pixels, scaled by alpha) the same
numbers give sub-pixel displacements (a sigma-50 Gaussian averages the noise away), i.e. no
augmentation at all; `simard_rms_displacement` measures that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.transforms import (
    Compose,
    MapTransform,
    Rand2DElasticd,
    RandBiasFieldd,
    RandomizableTransform,
    RandRicianNoised,
    RandScaleIntensityd,
)
from scipy import ndimage

from edge_runtime.errors import InputError


@dataclass
class ElasticConfig:
    """The seed's elastic deformation, in mm (see the module docstring for the convention)."""

    sigma_mm: float = 50.0  # control-point spacing
    alpha_mm: float = 10.0  # standard deviation of each control point's offset
    prob: float = 1.0


@dataclass
class CTNoiseConfig:
    """Extra CT noise: Gaussian, lightly correlated like a reconstruction kernel's."""

    sigma_hu: tuple[float, float] = (0.0, 10.0)  # added on top of the scan's own noise
    correlation_px: float = 0.6  # Gaussian kernel sigma, as the phantom's reconstruction kernel
    prob: float = 0.5


@dataclass
class MRNoiseConfig:
    """Extra MR corruption: Rician noise (relative to the image's std) and a smooth bias field."""

    rician_std: float = 0.03  # x the image's standard deviation
    rician_prob: float = 0.5
    bias_coeff: tuple[float, float] = (0.0, 0.2)  # MONAI RandBiasField coefficient range
    bias_degree: int = 3
    bias_prob: float = 0.5


@dataclass
class JitterConfig:
    """Global intensity jitter (scale and shift), applied per image."""

    scale: float = 0.05  # +-5 % gain
    shift_fraction: float = 0.02  # +- 2 % of the image's range
    prob: float = 0.5


@dataclass
class AugmentConfig:
    elastic: ElasticConfig = field(default_factory=ElasticConfig)
    ct_noise: CTNoiseConfig = field(default_factory=CTNoiseConfig)
    mr_noise: MRNoiseConfig = field(default_factory=MRNoiseConfig)
    jitter: JitterConfig = field(default_factory=JitterConfig)


class RandCorrelatedGaussianNoised(RandomizableTransform, MapTransform):
    """Gaussian noise smoothed by a small Gaussian kernel and renormalised to the drawn sigma.

    MONAI's RandGaussianNoise is white; CT noise is correlated by the reconstruction kernel, so
    the smoothing is applied per 2D slice and the result rescaled so that its per-pixel standard
    deviation is exactly the drawn sigma.
    """

    def __init__(self, keys: Sequence[str], cfg: CTNoiseConfig) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob=cfg.prob)
        self.cfg = cfg
        self._sigma = 0.0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self._sigma = float(self.R.uniform(*self.cfg.sigma_hu))

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        self.randomize()
        if not self._do_transform or self._sigma == 0.0:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            white = self.R.standard_normal(tuple(img.shape)).astype(np.float32)
            s = self.cfg.correlation_px
            sig = [0.0] * (white.ndim - 2) + [s, s]
            noise = ndimage.gaussian_filter(white, sig)
            noise *= self._sigma / max(float(noise.std()), 1e-12)
            d[key] = img + torch.as_tensor(noise, dtype=img.dtype if torch.is_tensor(img) else None)
        return d


def build_augment(
    pixel_mm: float,
    cfg: AugmentConfig | None = None,
    *,
    ct_keys: Sequence[str] = ("ct",),
    mr_keys: Sequence[str] = ("mr",),
    label_keys: Sequence[str] = ("labels",),
    seed: int | None = None,
) -> Compose:
    """The augmentation pipeline for 2D samples (C, H, W) with in-plane pixel size `pixel_mm`.

    CT noise is in HU and MR noise relative to the image, so apply this before normalisation.
    """
    cfg = cfg or AugmentConfig()
    if pixel_mm <= 0:
        raise InputError(f"pixel size must be positive, got {pixel_mm}")
    keys = [*ct_keys, *mr_keys, *label_keys]
    modes = ["bilinear"] * (len(ct_keys) + len(mr_keys)) + ["nearest"] * len(label_keys)
    spacing = max(cfg.elastic.sigma_mm / pixel_mm, 1.0)
    mag = cfg.elastic.alpha_mm / pixel_mm
    transforms = [
        Rand2DElasticd(
            keys=keys,
            spacing=(spacing, spacing),
            magnitude_range=(mag, mag),
            prob=cfg.elastic.prob,
            mode=modes,
            padding_mode="border",
        ),
        RandCorrelatedGaussianNoised(ct_keys, cfg.ct_noise),
    ]
    if mr_keys:
        transforms += [
            RandBiasFieldd(
                keys=list(mr_keys),
                degree=cfg.mr_noise.bias_degree,
                coeff_range=cfg.mr_noise.bias_coeff,
                prob=cfg.mr_noise.bias_prob,
            ),
            RandRicianNoised(
                keys=list(mr_keys),
                std=cfg.mr_noise.rician_std,
                relative=True,
                sample_std=False,
                prob=cfg.mr_noise.rician_prob,
            ),
        ]
    image_keys = [*ct_keys, *mr_keys]
    transforms += [
        RandScaleIntensityd(keys=image_keys, factors=cfg.jitter.scale, prob=cfg.jitter.prob),
    ]
    pipeline = Compose(transforms)
    if seed is not None:
        pipeline.set_random_state(seed=seed)
    return pipeline


def simard_rms_displacement(
    sigma_px: float, alpha: float, shape: tuple[int, int] = (256, 256), seed: int = 0
) -> float:
    """RMS displacement (pixels) of the Simard convention: alpha * G_sigma * U(-1, 1)."""
    rng = np.random.default_rng(seed)
    d = [alpha * ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma_px) for _ in range(2)]
    return float(np.sqrt(np.mean(d[0] ** 2 + d[1] ** 2)))
