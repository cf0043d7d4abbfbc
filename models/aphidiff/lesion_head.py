"""The lesion head: segments lesions in the *generated* MR slice (for L_lesion).

It sees only the generated image, never the CT, so it cannot find a lesion the generator left
out: its cross-entropy is a signal to the generator to draw lesions (and not to draw
arterio-portal shunts, which are labelled background). Training-only; not in the export.
"""

from __future__ import annotations

import torch
from torch import nn


class LesionHead(nn.Module):
    """Small fully convolutional segmenter: image (B, 1, H, W) -> logits (B, classes, H, W)."""

    def __init__(self, classes: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.GroupNorm(min(8, width), width),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            nn.GroupNorm(min(8, width), width),
            nn.SiLU(),
            nn.Conv2d(width, classes, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)
