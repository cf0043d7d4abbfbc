"""Lesion-aware loss L_lesion = CE(M_pred, M_true) (the method's fix for missed satellites).

The lesion head segments the *generated* image; if the generator drops a 3 mm satellite, the
head cannot find it and the loss rises, pushing the generator to draw it. Arterio-portal shunts
are labelled background, so drawing one as a lesion is penalised too. Lesions are a tiny
fraction of pixels: the positive class is up-weighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lesion_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    positive_weight: float = 10.0,
) -> torch.Tensor:
    """Cross-entropy of (B, C, H, W) logits against (B, H, W) int64 labels, per-sample weighted.

    `positive_weight` up-weights every non-background class (lesions cover < 1 % of a slice).
    """
    classes = logits.shape[1]
    class_w = torch.full((classes,), positive_weight, dtype=logits.dtype, device=logits.device)
    class_w[0] = 1.0
    ce = F.cross_entropy(logits, target, weight=class_w, reduction="none").flatten(1).mean(1)
    if weight is not None:
        ce = ce * weight
    return ce.mean()
