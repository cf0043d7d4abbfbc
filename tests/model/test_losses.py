"""Loss terms: L_ac, the db9 wavelet transform/loss, lesion CE."""

import numpy as np
import pytest
import pywt
import torch

from models.losses.anatomical import anatomical_loss
from models.losses.lesion import lesion_loss
from models.losses.wavelet import DWT2, WaveletTextureLoss


def test_anatomical_loss_zero_when_equal_and_blind_outside_mask():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 1, 16, 16, generator=g)
    mask = torch.zeros_like(ref)
    mask[:, :, 4:8, 4:8] = 1
    assert anatomical_loss(ref, ref, mask).item() == 0.0
    outside = ref.clone()
    outside[:, :, 10:, 10:] += 5.0
    assert anatomical_loss(outside, ref, mask).item() == 0.0
    inside = ref.clone()
    inside[:, :, 4:8, 4:8] += 0.5
    # mean squared error over the 16 vessel pixels of each sample: 0.25
    assert anatomical_loss(inside, ref, mask).item() == pytest.approx(0.25, rel=1e-6)
    weight = torch.tensor([1.0, 0.0])
    assert anatomical_loss(inside, ref, mask, weight).item() == pytest.approx(0.125, rel=1e-6)


def test_anatomical_loss_no_vessels_is_zero_not_nan():
    x = torch.randn(1, 1, 8, 8)
    assert anatomical_loss(x, x + 1, torch.zeros_like(x)).item() == 0.0


@pytest.mark.parametrize("shape", [(64, 48), (32, 32)])
def test_dwt_matches_pywavelets_db9(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 1, *shape))
    ca, (ch, cv, cd) = DWT2("db9")(torch.tensor(x))
    ref_a, (ref_h, ref_v, ref_d) = pywt.dwt2(x, "db9", mode="periodization", axes=(-2, -1))
    for ours, theirs in ((ca, ref_a), (ch, ref_h), (cv, ref_v), (cd, ref_d)):
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-10)


def test_wavelet_loss_sees_texture_not_offset():
    g = torch.Generator().manual_seed(2)
    smooth = torch.linspace(-1, 1, 64).repeat(64, 1)[None, None]
    loss = WaveletTextureLoss("db9", levels=2)
    assert loss(smooth, smooth).item() == 0.0
    textured = smooth + 0.1 * torch.randn(smooth.shape, generator=g)
    assert loss(textured, smooth).item() > 0.01
    # a constant offset lives in the approximation band only: details unchanged
    assert loss(smooth + 0.3, smooth).item() < 1e-6


def test_wavelet_loss_backpropagates():
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    WaveletTextureLoss("db9", levels=1)(x, torch.zeros(1, 1, 32, 32)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lesion_loss_low_for_right_high_for_wrong():
    target = torch.zeros(1, 8, 8, dtype=torch.int64)
    target[0, 2:4, 2:4] = 1
    right = torch.stack([(target == 0).float(), (target == 1).float()], 1) * 20 - 10
    assert lesion_loss(right, target).item() < 1e-6
    assert lesion_loss(-right, target).item() > 5.0
