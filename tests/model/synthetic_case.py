"""A tiny case folder following the phantom's contract (docs/phantom-contract.md).

Used by the model tests so that they do not depend on the phantom's renderer: a patient is an
elliptic body with a spine, a liver with tubular vessels, lesions and one arterio-portal shunt
(pseudo-lesion); CT in HU per phase; MR per sequence from per-tissue signal with a smooth bias
field and noise, rendered both at the CT's breathing phase (`*_ctphase`) and shifted by a few
pixels (the MR's phase). Patients differ by seed, so held-out cases are really unseen.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

LABELS = {"background": 0, "body": 1, "liver": 2, "spine": 3}
# tissue: (plain, arterial, portal) HU
HU = {
    "air": (-1000, -1000, -1000),
    "body": (40, 45, 50),
    "fat": (-100, -100, -100),
    "liver": (55, 70, 110),
    "vessel": (45, 100, 180),
    "lesion": (40, 120, 80),
    "shunt": (55, 140, 110),
    "spine": (400, 400, 400),
}
# tissue: (t2, t1, t1c) signal
MR = {
    "air": (0.0, 0.0, 0.0),
    "body": (0.25, 0.35, 0.4),
    "fat": (0.8, 0.9, 0.9),
    "liver": (0.3, 0.5, 0.7),
    "vessel": (0.9, 0.2, 0.95),
    "lesion": (0.75, 0.3, 0.5),
    "shunt": (0.3, 0.5, 0.7),
    "spine": (0.4, 0.6, 0.6),
}
SEQS = ("t2", "t1", "t1c")
PHASES = ("plain", "arterial", "portal")


def _tissues(rng: np.random.Generator, grid: int, slices: int, shift: float) -> dict:
    z, y, x = np.meshgrid(
        np.linspace(-1, 1, slices),
        np.linspace(-1, 1, grid),
        np.linspace(-1, 1, grid),
        indexing="ij",
    )
    y = y + shift
    a, b = rng.uniform(0.8, 0.92), rng.uniform(0.6, 0.75)
    body = (x / a) ** 2 + (y / b) ** 2 < 1
    fat = body & ((x / (a - 0.08)) ** 2 + (y / (b - 0.08)) ** 2 >= 1)
    lc = (rng.uniform(-0.45, -0.25), rng.uniform(-0.15, 0.05))
    lr = (rng.uniform(0.3, 0.4), rng.uniform(0.25, 0.35), 1.3)
    liver = ((x - lc[0]) / lr[0]) ** 2 + ((y - lc[1]) / lr[1]) ** 2 + (z / lr[2]) ** 2 < 1
    spine = (x**2 + ((y - b + 0.22) / 0.8) ** 2) < 0.1**2
    vessels = np.zeros_like(liver)
    for _ in range(3):
        angle = rng.uniform(0, np.pi)
        d = np.abs((x - lc[0]) * np.sin(angle) - (y - lc[1]) * np.cos(angle))
        vessels |= (d < rng.uniform(0.012, 0.03)) & liver
    lesions = np.zeros(liver.shape, np.uint16)
    entries = []
    for i in range(2):
        cx = lc[0] + rng.uniform(-0.5, 0.5) * lr[0]
        cy = lc[1] + rng.uniform(-0.5, 0.5) * lr[1]
        r = rng.uniform(0.04, 0.1)
        disc = ((x - cx) ** 2 + (y - cy) ** 2 + (z * 0.3) ** 2 < r**2) & liver
        lesions[disc] = i + 1
        entries.append(
            {
                "id": i + 1,
                "type": "hcc",
                "pseudo": False,
                "parent": None,
                "diameter_mm": float(2 * r * 180),
                "centroid_mm": [0.0, 0.0, 0.0],
                "visible_in": ["arterial", "portal", *SEQS],
            }
        )
    cx, cy = lc[0] + 0.6 * lr[0], lc[1]
    shunt = ((x - cx) ** 2 + (y - cy) ** 2 < 0.06**2) & liver & (lesions == 0)
    lesions[shunt] = 3
    entries.append(
        {
            "id": 3,
            "type": "ap_shunt",
            "pseudo": True,
            "parent": None,
            "diameter_mm": 10.8,
            "centroid_mm": [0.0, 0.0, 0.0],
            "visible_in": ["arterial"],
        }
    )
    tissue = np.full(liver.shape, "air", dtype=object)
    order = [
        ("body", body),
        ("fat", fat),
        ("spine", spine),
        ("liver", liver),
        ("shunt", shunt),
        ("vessel", vessels),
        ("lesion", (lesions > 0) & (lesions < 3)),
    ]
    for name, m in order:
        tissue[m] = name
    labels = np.zeros(liver.shape, np.uint8)
    labels[body] = LABELS["body"]
    labels[liver] = LABELS["liver"]
    labels[spine] = LABELS["spine"]
    return {
        "tissue": tissue,
        "labels": labels,
        "vessels": vessels.astype(np.uint8),
        "lesions": lesions,
        "entries": entries,
        "y": y,
        "x": x,
    }


def _write(arr: np.ndarray, path: Path, spacing: tuple[float, float, float]) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), useCompression=True)


def write_case(out: Path, seed: int, grid: int = 128, slices: int = 6) -> Path:
    """Write a contract-following case folder to `out` and return it."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    spacing = (360.0 / grid, 360.0 / grid, 5.0)
    ct_t = _tissues(np.random.default_rng(seed), grid, slices, 0.0)
    mr_t = _tissues(np.random.default_rng(seed), grid, slices, 0.04)
    tissue = ct_t["tissue"]
    for p, phase in enumerate(PHASES):
        hu = np.vectorize(lambda t, p=p: HU[t][p], otypes=[np.float32])(tissue)
        hu = hu + rng.normal(0, 10, hu.shape)
        _write(np.round(hu).astype(np.int16), out / f"ct_{phase}.nii.gz", spacing)
    bias_y = 1 + 0.15 * ct_t["y"]
    for s, seq in enumerate(SEQS):
        for suffix, tt in (("_ctphase", ct_t), ("", mr_t)):
            sig = np.vectorize(lambda t, s=s: MR[t][s], otypes=[np.float32])(tt["tissue"])
            sig = np.abs(sig * bias_y + rng.normal(0, 0.03, sig.shape)).astype(np.float32)
            _write(sig, out / f"mr_{seq}{suffix}.nii.gz", spacing)
    _write(ct_t["labels"], out / "labels.nii.gz", spacing)
    _write(mr_t["labels"], out / "mr_labels.nii.gz", spacing)
    _write(ct_t["vessels"], out / "vessels.nii.gz", spacing)
    _write(ct_t["lesions"], out / "lesions.nii.gz", spacing)
    motion = np.zeros((*ct_t["labels"].shape, 3), np.float32)
    motion[..., 1] = 0.04 * 180.0
    img = sitk.GetImageFromArray(motion, isVector=True)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(out / "motion_ct_to_mr.nii.gz"), useCompression=True)
    (out / "lesions.json").write_text(json.dumps(ct_t["entries"], indent=2))
    (out / "case.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "realisation": 0,
                "config": {},
                "grid": grid,
                "slices": slices,
                "spacing": list(spacing),
                "labels": LABELS,
                "ssim_ceiling": {"t1": 0.9, "t2": 0.9, "t1c": 0.9},
            },
            indent=2,
        )
    )
    return out


def write_cohort(out: Path, n: int, seed: int = 0, grid: int = 128, slices: int = 6) -> Path:
    """A cohort folder: cohort.json + n cases; the last case is the test split."""
    cases = []
    for i in range(n):
        cid = f"case-{i:04d}"
        write_case(out / cid, seed + i, grid, slices)
        split = "test" if i == n - 1 else "train"
        cases.append({"id": cid, "seed": seed + i, "split": split})
    (out / "cohort.json").write_text(
        json.dumps(
            {
                "format": "hidiff-phantom-cohort/1",
                "seed": seed,
                "grid": grid,
                "slices": slices,
                "config": {},
                "cases": cases,
            },
            indent=2,
        )
    )
    return out
