"""Anatomy/modality disentangling VQ-VAE: "what is there" (z_a) apart from "how it looks" (z_m).

- z_a, the anatomy code: a spatial map (H/2^d) of vectors quantised against one codebook shared
  by CT and MR. CT (2.5D, all its channels) and MR (one slice) have their own input stem and
  share the rest of the encoder, so the same anatomy lands on the same codes.
- z_m, the modality code: one global vector per image (pooled), the image's "physics".
- The decoder draws z_a in the style z_m (FiLM: z_m scales and shifts every decoder stage).

Losses (`losses`): reconstruction of CT and MR from their own codes; cross-reconstruction
(z_a(CT) with z_m(MR) -> MR, z_a(MR) with z_m(CT) -> CT), which only works when z_a carries no
modality; alignment of the pre-quantised anatomy maps of CT and MR; VQ commitment (the codebook
itself is updated by exponential moving averages, van den Oord et al. 2017, appendix); and a
per-modality prior of z_m, the code used at inference when no MR exists.

The swap test (tests/model/test_swap.py) checks what this buys: decoding z_a(CT) with z_m(MR)
reconstructs the MR better than decoding it with z_m(CT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.aphidiff.config import MODALITIES, VQVAEConfig


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ConvBlock(nn.Module):
    """Residual conv-GroupNorm-SiLU block."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), _norm(ch), nn.SiLU()
        )
        self.out = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.body(x))


class VectorQuantizer(nn.Module):
    """Nearest-codeword quantiser with an EMA-updated codebook and straight-through gradients.

    Inference is argmin + gather (ONNX ArgMin/Gather); the EMA update runs only in training.
    """

    def __init__(self, size: int, dim: int, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("codebook", torch.randn(size, dim) * 0.1)
        self.register_buffer("cluster_size", torch.ones(size))
        self.register_buffer("embed_sum", self.codebook.clone())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise z (B, D, H, W); return (z_q straight-through, indices, commitment loss)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        idx = torch.argmin(self.distances(flat), dim=1)
        zq = F.embedding(idx, self.codebook).reshape(b, h, w, d).permute(0, 3, 1, 2)
        if self.training:
            self._ema_update(flat.detach(), idx)
        commitment = F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), idx.reshape(b, h, w), commitment

    def distances(self, flat: torch.Tensor) -> torch.Tensor:
        """Squared distance of each row of `flat` (N, D) to each codeword: (N, size), the
        tensor whose argmin is the code (the export gate compares it across runtimes)."""
        return (
            (flat * flat).sum(1, keepdim=True)
            - 2.0 * flat @ self.codebook.t()
            + (self.codebook * self.codebook).sum(1)[None, :]
        )

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, self.codebook.shape[0]).type(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + 1e-5) / (n + self.codebook.shape[0] * 1e-5) * n
        self.codebook.copy_(self.embed_sum / size[:, None])


class AnatomyEncoder(nn.Module):
    """CT or MR slice -> pre-quantised anatomy map at H / 2^downsamples."""

    def __init__(self, cfg: VQVAEConfig, ct_channels: int, with_mr: bool = True) -> None:
        super().__init__()
        self.stem_ct = nn.Conv2d(ct_channels, cfg.hidden, 3, padding=1)
        # The MR stem exists only where MR is encoded (not in the no-disentangle ablation).
        self.stem_mr = nn.Conv2d(1, cfg.hidden, 3, padding=1) if with_mr else None
        layers: list[nn.Module] = []
        for _ in range(cfg.downsamples):
            layers += [ConvBlock(cfg.hidden), nn.Conv2d(cfg.hidden, cfg.hidden, 4, 2, 1)]
        layers += [ConvBlock(cfg.hidden), _norm(cfg.hidden), nn.SiLU()]
        layers += [nn.Conv2d(cfg.hidden, cfg.code_dim, 1)]
        self.trunk = nn.Sequential(*layers)

    def forward_ct(self, ct: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.stem_ct(ct))

    def forward_mr(self, mr: torch.Tensor) -> torch.Tensor:
        if self.stem_mr is None:
            raise ValueError("this anatomy encoder was built without an MR stem")
        return self.trunk(self.stem_mr(mr))


class ModalityEncoder(nn.Module):
    """One-channel image -> global modality code z_m (B, modality_dim)."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.net = nn.Sequential(
            nn.Conv2d(1, h, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(h, h, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(h, h, 4, 2, 1),
            nn.SiLU(),
        )
        # Mean and standard deviation of features: global intensity and texture statistics.
        self.head = nn.Linear(2 * h, cfg.modality_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.net(x)
        return self.head(torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3))], dim=1))


class FiLMBlock(nn.Module):
    """ConvBlock whose normalised activations are scaled and shifted by z_m."""

    def __init__(self, ch: int, modality_dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(8, ch), ch, affine=False)
        self.film = nn.Linear(modality_dim, 2 * ch)
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, zm: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(zm)[:, :, None, None].chunk(2, dim=1)
        return x + self.conv(F.silu(self.norm(x) * (1 + scale) + shift))


class Decoder(nn.Module):
    """(z_a, z_m) -> one-channel image at full resolution."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.inp = nn.Conv2d(cfg.code_dim, cfg.hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            [FiLMBlock(cfg.hidden, cfg.modality_dim) for _ in range(cfg.downsamples + 1)]
        )
        self.ups = nn.ModuleList(
            [nn.Conv2d(cfg.hidden, cfg.hidden, 3, padding=1) for _ in range(cfg.downsamples)]
        )
        self.out = nn.Sequential(_norm(cfg.hidden), nn.SiLU(), nn.Conv2d(cfg.hidden, 1, 3, 1, 1))

    def forward(self, za: torch.Tensor, zm: torch.Tensor) -> torch.Tensor:
        h = self.inp(za)
        for i, up in enumerate(self.ups):
            h = self.blocks[i](h, zm)
            h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(self.blocks[-1](h, zm))


class VQVAE(nn.Module):
    """The disentangling VQ-VAE: anatomy encoder + quantiser, modality encoder + prior, decoder."""

    def __init__(self, cfg: VQVAEConfig, ct_channels: int, ct_center: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.ct_center = ct_center
        self.anatomy = AnatomyEncoder(cfg, ct_channels)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, cfg.codebook_decay)
        self.modality = ModalityEncoder(cfg)
        self.decoder = Decoder(cfg)
        # z_m used when the target modality's image is not available (inference): one per modality.
        self.modality_prior = nn.Embedding(len(MODALITIES), cfg.modality_dim)

    def encode_anatomy_ct(self, ct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantised z_a of a 2.5D CT and its commitment loss."""
        zq, _, commit = self.quantizer(self.anatomy.forward_ct(ct))
        return zq, commit

    def encode_anatomy_mr(self, mr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zq, _, commit = self.quantizer(self.anatomy.forward_mr(mr))
        return zq, commit

    def ct_slice(self, ct: torch.Tensor) -> torch.Tensor:
        """The centre slice of the first CT phase: what a CT reconstruction is compared with."""
        return ct[:, self.ct_center : self.ct_center + 1]

    def losses(
        self, ct: torch.Tensor, mr: torch.Tensor, modality_id: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """All VQ-VAE terms for a batch of paired CT (2.5D) and MR (modality_id in MODALITIES)."""
        return self.losses_and_anatomy(ct, mr, modality_id)[0]

    def losses_and_anatomy(
        self, ct: torch.Tensor, mr: torch.Tensor, modality_id: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(`losses`, z_a(CT)): the denoiser's condition reuses this z_a rather than encoding
        (and updating the codebook with) the CT twice per step."""
        ze_ct = self.anatomy.forward_ct(ct)
        ze_mr = self.anatomy.forward_mr(mr)
        za_ct, _, commit_ct = self.quantizer(ze_ct)
        za_mr, _, commit_mr = self.quantizer(ze_mr)
        ct_img = self.ct_slice(ct)
        zm_ct = self.modality(ct_img)
        zm_mr = self.modality(mr)
        ct_id = torch.zeros_like(modality_id)
        terms = {
            "vq_rec_ct": F.l1_loss(self.decoder(za_ct, zm_ct), ct_img),
            "vq_rec_mr": F.l1_loss(self.decoder(za_mr, zm_mr), mr),
            "vq_cross_mr": F.l1_loss(self.decoder(za_ct, zm_mr), mr),
            "vq_cross_ct": F.l1_loss(self.decoder(za_mr, zm_ct), ct_img),
            "vq_align": F.mse_loss(ze_ct, ze_mr),
            "vq_commit": self.cfg.commitment * (commit_ct + commit_mr),
            "vq_prior": F.mse_loss(self.modality_prior(modality_id), zm_mr.detach())
            + F.mse_loss(self.modality_prior(ct_id), zm_ct.detach()),
        }
        return terms, za_ct
