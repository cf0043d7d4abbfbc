"""The fixed lesion detector and hallucination judge on a synthetic liver with known lesions."""

import numpy as np
import pytest

from benchmarks.accuracy.lesions import (
    LesionConfig,
    control_probes,
    judge_probe,
    lesion_probes,
    size_bin,
)

SPACING = (3.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(5)
    shape = (20, 96, 96)
    liver = np.zeros(shape, bool)
    liver[2:18, 8:88, 8:88] = True
    lesions = np.zeros(shape, np.uint16)
    zz, yy, xx = np.indices(shape)
    lesions[((zz - 10) * 3) ** 2 + (yy - 30) ** 2 + (xx - 30) ** 2 <= 8**2] = 1  # 16 mm HCC
    lesions[(zz == 10) & (yy == 30) & (xx == 48)] = 2  # a 1-voxel satellite (~1.5 mm)
    lesions[((zz - 10) * 3) ** 2 + (yy - 65) ** 2 + (xx - 65) ** 2 <= 5**2] = 3  # shunt
    vessels = np.zeros(shape, np.uint8)
    records = [
        {"id": 1, "type": "hcc", "pseudo": False, "diameter_mm": 16.0},
        {"id": 2, "type": "satellite", "pseudo": False, "diameter_mm": 1.5},
        {"id": 3, "type": "ap_shunt", "pseudo": True, "diameter_mm": 10.0},
        {"id": 4, "type": "satellite", "pseudo": False, "diameter_mm": 0.4},  # not on grid
    ]
    clean = np.where(liver, 100.0, 20.0)
    clean[lesions == 1] = 160.0
    clean[lesions == 2] = 250.0
    truth = clean + rng.normal(scale=10, size=shape)
    other = clean + rng.normal(scale=10, size=shape)  # independent render
    return liver, lesions, vessels, records, truth, other


def _judge(scene, pred):
    liver, lesions, vessels, records, truth, _ = scene
    probes, skipped = lesion_probes(lesions, records, liver, vessels, SPACING)
    probes += control_probes(liver, lesions, vessels, SPACING)
    return {r["id"]: r for r in (judge_probe(p, pred, truth) for p in probes)}, skipped


def test_bins() -> None:
    assert [size_bin(d) for d in (2.9, 3.0, 10.0, 10.1)] == ["<3mm", "3-10mm", "3-10mm", ">10mm"]


def test_truth_and_independent_render(scene) -> None:
    rows, skipped = _judge(scene, scene[4])
    assert [s["id"] for s in skipped] == ["4"]  # listed, not dropped
    assert rows["1"]["detected"] and rows["2"]["detected"]
    assert not rows["3"]["hallucinated"]
    controls = [r for r in rows.values() if r["kind"] == "control"]
    assert len(controls) == LesionConfig().n_controls
    assert not any(r["hallucinated"] for r in controls)
    rows2, _ = _judge(scene, scene[5])
    assert rows2["1"]["detected"] and rows2["2"]["detected"]
    assert not rows2["3"]["hallucinated"]


def test_erased_satellite_is_missed_and_painted_shunt_hallucinated(scene) -> None:
    liver, lesions, *_, other = scene
    pred = other.copy()
    pred[lesions == 2] = np.median(other[liver & (lesions == 0)])
    pred[lesions == 3] += 60.0
    rows, _ = _judge(scene, pred)
    assert rows["2"]["visible_in_truth"] and not rows["2"]["detected"]
    assert rows["2"]["size_bin"] == "<3mm"
    assert rows["1"]["detected"]
    assert rows["3"]["hallucinated"]
