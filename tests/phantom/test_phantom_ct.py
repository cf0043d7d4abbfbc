"""CT: tissue means follow the HU table in all three phases; noise has the configured sigma."""

from __future__ import annotations

import numpy as np
import pytest
from phantom_helpers import eroded, tissue_mask

from models.phantom.case import CT_PHASES
from models.phantom.render import LABELS, tissue_names

# Table rows that are not one value by design: the hemangioma's peripheral nodules (nodular
# enhancement, "~ aorta" only where a nodule is) and the spleen's arterial moire.
NOT_A_SINGLE_VALUE = {("hemangioma_rim", "arterial")}
MUST_BE_TESTED = {
    "air", "fat", "muscle", "liver", "spleen", "aorta", "lung", "cancellous_bone",
    "stomach_fluid", "kidney_medulla", "hcc", "hemangioma", "metastasis", "cyst",
}  # fmt: skip


def test_tissue_means_match_hu_table_in_every_phase(clean_rich) -> None:
    tested = set()
    for case in clean_rich:
        assert not case.meta["noise"]
        for name in tissue_names(case.config):
            mask = tissue_mask(case, name)
            if mask.sum() < 8:
                continue
            tested.add(name)
            for i, phase in enumerate(CT_PHASES):
                if (name, phase) in NOT_A_SINGLE_VALUE:
                    continue
                mean = float(case.images[f"ct_{phase}"][mask].mean())
                expected = case.config.ct.hu[name][i]
                assert abs(mean - expected) <= 10.0, (name, phase, mean, expected)
    missing = MUST_BE_TESTED - tested
    assert not missing, f"tissues without an eroded mask to test: {missing}"


def test_enhancement_is_one_uptake_value_per_tissue_and_phase(clean_rich) -> None:
    case = clean_rich[0]
    k = case.config.ct.hu_per_mg_iodine
    liver = tissue_mask(case, "liver")
    for phase, idx in (("arterial", 1), ("portal", 2)):
        gain = case.images[f"ct_{phase}"][liver].mean() - case.images["ct_plain"][liver].mean()
        expected = case.config.ct.hu["liver"][idx] - case.config.ct.hu["liver"][0]
        assert gain == pytest.approx(expected, abs=2.0)
        assert gain / k > 0  # a positive iodine uptake drives it


def test_noise_sigma_matches_configuration(noisy_case) -> None:
    case = noisy_case
    sigma = case.meta["ct_noise_sigma_hu"]
    lo, hi = case.config.ct.noise_sigma_hu
    assert lo <= sigma <= hi
    air = eroded(case.labels == LABELS["background"], iterations=2)
    assert air.sum() > 10000
    fat = eroded(case.labels == LABELS["subcutaneous_fat"], iterations=2)
    assert fat.sum() > 2000
    for phase in CT_PHASES:
        for region in (air, fat):  # -1000 HU and -100 HU, both without texture
            measured = float(case.images[f"ct_{phase}"][region].astype(np.float64).std())
            assert measured == pytest.approx(sigma, rel=0.10), (phase, measured, sigma)


def test_noise_is_lightly_correlated(noisy_case) -> None:
    img = noisy_case.images["ct_plain"].astype(np.float64)
    air = eroded(noisy_case.labels == LABELS["background"], iterations=2)
    a = np.where(air, img + 1000.0, np.nan)
    lag1 = np.nanmean(a[:, :, 1:] * a[:, :, :-1]) / np.nanmean(a * a)
    assert 0.1 < lag1 < 0.8  # correlated by the reconstruction kernel, but only lightly
