"""AP-HiDiff: anatomy-prior-guided hierarchical diffusion, CT (2.5D) -> MR sequence.

Two graphs, as the runtime runs them:
1. `encode(ct, sequence)`: once per slice. The VQ-VAE's anatomy code z_a of the CT and the
   target sequence's modality code z_m (the learned prior, since no MR exists at inference)
   are fused by the gate G = sigmoid(W_g [z_a; z_m]) and spread into one condition map per
   U-Net level.
2. `denoise(x_t, t, sequence, *conds)`: once per sampler step.

Hierarchical denoising is a *joint multi-scale network* (not a cascade): one U-Net whose
decoder has an output head at each level, trained together on the target at full, half and
quarter resolution (at the full preset's 512^2: 512, 256 and 128 in-plane). The coarse heads
force the lower levels to carry a complete, coherent image of their scale (global anatomy at
128, organs and vessels at 256) that the finer levels refine; at inference only the
full-resolution head runs, so one network call per step and static shapes. A cascade of three
networks would triple inference cost, the thing this project has to cut.

`training_losses` returns every term (diffusion at each scale, the VQ-VAE's, L_ac, lesion CE,
wavelet texture); `Ablation` switches each part off on its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.aphidiff.config import MODALITIES, SEQUENCES, ModelConfig
from models.aphidiff.diffusion import ForwardProcess
from models.aphidiff.fusion import ConditionPyramid, GatedFusion
from models.aphidiff.lesion_head import LesionHead
from models.aphidiff.unet import UNet
from models.aphidiff.vqvae import VQVAE, AnatomyEncoder
from models.losses.anatomical import anatomical_loss
from models.losses.lesion import lesion_loss
from models.losses.wavelet import WaveletTextureLoss


class APHiDiff(nn.Module):
    """The full model; see the module docstring."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, v, ab = cfg.data, cfg.vqvae, cfg.ablation
        if ab.disentangle:
            self.vqvae: VQVAE | None = VQVAE(v, d.ct_channels, ct_center=d.context)
            self.encoder: AnatomyEncoder | None = None
            self.sequence_code: nn.Embedding | None = None
        else:
            # Ablation: a plain CT encoder (no quantiser, no modality encoder, no VQ losses);
            # the sequence's code is a learned embedding trained by the denoising loss alone.
            self.vqvae = None
            self.encoder = AnatomyEncoder(v, d.ct_channels, with_mr=False)
            self.sequence_code = nn.Embedding(len(MODALITIES), v.modality_dim)
        levels = len(cfg.unet.channel_mults)
        cond_ch = cfg.unet.base_channels
        self.fusion = GatedFusion(v.code_dim, v.modality_dim, cond_ch, gate=ab.gate)
        self.pyramid = ConditionPyramid(cond_ch, v.downsamples, levels)
        self.unet = UNet(
            cfg.unet,
            in_channels=1,
            out_channels=1,
            num_classes=len(SEQUENCES),
            cond_channels=(cond_ch,) * levels,
            scale_heads=ab.multiscale,
        )
        self.lesion_head = LesionHead(d.lesion_classes) if ab.lesion_loss else None
        self.process = ForwardProcess(cfg.diffusion)
        self.wavelet = (
            WaveletTextureLoss(cfg.loss.wavelet_name, cfg.loss.wavelet_levels)
            if ab.wavelet_loss
            else None
        )

    # -- the two inference graphs ----------------------------------------------------------

    def modality_code(self, sequence: torch.Tensor) -> torch.Tensor:
        """z_m of the target sequence (index into SEQUENCES) from the learned prior."""
        modality_id = sequence + 1  # MODALITIES = ("ct", *SEQUENCES)
        if self.vqvae is not None:
            return self.vqvae.modality_prior(modality_id)
        assert self.sequence_code is not None
        return self.sequence_code(modality_id)

    def anatomy_code(self, ct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_a, commitment loss) of a 2.5D CT batch."""
        if self.vqvae is not None:
            return self.vqvae.encode_anatomy_ct(ct)
        assert self.encoder is not None
        return self.encoder.forward_ct(ct), ct.new_zeros(())

    def encode(self, ct: torch.Tensor, sequence: torch.Tensor) -> list[torch.Tensor]:
        """Condition maps, one per U-Net level (finest first): run once per slice."""
        za, _ = self.anatomy_code(ct)
        return self.pyramid(self.fusion(za, self.modality_code(sequence)))

    def denoise(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        sequence: torch.Tensor,
        conds: list[torch.Tensor] | tuple[torch.Tensor, ...],
        all_scales: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        """The network's prediction (eps or v) at full resolution, or at every level."""
        return self.unet(x_t, t, sequence, list(conds), all_scales=all_scales)

    # -- training --------------------------------------------------------------------------

    def training_losses(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Every loss term for one batch; `loss` is their weighted sum (the thing to minimise).

        Noise and timesteps are drawn from `generator` so that a step is a function of
        (weights, batch, generator state): what makes resume bit-exact.
        """
        w, ab = self.cfg.loss, self.cfg.ablation
        ct, mr, seq = batch["ct"], batch["mr"], batch["sequence"]
        b = mr.shape[0]
        terms: dict[str, torch.Tensor] = {}
        total = mr.new_zeros(())

        if self.vqvae is not None:
            vq, za = self.vqvae.losses_and_anatomy(ct, mr, seq + 1)
            for k, val in vq.items():
                weight = {
                    "vq_align": w.anatomy_alignment,
                    "vq_prior": w.modality_prior,
                    "vq_commit": 1.0,
                }.get(k, w.reconstruction)
                terms[k] = val
                total = total + weight * val
        else:
            za, _ = self.anatomy_code(ct)
        conds = self.pyramid(self.fusion(za, self.modality_code(seq)))  # = self.encode(ct, seq)
        t = self.process.sample_t(b, generator).to(mr.device)
        noise = torch.randn(mr.shape, generator=generator).to(mr.device, mr.dtype)
        x_t, target = self.process.add_noise(mr, noise, t)
        out = self.denoise(x_t, t.float(), seq, conds, all_scales=ab.multiscale)
        preds = out if isinstance(out, list) else [out]
        terms["diffusion"] = F.mse_loss(preds[0].float(), target)
        total = total + terms["diffusion"]
        if ab.multiscale:
            ms = mr.new_zeros(())
            for level, pred in enumerate(preds[1:], start=1):
                ms = ms + F.mse_loss(pred.float(), F.avg_pool2d(target, 2**level))
            terms["multiscale"] = ms / max(len(preds) - 1, 1)
            total = total + w.multiscale * terms["multiscale"]

        x0_hat = self.process.predicted_x0(preds[0].float(), x_t, t)
        clean_w = self.process.clean_weight(t)
        if ab.anatomical_loss:
            terms["anatomical"] = anatomical_loss(x0_hat, mr, batch["vessels"], clean_w)
            total = total + w.anatomical * terms["anatomical"]
        if self.lesion_head is not None:
            logits = self.lesion_head(x0_hat)
            terms["lesion"] = lesion_loss(logits.float(), batch["lesions"], clean_w)
            total = total + w.lesion * terms["lesion"]
        if self.wavelet is not None:
            terms["wavelet"] = self.wavelet(x0_hat, mr, clean_w)
            total = total + w.wavelet * terms["wavelet"]
        terms["loss"] = total
        return terms

    def generator_modules(self) -> list[str]:
        """Names of submodules that the EMA tracks (everything that runs at inference)."""
        return [n for n, _ in self.named_children() if n not in ("lesion_head", "wavelet")]
