"""Augmented pairs stay aligned: images and labels are warped by the same random field."""

import numpy as np
import torch

from models.preprocess.augment import AugmentConfig, build_augment, simard_rms_displacement


def _sample(n=128):
    yy, xx = np.mgrid[0:n, 0:n]
    labels = np.zeros((n, n), np.float32)
    labels[(yy - 60) ** 2 + (xx - 50) ** 2 < 30**2] = 1
    labels[(yy - 80) ** 2 + (xx - 90) ** 2 < 15**2] = 2
    ct = labels * 100.0  # the image encodes the label: CT = 100 x label
    mr = (2 - labels) * 50.0  # and the MR too, differently
    t = lambda a: torch.as_tensor(a[None].copy())  # noqa: E731
    return {"ct": t(ct), "mr": t(mr), "labels": t(labels)}


def test_images_and_labels_move_together():
    cfg = AugmentConfig()
    cfg.ct_noise.prob = 0.0
    cfg.mr_noise.rician_prob = cfg.mr_noise.bias_prob = cfg.jitter.prob = 0.0
    aug = build_augment(pixel_mm=1.4, cfg=cfg, seed=5)
    src = _sample()
    out = aug(src)
    lab = out["labels"][0].numpy()
    ct = out["ct"][0].numpy()
    mr = out["mr"][0].numpy()
    moved = np.mean(lab != src["labels"][0].numpy())
    assert moved > 0.01, "the elastic field must actually move the anatomy"
    # where the warped image is not a boundary blend, it must agree with the warped label
    inner = np.isclose(ct % 100.0, 0.0, atol=1.0)
    assert inner.mean() > 0.9
    agree_ct = np.mean(np.round(ct[inner] / 100.0) == lab[inner])
    agree_mr = np.mean(np.round(2 - mr[inner] / 50.0) == lab[inner])
    assert agree_ct > 0.999 and agree_mr > 0.999


def test_misaligned_warp_is_detected_by_the_same_check():
    # two independent draws for image and labels must fail the agreement test above
    cfg = AugmentConfig()
    src = _sample()
    a = build_augment(1.4, cfg, seed=1)({"ct": src["ct"], "mr": src["mr"], "labels": src["labels"]})
    b = build_augment(1.4, cfg, seed=2)({"ct": src["ct"], "mr": src["mr"], "labels": src["labels"]})
    inner = np.isclose(a["ct"][0].numpy() % 100.0, 0.0, atol=1.0)
    assert (
        np.mean(np.round(a["ct"][0].numpy()[inner] / 100.0) == b["labels"][0].numpy()[inner])
        < 0.999
    )


def test_ct_noise_is_correlated_and_mr_noise_is_rician():
    cfg = AugmentConfig()
    cfg.ct_noise.prob = 1.0
    cfg.ct_noise.sigma_hu = (10.0, 10.0)
    cfg.elastic.prob = cfg.jitter.prob = 0.0
    cfg.mr_noise.rician_prob, cfg.mr_noise.bias_prob = 1.0, 0.0
    n = 128
    zero = {"ct": torch.zeros(1, n, n), "mr": torch.zeros(1, n, n), "labels": torch.zeros(1, n, n)}
    out = build_augment(1.4, cfg, seed=3)(zero)
    noise = out["ct"][0].numpy()
    assert abs(noise.std() - 10.0) < 0.5
    lag1 = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
    assert 0.1 < lag1 < 0.9  # lightly correlated, not white, not smeared
    mr = {"ct": torch.zeros(1, n, n), "mr": torch.full((1, n, n), 100.0), "labels": zero["labels"]}
    assert (build_augment(1.4, cfg, seed=3)(mr)["mr"] >= 0).all()  # Rician magnitudes


def test_simard_convention_would_be_a_no_op():
    assert simard_rms_displacement(50.0, 10.0) < 0.1  # pixels: why we use the control grid
