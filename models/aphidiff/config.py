"""Typed configuration of AP-HiDiff and its baselines, with the presets `tiny`, `small`, `full`.

Every number is a dataclass default with the reason it has that value. A run's config is saved
as JSON next to its weights (`to_dict`) and read back with `from_dict`, so a checkpoint always
says exactly what network it holds.

- `tiny`: the test preset. One training step on a 128^2 slice takes well under a second on two
  CPU cores (measured: see docs/model.md); it learns something in tens of steps but is no model.
- `small`: the shipped teacher at 512^2 (trained on 128^2 crops), trainable on one CPU in hours
  or one GPU in minutes.
- `full`: the method's scale, 512^2 in-plane, for a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edge_runtime.errors import InputError

# The MR sequence is a condition of one network, not three networks; its index is the embedding id.
SEQUENCES: tuple[str, ...] = ("t2", "t1", "t1c")
# Modality ids of the VQ-VAE's modality code prior: CT plus each MR sequence.
MODALITIES: tuple[str, ...] = ("ct", *SEQUENCES)
CT_PHASES: tuple[str, ...] = ("plain", "arterial", "portal")
MODEL_KINDS: tuple[str, ...] = ("ap-hidiff", "ddpm", "pix2pix")
PRESETS: tuple[str, ...] = ("tiny", "small", "full")


@dataclass
class DataConfig:
    """What one training example is: which CT phase(s), how many neighbours, crop, intensities."""

    # Portal-venous CT shows both vessel trees enhanced: the best single phase for vessels.
    ct_phases: tuple[str, ...] = ("portal",)
    # 2.5D: one neighbour slice above and below gives through-plane context at 3x input cost.
    context: int = 1
    # In-plane grid the case is rendered / resampled on; the model's input grid.
    grid: int = 128
    # Random crop side for patch training (== grid: whole slices). Must divide by 2^levels.
    crop: int = 128
    # CT window (HU) mapped to [-1, 1]: covers fat (-100) to enhanced aorta (300) with room;
    # float, never 8-bit, so HU differences of a few units survive.
    hu_min: float = -360.0
    hu_max: float = 440.0
    # MR: divided by this percentile of the body's signal so sequences of different absolute
    # scale land in [-1, 1]; the scale per sequence is kept in the run to de-normalise output.
    mr_percentile: float = 99.5
    # Lesion classes of the lesion head: 0 background (ap_shunt pseudo-lesions included), 1 lesion.
    lesion_classes: int = 2

    @property
    def ct_channels(self) -> int:
        return len(self.ct_phases) * (2 * self.context + 1)


@dataclass
class UNetConfig:
    """The denoising U-Net shared by AP-HiDiff, the plain DDPM and pix2pix's generator."""

    # Width of the first level; tiny keeps a step well under a second on 2 CPU cores.
    base_channels: int = 16
    # One entry per level; three levels give outputs at H, H/2, H/4: the method's three scales.
    channel_mults: tuple[int, ...] = (1, 2, 4)
    # Residual blocks per level: one is the cheapest U-Net that still has skip + residual paths.
    res_blocks: int = 1
    # Self-attention at the lowest level; off for tiny (cost), on for bigger presets.
    attention: bool = False
    # GroupNorm groups: 8 divides every width used and exports to ONNX GroupNormalization.
    groups: int = 8
    # Recompute activations in backward to fit 512^2 in memory (slower, same numbers).
    gradient_checkpointing: bool = False


@dataclass
class VQVAEConfig:
    """Anatomy/modality disentangling VQ-VAE."""

    # Encoder width; the anatomy code needs far less capacity than the denoiser.
    hidden: int = 16
    # Stride-2 stages: z_a at H/4 keeps 3 mm satellites (~4 px at 128^2) visible in the code.
    downsamples: int = 2
    # Dimension of each anatomy code vector.
    code_dim: int = 8
    # Codebook entries: enough tissue classes x contexts; small books train stably.
    codebook_size: int = 64
    # Dimension of the global modality code z_m ("how it looks").
    modality_dim: int = 16
    # Commitment weight beta of van den Oord et al. (2017).
    commitment: float = 0.25
    # EMA decay of the codebook (codebook loss replaced by EMA updates, more stable).
    codebook_decay: float = 0.95


@dataclass
class DiffusionConfig:
    """Forward process and training target; the schedule itself comes from edge_runtime."""

    # 1000 training steps as in DDPM; samplers pick any subset.
    num_train_timesteps: int = 1000
    # Cosine schedule (Nichol & Dhariwal 2021): less wasted capacity at high noise than linear.
    # Names are edge_runtime.schedules' (the one definition shared with the runtime).
    schedule: str = "squaredcos_cap_v2"
    # v-prediction (Salimans & Ho 2022): well-conditioned at both ends; needed for few-step
    # distillation later. One of edge_runtime.samplers' prediction types.
    prediction: str = "v_prediction"
    # Default sampler for prediction and the number of its steps.
    sampler: str = "ddim"
    sample_steps: int = 50


@dataclass
class LossConfig:
    """Weights of the loss terms (the diffusion loss has weight 1)."""

    # Each VQ-VAE reconstruction term (CT, MR, both cross terms).
    reconstruction: float = 1.0
    # Anatomy alignment ||z_a(CT) - z_a(MR)||^2: the code is shared by both modalities.
    anatomy_alignment: float = 0.5
    # Modality prior ||prior[seq] - sg(z_m(MR))||^2: the code used when no MR is at hand.
    modality_prior: float = 0.1
    # Deep supervision of the H/2 and H/4 heads relative to the full-resolution head.
    multiscale: float = 0.5
    # L_ac on the vessel mask (the method's anatomical constraint).
    anatomical: float = 1.0
    # Lesion CE on the lesion head's prediction from the generated image.
    lesion: float = 0.1
    # Wavelet high-band L1 (texture).
    wavelet: float = 0.1
    # Daubechies 9, as the method proposes.
    wavelet_name: str = "db9"
    # Levels of the wavelet transform: texture lives in the two finest bands.
    wavelet_levels: int = 2


@dataclass
class Ablation:
    """Switch each AP-HiDiff part off on its own (True = part in use)."""

    disentangle: bool = True  # off: a plain CT encoder, no VQ, no modality code
    gate: bool = True  # off: anatomy and modality features are summed, not gated
    multiscale: bool = True  # off: only the full-resolution head is trained
    anatomical_loss: bool = True  # off: no L_ac
    lesion_loss: bool = True  # off: no lesion head / CE
    wavelet_loss: bool = True  # off: no wavelet texture loss

    @classmethod
    def parse(cls, names: list[str] | tuple[str, ...]) -> Ablation:
        """Ablation with the named parts switched off (`--ablate gate --ablate wavelet_loss`)."""
        known = {f.name for f in dataclasses.fields(cls)}
        bad = [n for n in names if n.replace("-", "_") not in known]
        if bad:
            raise InputError(f"unknown ablation {bad}; choose from {sorted(known)}")
        return cls(**{n.replace("-", "_"): False for n in names})


@dataclass
class Pix2PixConfig:
    """pix2pix (Isola et al. 2017) choices."""

    # L1 weight 100 as in the paper: the GAN term sharpens, L1 carries the content.
    l1: float = 100.0
    # PatchGAN depth: 3 stride-2 layers give the paper's 70x70 receptive field.
    disc_layers: int = 3
    disc_channels: int = 32


@dataclass
class ModelConfig:
    """Everything that defines one trained network (saved as the run's config.json)."""

    model: str = "ap-hidiff"
    preset: str = "tiny"
    data: DataConfig = field(default_factory=DataConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    vqvae: VQVAEConfig = field(default_factory=VQVAEConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ablation: Ablation = field(default_factory=Ablation)
    pix2pix: Pix2PixConfig = field(default_factory=Pix2PixConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict` (lists from JSON become the tuples the dataclasses hold)."""
        parts = {}
        for f in dataclasses.fields(cls):
            value = d.get(f.name)
            if value is None:
                continue
            if isinstance(value, dict):
                sub = f.default_factory()  # type: ignore[misc]
                kwargs = {
                    k: tuple(v) if isinstance(v, list) else v
                    for k, v in value.items()
                    if k in {g.name for g in dataclasses.fields(sub)}
                }
                parts[f.name] = type(sub)(**kwargs)
            else:
                parts[f.name] = value
        return cls(**parts)


def preset(name: str, model: str = "ap-hidiff") -> ModelConfig:
    """The named preset for `model` (one of MODEL_KINDS)."""
    if model not in MODEL_KINDS:
        raise InputError(f"unknown model {model!r}; choose from {', '.join(MODEL_KINDS)}")
    if name == "tiny":
        cfg = ModelConfig()
    elif name == "small":
        cfg = ModelConfig(
            # The edge target is a 512^2 slice, so the teacher works on that grid; 128^2 crops
            # (90 mm of anatomy) keep a training step at crop cost (16x fewer FLOPs than a whole
            # slice); the U-Net is fully convolutional, so it runs on whole slices afterwards.
            data=DataConfig(grid=512, crop=128),
            unet=UNetConfig(base_channels=32, channel_mults=(1, 2, 4, 4), res_blocks=2),
            vqvae=VQVAEConfig(hidden=32, code_dim=16, codebook_size=256, modality_dim=32),
        )
    elif name == "full":
        cfg = ModelConfig(
            # The method's 512^2 in-plane, 256^2 crops to fit a 48 GB GPU with checkpointing.
            data=DataConfig(grid=512, crop=256, context=2),
            unet=UNetConfig(
                base_channels=64,
                channel_mults=(1, 2, 4, 4),
                res_blocks=2,
                attention=True,
                groups=32,
                gradient_checkpointing=True,
            ),
            vqvae=VQVAEConfig(hidden=64, code_dim=32, codebook_size=512, modality_dim=64),
        )
    else:
        raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    cfg.model = model
    cfg.preset = name
    if name == "tiny":
        cfg.unet.attention = False
    return cfg
