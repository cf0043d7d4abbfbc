"""The residual U-Net backbone shared by AP-HiDiff, the plain conditional DDPM and pix2pix.

Export-friendly by construction: every shape is fixed by the input's shape (static per scale),
forward has no data-dependent Python branching, and only convolution, GroupNorm, SiLU,
nearest upsampling, average pooling, matmul/softmax attention and elementwise ops appear, all of
which export to ONNX opset >= 18 and convert to CoreML.

Conditioning enters in three ways, each optional:
- `in_channels` > 1: images concatenated to the noisy input (the plain DDPM's CT, pix2pix's CT);
- a class id (the MR sequence) embedded and added to the time embedding;
- a pyramid of condition maps, one per level (AP-HiDiff's fused anatomy/modality features),
  added after each encoder level through a zero-initialised 1x1 convolution so that training
  starts from the unconditioned network and the condition's influence grows as it helps.

The decoder has an output head at every level: `forward(..., all_scales=True)` returns the
predictions at H, H/2, H/4 (...), the joint multi-scale denoising of AP-HiDiff.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.aphidiff.config import UNetConfig


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding added as a per-channel shift."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head spatial self-attention written with matmul/softmax (exports everywhere)."""

    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        self.scale = ch**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(torch.matmul(q.transpose(1, 2), k) * self.scale, dim=-1)
        y = torch.matmul(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.out(y)


class UNet(nn.Module):
    """Residual U-Net with time/class embedding, condition pyramid and per-level output heads."""

    def __init__(
        self,
        cfg: UNetConfig,
        in_channels: int,
        out_channels: int = 1,
        num_classes: int = 0,
        cond_channels: tuple[int, ...] | None = None,
        scale_heads: bool = False,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        # Output heads at every level only where they are trained (AP-HiDiff's multi-scale
        # loss): an untrained parameter would also break DistributedDataParallel.
        self.scale_heads = scale_heads
        ch = [cfg.base_channels * m for m in cfg.channel_mults]
        emb_dim = 4 * cfg.base_channels
        self.base = cfg.base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.class_emb = nn.Embedding(num_classes, emb_dim) if num_classes > 0 else None
        self.stem = nn.Conv2d(in_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        self.cond_proj = nn.ModuleList()
        prev = ch[0]
        for level, c in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.res_blocks):
                blocks.append(ResBlock(prev, c, emb_dim, cfg.groups))
                prev = c
            self.down_blocks.append(blocks)
            if cond_channels is not None:
                proj = nn.Conv2d(cond_channels[level], c, 1)
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)
                self.cond_proj.append(proj)
            if level < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1 = ResBlock(prev, prev, emb_dim, cfg.groups)
        self.mid_attn = Attention(prev, cfg.groups) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(prev, prev, emb_dim, cfg.groups)
        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        self.heads = nn.ModuleList()
        for level in reversed(range(len(ch))):
            c = ch[level]
            blocks = nn.ModuleList()
            for i in range(cfg.res_blocks):
                blocks.append(ResBlock(prev + (c if i == 0 else 0), c, emb_dim, cfg.groups))
                prev = c
            self.up_blocks.append(blocks)
            if scale_heads or level == 0:
                self.heads.append(
                    nn.Sequential(
                        nn.GroupNorm(min(cfg.groups, c), c),
                        nn.SiLU(),
                        nn.Conv2d(c, out_channels, 3, padding=1),
                    )
                )
            if level > 0:
                self.upsample.append(nn.Conv2d(c, ch[level - 1], 3, padding=1))
                prev = ch[level - 1]
        self.out_channels = out_channels
        self.feature_channels = ch[0]

    @property
    def levels(self) -> int:
        return len(self.cfg.channel_mults)

    def _run(self, block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        if self.cfg.gradient_checkpointing and self.training:
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        class_id: torch.Tensor | None = None,
        cond: list[torch.Tensor] | tuple[torch.Tensor, ...] | None = None,
        all_scales: bool = False,
        return_features: bool = False,
    ) -> torch.Tensor | list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """Predict at full resolution, or at every level (finest first) with `all_scales`
        (which needs `scale_heads`)."""
        if all_scales and not self.scale_heads:
            raise ValueError("all_scales needs a U-Net built with scale_heads=True")
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.class_emb is not None and class_id is not None:
            emb = emb + self.class_emb(class_id)
        h = self.stem(x)
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = self._run(block, h, emb)
            if cond is not None and len(self.cond_proj) > 0:
                h = h + self.cond_proj[level](cond[level])
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self._run(self.mid1, h, emb)
        h = self.mid_attn(h)
        h = self._run(self.mid2, h, emb)
        outputs = []
        for i, blocks in enumerate(self.up_blocks):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = self._run(block, h, emb)
            if all_scales:
                outputs.append(self.heads[i](h))
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        main = self.heads[-1](h) if not all_scales else outputs[-1]
        result: torch.Tensor | list[torch.Tensor] = outputs[::-1] if all_scales else main
        if return_features:
            return result, h  # type: ignore[return-value]
        return result
