"""Phantom fixtures for the accuracy harness: a small cohort on disk and prediction folders.

Rendered once per session on a small grid (128^2 x 24 slices) so the whole harness runs in
about a minute. The phantom is configured so every case has HCC satellites and an
arterio-portal shunt: the tests need a small nodule to erase and a shunt to paint into.
Predictions are built from the truth the way a model could fail: a perfect copy, an independent
acquisition of the same patient (realisation 1), one satellite erased, a lesion painted into
a shunt, and the whole image displaced by 2 mm.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from benchmarks.accuracy.cohort import load_truth
from benchmarks.accuracy.lesions import background_ring, judge_probe, lesion_probes
from models.phantom import PhantomConfig, render_case, write_cohort

GRID, SLICES = 128, 24
COHORT_SEED = 7
N_CASES = 2
SHIFT_MM = 2.0


def phantom_config() -> PhantomConfig:
    cfg = PhantomConfig()
    cfg.lesions.ap_shunt_probability = 1.0
    cfg.lesions.satellite_probability = 1.0
    cfg.lesions.count = (2, 4)
    cfg.lesions.type_weights = {"hcc": 0.6, "hemangioma": 0.2, "metastasis": 0.2}
    return cfg


def write_like(reference: Path, array: np.ndarray, out: Path) -> Path:
    """Write `array` with the grid of the image at `reference`."""
    ref = sitk.ReadImage(str(reference))
    img = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    img.CopyInformation(ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(out))
    return out


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("accuracy") / "truth"
    write_cohort(
        N_CASES, COHORT_SEED, root, grid=GRID, slices=SLICES, config=phantom_config(), preview=False
    )
    return root


@dataclass
class Edits:
    """What the test predictions changed, so the tests can look for exactly that."""

    erased_case: str
    erased_id: str
    painted_case: str
    painted_id: str


def _truth_path(case_dir: Path, seq: str) -> Path:
    return case_dir / f"mr_{seq}_ctphase.nii.gz"


@pytest.fixture(scope="session")
def prediction_dirs(cohort_dir: Path, tmp_path_factory) -> tuple[dict[str, Path], Edits]:
    root = tmp_path_factory.mktemp("predictions")
    cohort = load_truth(cohort_dir)
    cfg = phantom_config()
    methods = ("truth", "real1", "erased", "painted", "shifted", "outside")
    dirs = {m: root / m for m in methods}
    erased = painted = None
    for entry in cohort.meta["cases"]:
        cid = entry["id"]
        case = cohort.case(cid)
        spacing = case.spacing
        real1 = render_case(entry["seed"], cfg, grid=GRID, slices=SLICES, realisation=1, ssim=False)
        for seq in ("t1", "t2", "t1c"):
            src = _truth_path(case.folder, seq)
            (dirs["truth"] / cid).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dirs["truth"] / cid / f"mr_{seq}.nii.gz")
            write_like(
                src, real1.images[f"mr_{seq}_ctphase"], dirs["real1"] / cid / f"mr_{seq}.nii.gz"
            )
            truth = case.truth(seq)
            moved = ndi.shift(truth, (0, 0, SHIFT_MM / spacing[2]), order=1, mode="nearest")
            write_like(src, moved, dirs["shifted"] / cid / f"mr_{seq}.nii.gz")
            # the truth inside the liver, another realisation around it
            inside = np.where(case.liver, truth, real1.images[f"mr_{seq}_ctphase"])
            write_like(src, inside, dirs["outside"] / cid / f"mr_{seq}.nii.gz")
        # erase the first small satellite the fixed detector sees on the true T2
        t2 = case.truth("t2")
        probes, _ = lesion_probes(
            case.lesions, case.lesion_records, case.liver, case.vessels, spacing
        )
        erased_img = t2.copy()
        if erased is None:
            for p in probes:
                row = judge_probe(p, t2, t2)
                if p.kind == "lesion" and p.diameter_mm < 3.0 and row["visible_in_truth"]:
                    erased_img[p.region] = np.median(t2[p.ring])
                    erased = (cid, p.ident)
                    break
        write_like(
            _truth_path(case.folder, "t2"), erased_img, dirs["erased"] / cid / "mr_t2.nii.gz"
        )
        # paint HCC-like T2 signal into the first shunt
        painted_img = t2.copy()
        shunts = [p for p in probes if p.kind == "shunt"]
        hcc = [p for p in probes if p.lesion_type == "hcc" and p.region.sum() >= 8]
        if painted is None and shunts and hcc:
            region = shunts[0].region
            lesion_level = np.median(t2[hcc[0].region])
            ring = background_ring(region, case.liver & ~(case.lesions > 0), spacing)
            painted_img[region] = lesion_level + (t2[region] - np.median(t2[ring]))
            painted = (cid, shunts[0].ident)
        write_like(
            _truth_path(case.folder, "t2"), painted_img, dirs["painted"] / cid / "mr_t2.nii.gz"
        )
        for m in ("erased", "painted"):
            for seq in ("t1", "t1c"):
                shutil.copy(_truth_path(case.folder, seq), dirs[m] / cid / f"mr_{seq}.nii.gz")
        case.drop_cache()
    assert erased is not None, "the test cohort has no visible satellite < 3 mm to erase"
    assert painted is not None, "the test cohort has no arterio-portal shunt to paint into"
    return dirs, Edits(erased[0], erased[1], painted[0], painted[1])


@dataclass
class Report:
    out: Path
    summary: dict
    per_case: pd.DataFrame
    lesions: pd.DataFrame
    regions: pd.DataFrame
    edits: Edits


@pytest.fixture(scope="session")
def report(cohort_dir, prediction_dirs, tmp_path_factory) -> Report:
    """One harness run on T2 with all six prediction folders."""
    from benchmarks.accuracy.run import run_accuracy

    dirs, edits = prediction_dirs
    out = tmp_path_factory.mktemp("report") / "accuracy"
    summary = run_accuracy(dirs, cohort_dir, out, sequences=["t2"], worst=1)
    return Report(
        out,
        summary,
        pd.read_csv(out / "per_case.csv"),
        pd.read_csv(out / "lesions.csv", dtype={"id": str}),
        pd.read_csv(out / "regions.csv"),
        edits,
    )
