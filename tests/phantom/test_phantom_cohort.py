"""A 20-case cohort: lesion variety, small satellites, arterio-portal shunts; resumable writing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from edge_runtime.errors import HidiffError
from models.phantom import PhantomConfig, write_cohort
from models.phantom.config import LESION_TYPES
from models.phantom.render import LABELS

COHORT = {"n": 20, "seed": 2026, "grid": 128, "slices": 32}


def read(folder: Path, stem: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{stem}.nii.gz")))


@pytest.fixture(scope="session")
def cohort20(tmp_path_factory) -> Path:
    """20 noise-free patients of the default generator (noise off, so the shunt's contrast is
    measured without averaging noise away; the noise level each patient would get is in
    case.json and sets the tolerance)."""
    out = tmp_path_factory.mktemp("cohort") / "c20"
    cfg = PhantomConfig(noise=False)
    write_cohort(
        COHORT["n"], COHORT["seed"], out, grid=COHORT["grid"], slices=COHORT["slices"],
        config=cfg, preview=False,
    )  # fmt: skip
    return out


def test_manifest_and_split(cohort20) -> None:
    man = json.loads((cohort20 / "cohort.json").read_text())
    assert man["format"] == "hidiff-phantom-cohort/1"
    assert len(man["cases"]) == 20
    splits = [c["split"] for c in man["cases"]]
    assert {"train", "val", "test"} == set(splits)
    assert splits.count("train") == 14
    assert len({c["seed"] for c in man["cases"]}) == 20
    for c in man["cases"]:
        assert (cohort20 / c["id"] / "case.json").is_file()


def test_cohort_lesion_variety(cohort20) -> None:
    rows = []
    for case_dir in sorted(cohort20.glob("case-*")):
        rows += json.loads((case_dir / "lesions.json").read_text())
    types = {r["type"] for r in rows}
    assert types == set(LESION_TYPES)
    small_satellites = [r for r in rows if r["type"] == "satellite" and r["diameter_mm"] < 3.0]
    assert len(small_satellites) >= 5
    assert sum(r["type"] == "ap_shunt" for r in rows) >= 3
    for r in rows:
        if r["type"] != "satellite":
            assert 2.0 <= r["diameter_mm"] <= 40.0 or r["type"] in ("pvtt", "ap_shunt"), r


def _shunt_regions(case_dir: Path, shunt_id: int):
    lesions = read(case_dir, "lesions")
    vessels = read(case_dir, "vessels")
    labels = read(case_dir, "labels")
    near_vessel = ndimage.binary_dilation(vessels > 0)
    # parenchyma only: away from vessels and from the capsule (partial volume with fat/lung)
    inner = ndimage.binary_erosion(labels == LABELS["liver"], np.ones((3, 3, 3), bool))
    shunt = (lesions == shunt_id) & ~near_vessel & inner
    grown1 = ndimage.binary_dilation(lesions == shunt_id, iterations=1)
    grown3 = ndimage.binary_dilation(lesions == shunt_id, iterations=3)
    other_lesion = ndimage.binary_dilation((lesions > 0) & (lesions != shunt_id), iterations=1)
    ring = grown3 & ~grown1 & inner & ~near_vessel & ~other_lesion
    return shunt, ring


def test_shunts_enhance_only_on_arterial_ct(cohort20) -> None:
    checked = 0
    for case_dir in sorted(cohort20.glob("case-*")):
        meta = json.loads((case_dir / "case.json").read_text())
        for row in json.loads((case_dir / "lesions.json").read_text()):
            if row["type"] != "ap_shunt":
                continue
            assert row["pseudo"] and row["visible_in"] == ["ct_arterial"]
            shunt, ring = _shunt_regions(case_dir, row["id"])
            assert shunt.sum() >= 1 and ring.sum() >= 20, (case_dir.name, shunt.sum(), ring.sum())

            def diff(stem: str, shunt=shunt, ring=ring, case_dir=case_dir) -> float:
                img = read(case_dir, stem).astype(np.float64)
                return float(img[shunt].mean() - img[ring].mean())

            assert diff("ct_arterial") >= 30.0, (case_dir.name, diff("ct_arterial"))
            half_ct = meta["ct_noise_sigma_hu"] / 2
            assert abs(diff("ct_portal")) <= half_ct, (case_dir.name, diff("ct_portal"))
            for seq in ("t1", "t2", "t1c"):
                for stem in (f"mr_{seq}_ctphase",):
                    half = meta["mr_noise_sigma"][seq] / 2
                    assert abs(diff(stem)) <= half, (case_dir.name, stem, diff(stem), half)
            checked += 1
    assert checked >= 3


def test_interrupted_cohort_resumes_without_rerendering(tmp_path, monkeypatch) -> None:
    import models.phantom.cohort as cohort_mod

    out = tmp_path / "co"
    calls: list[str] = []
    real_render = cohort_mod.render_case

    def counting_render(seed, *a, **k):
        calls.append(seed)
        return real_render(seed, *a, **k)

    monkeypatch.setattr(cohort_mod, "render_case", counting_render)

    # 1) a crash while the third case is being written: nothing of it may look finished
    real_write = cohort_mod.write_case_files
    written = []

    def crashing_write(case, folder, preview=True):
        if len(written) == 2:
            (Path(folder) / "ct_plain.nii.gz").write_bytes(b"half")
            raise KeyboardInterrupt
        written.append(case.seed)
        real_write(case, folder, preview=preview)

    monkeypatch.setattr(cohort_mod, "write_case_files", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        write_cohort(4, 5, out, grid=64, slices=8, preview=False)
    done = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert done == ["case-0000", "case-0001", "cohort.json"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    # 2) a hard kill leaves a hidden partial folder; the next run removes it and resumes
    (out / ".case-0002.partial-999-deadbeef").mkdir()
    stamp = (out / "case-0000" / "ct_plain.nii.gz").stat().st_mtime_ns
    monkeypatch.setattr(cohort_mod, "write_case_files", real_write)
    calls.clear()
    rendered = []
    write_cohort(4, 5, out, grid=64, slices=8, preview=False,
                 on_case=lambda cid, r: rendered.append((cid, r)))  # fmt: skip
    assert rendered == [("case-0000", False), ("case-0001", False), ("case-0002", True),
                        ("case-0003", True)]  # fmt: skip
    assert len(calls) == 2
    assert (out / "case-0000" / "ct_plain.nii.gz").stat().st_mtime_ns == stamp
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    # 3) the same folder with another cohort's parameters is refused
    with pytest.raises(HidiffError, match="different cohort"):
        write_cohort(4, 6, out, grid=64, slices=8, preview=False)


@pytest.mark.slow
def test_killed_cohort_process_resumes(tmp_path) -> None:
    """A real `hidiff phantom cohort` killed with SIGKILL mid-run, then run again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    hidiff = str(Path(sys.executable).parent / "hidiff")
    out = tmp_path / "co"
    args = [hidiff, "phantom", "cohort", "--n", "5", "--seed", "9", "--grid", "64",
            "--slices", "8", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "case-0001").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name for p in out.glob("case-*")}
    assert finished and len(finished) < 5
    for name in finished:  # whatever looks finished is complete
        assert (out / name / "case.json").is_file() and (out / name / "preview.png").is_file()
    stamps = {n: (out / n / "case.json").stat().st_mtime_ns for n in finished}
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.glob("case-*")} == {f"case-{i:04d}" for i in range(5)}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    for n, stamp in stamps.items():
        assert (out / n / "case.json").stat().st_mtime_ns == stamp
