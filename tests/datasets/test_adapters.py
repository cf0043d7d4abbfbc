"""Each adapter yields the right cases from a small fixture laid out with the dataset's own
folder and file naming, reads them with the right geometry, and says what is missing when the
folder is wrong or incomplete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from edge_runtime.errors import InputError
from edge_runtime.io import MedicalImage, write_ct_series
from models.datasets import (
    AMOS,
    CHAOS,
    Learn2RegAbdomenMRCT,
    PhantomCohort,
    SynthRAD2025Abdomen,
    open_dataset,
)
from models.datasets.chaos import natural_key


def volume(
    path: Path, shape=(6, 10, 8), value: float = 0.0, dtype=np.float32, spacing=(1.5, 1.5, 3.0)
) -> None:
    arr = (np.arange(np.prod(shape)).reshape(shape) % 7 + value).astype(dtype)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin((-6.0, -7.5, 10.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


# --- phantom cohort (the contract) -----------------------------------------------------------

PHANTOM_VOLUMES = {
    "ct_plain": np.int16, "ct_arterial": np.int16, "ct_portal": np.int16,
    "mr_t1": np.float32, "mr_t2": np.float32, "mr_t1c": np.float32,
    "mr_t1_ctphase": np.float32, "mr_t2_ctphase": np.float32, "mr_t1c_ctphase": np.float32,
    "labels": np.uint8, "mr_labels": np.uint8, "vessels": np.uint8, "lesions": np.uint16,
}  # fmt: skip


def phantom_fixture(root: Path, n: int = 3) -> Path:
    splits = ["train", "val", "test", "train"]
    cases = [{"id": f"case-{i:04d}", "seed": 100 + i, "split": splits[i]} for i in range(n)]
    root.mkdir(parents=True)
    (root / "cohort.json").write_text(
        json.dumps(
            {
                "format": "hidiff-phantom-cohort/1",
                "seed": 1,
                "grid": 8,
                "slices": 6,
                "config": {},
                "cases": cases,
            }
        )
    )
    for c in cases:
        folder = root / c["id"]
        for stem, dtype in PHANTOM_VOLUMES.items():
            volume(folder / f"{stem}.nii.gz", value=c["seed"] % 5, dtype=dtype)
        field = sitk.GetImageFromArray(np.zeros((6, 10, 8, 3), np.float32), isVector=True)
        sitk.WriteImage(field, str(folder / "motion_ct_to_mr.nii.gz"))
        (folder / "lesions.json").write_text("[]")
        (folder / "case.json").write_text(json.dumps({"seed": c["seed"], "ct_phase": 0}))
    return root


def test_phantom_fixture_cohort(tmp_path: Path) -> None:
    ds = open_dataset(phantom_fixture(tmp_path / "cohort"))
    assert isinstance(ds, PhantomCohort) and len(ds) == 3
    assert [c.split for c in ds] == ["train", "val", "test"]
    assert [c.case_id for c in ds.cases("val")] == ["case-0001"]
    case = ds["case-0002"]
    assert set(case.images) == {
        k for k in PHANTOM_VOLUMES if k.startswith(("ct_", "mr_")) and k != "mr_labels"
    }
    assert set(case.labels) == {"labels", "mr_labels", "vessels", "lesions"}
    assert case.modalities == {"CT", "MR"}
    assert case.meta["case"]["seed"] == 102
    ct = case.image("ct_portal")
    assert ct.voxels.shape == (6, 10, 8) and ct.spacing == (1.5, 1.5, 3.0)
    assert case.geometry("mr_t2_ctphase") == case.geometry("ct_portal")
    assert case.label("lesions").voxels.max() == 6 + 102 % 5
    with pytest.raises(InputError, match="has no image 'mr_flair'"):
        case.image("mr_flair")


def test_phantom_incomplete_cohort_names_the_missing_files(tmp_path: Path) -> None:
    root = phantom_fixture(tmp_path / "cohort")
    (root / "case-0001" / "mr_t2.nii.gz").unlink()
    (root / "case-0002" / "labels.nii.gz").unlink()
    with pytest.raises(InputError) as err:
        PhantomCohort(root)
    assert "case-0001/mr_t2.nii.gz" in str(err.value)
    shutil.rmtree(root / "case-0002")
    with pytest.raises(InputError, match="case-0002/"):
        PhantomCohort(root)


def test_phantom_wrong_folder_and_wrong_format(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"cohort\.json"):
        PhantomCohort(tmp_path / "empty")
    root = phantom_fixture(tmp_path / "c")
    (root / "cohort.json").write_text(json.dumps({"format": "something-else/2", "cases": []}))
    with pytest.raises(InputError, match="something-else/2"):
        PhantomCohort(root)


def test_real_rendered_phantom_cohort(tmp_path: Path) -> None:
    phantom = pytest.importorskip("models.phantom.cohort")
    manifest = phantom.write_cohort(2, 5, tmp_path / "cohort", grid=64, slices=6, preview=False)
    ds = open_dataset(tmp_path / "cohort")
    assert isinstance(ds, PhantomCohort)
    assert [c.case_id for c in ds] == [c["id"] for c in manifest["cases"]]
    assert [c.split for c in ds] == [c["split"] for c in manifest["cases"]]
    case = next(iter(ds))
    ct = case.image("ct_portal")
    mr = case.image("mr_t2_ctphase")
    assert ct.voxels.shape == (6, 64, 64)
    assert mr.same_grid(ct)
    assert np.percentile(ct.voxels, 1) < -900 and ct.voxels.max() > 100  # HU: air and bone
    assert case.label("labels").voxels.max() >= 1


# --- CHAOS -----------------------------------------------------------------------------------


def chaos_series(
    folder: Path, seed: int, modality: str, ground: Path | None, grey: int
) -> np.ndarray:
    """A DICOM series whose file names run against the body axis, plus its PNG ground truth.

    PNG i (natural order) is drawn from DICOM file i (natural order), as CHAOS ships them.
    Returns the volume in z order.
    """
    rng = np.random.default_rng(seed)
    vol = rng.integers(0, 400, size=(5, 12, 10)).astype(np.float32)
    image = MedicalImage(vol, (-20.0, -30.0, 50.0), (1.4, 1.4, 4.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    tmp = folder.parent / f".{folder.name}-tmp"
    write_ct_series(image, tmp, modality=modality)
    folder.mkdir(parents=True)
    files = sorted(tmp.glob("*.dcm"))
    for i, f in enumerate(reversed(files)):  # highest z gets the first name
        name = f"i{i:04d},0000b.dcm" if modality == "CT" else f"IMG-0004-{i + 1:05d}.dcm"
        shutil.move(f, folder / name)
        if modality == "MR":  # CHAOS MR files carry one SeriesInstanceUID each
            ds = pydicom.dcmread(folder / name)
            ds.SeriesInstanceUID = pydicom.uid.generate_uid()
            ds.save_as(folder / name, enforce_file_format=True)
        if ground is not None:
            ground.mkdir(parents=True, exist_ok=True)
            pixels = pydicom.dcmread(folder / name).pixel_array
            mask = np.where(pixels > 200, grey, 0).astype(np.uint8)
            png = f"liver_GT_{i:03d}.png" if modality == "CT" else f"IMG-0004-{i + 1:05d}.png"
            Image.fromarray(mask).save(ground / png)
    shutil.rmtree(tmp)
    return vol


def chaos_fixture(root: Path) -> dict[str, np.ndarray]:
    train = root / "Train_Sets"
    vols = {
        "ct": chaos_series(train / "CT" / "1" / "DICOM_anon", 1, "CT", train / "CT" / "1" / "Ground", 255),
        "in": chaos_series(train / "MR" / "2" / "T1DUAL" / "DICOM_anon" / "InPhase", 2, "MR",
                           train / "MR" / "2" / "T1DUAL" / "Ground", 63),
        "out": chaos_series(train / "MR" / "2" / "T1DUAL" / "DICOM_anon" / "OutPhase", 3, "MR", None, 0),
        "t2": chaos_series(train / "MR" / "2" / "T2SPIR" / "DICOM_anon", 4, "MR",
                           train / "MR" / "2" / "T2SPIR" / "Ground", 252),
    }  # fmt: skip
    chaos_series(root / "Test_Sets" / "CT" / "3" / "DICOM_anon", 5, "CT", None, 0)
    return vols


def test_chaos_fixture(tmp_path: Path) -> None:
    vols = chaos_fixture(tmp_path / "CHAOS")
    ds = open_dataset(tmp_path / "CHAOS")
    assert isinstance(ds, CHAOS)
    assert [(c.case_id, c.split) for c in ds] == [
        ("CT-1", "train"),
        ("MR-2", "train"),
        ("CT-3", "test"),
    ]
    ct_case, mr_case, test_case = list(ds)
    assert set(mr_case.images) == {"mr_t1_in", "mr_t1_out", "mr_t2"}
    assert mr_case.modalities == {"MR"} and ct_case.modalities == {"CT"}
    assert test_case.labels == {}
    np.testing.assert_array_equal(ct_case.image("ct").voxels, vols["ct"])
    np.testing.assert_array_equal(mr_case.image("mr_t1_out").voxels, vols["out"])
    # labels land on the right slices although file names run against z
    liver = ct_case.label("liver")
    np.testing.assert_array_equal(liver.voxels, (vols["ct"] > 200).astype(np.float32))
    assert liver.same_grid(ct_case.image("ct"))
    np.testing.assert_array_equal(mr_case.label("t1_labels").voxels, (vols["in"] > 200) * 1.0)
    np.testing.assert_array_equal(mr_case.label("t2_labels").voxels, (vols["t2"] > 200) * 4.0)


def test_chaos_incomplete_and_wrong_folders(tmp_path: Path) -> None:
    chaos_fixture(tmp_path / "CHAOS")
    shutil.rmtree(
        tmp_path / "CHAOS" / "Train_Sets" / "MR" / "2" / "T1DUAL" / "DICOM_anon" / "OutPhase"
    )
    with pytest.raises(InputError) as err:
        CHAOS(tmp_path / "CHAOS")
    assert "MR/2/T1DUAL/DICOM_anon/OutPhase/*.dcm" in str(err.value)
    shutil.rmtree(tmp_path / "CHAOS" / "Train_Sets" / "CT" / "1" / "Ground")
    with pytest.raises(InputError, match="CT/1/Ground"):
        CHAOS(tmp_path / "CHAOS")
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="expected Train_Sets"):
        CHAOS(tmp_path / "other")


def test_natural_order_of_chaos_names() -> None:
    names = [Path(f"IMG-0004-{i:05d}.dcm") for i in (10, 2, 1)]
    assert [p.name for p in sorted(names, key=natural_key)] == [
        "IMG-0004-00001.dcm", "IMG-0004-00002.dcm", "IMG-0004-00010.dcm",
    ]  # fmt: skip
    ct = [Path(f"liver_GT_{i}.png") for i in (10, 9, 100)]
    assert [p.name for p in sorted(ct, key=natural_key)] == [
        "liver_GT_9.png", "liver_GT_10.png", "liver_GT_100.png",
    ]  # fmt: skip


# --- AMOS ------------------------------------------------------------------------------------


def amos_fixture(root: Path) -> Path:
    for n in (1, 500, 507):
        volume(root / "imagesTr" / f"amos_{n:04d}.nii.gz", value=n)
        volume(root / "labelsTr" / f"amos_{n:04d}.nii.gz", dtype=np.uint8)
    volume(root / "imagesVa" / "amos_0008.nii.gz")
    volume(root / "labelsVa" / "amos_0008.nii.gz", dtype=np.uint8)
    volume(root / "imagesTs" / "amos_0600.nii.gz")
    meta = {
        "name": "AMOS",
        "labels": {"0": "background", "1": "spleen", "6": "liver"},
        "training": [
            {"image": "./imagesTr/amos_0001.nii.gz", "label": "./labelsTr/amos_0001.nii.gz"},
            {"image": "./imagesTr/amos_0500.nii.gz", "label": "./labelsTr/amos_0500.nii.gz"},
            {"image": "./imagesTr/amos_0507.nii.gz", "label": "./labelsTr/amos_0507.nii.gz"},
        ],
        "validation": [
            {"image": "./imagesVa/amos_0008.nii.gz", "label": "./labelsVa/amos_0008.nii.gz"}
        ],
        "test": ["./imagesTs/amos_0600.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_amos_fixture(tmp_path: Path) -> None:
    ds = open_dataset(amos_fixture(tmp_path / "amos22"))
    assert isinstance(ds, AMOS)
    got = [(c.case_id, c.split, sorted(c.images), c.modalities) for c in ds]
    assert got == [
        ("amos_0001", "train", ["ct"], {"CT"}),
        ("amos_0500", "train", ["ct"], {"CT"}),  # the boundary case is CT
        ("amos_0507", "train", ["mr"], {"MR"}),
        ("amos_0008", "val", ["ct"], {"CT"}),
        ("amos_0600", "test", ["mr"], {"MR"}),
    ]
    case = ds["amos_0507"]
    assert case.image("mr").voxels.min() == 507
    assert set(case.labels) == {"labels"} and ds["amos_0600"].labels == {}
    assert case.meta["labels"]["6"] == "liver"
    assert AMOS(tmp_path / "amos22", mri_first_id=500)["amos_0500"].modalities == {"MR"}


def test_amos_wrong_and_incomplete(tmp_path: Path) -> None:
    root = amos_fixture(tmp_path / "amos22")
    (root / "labelsTr" / "amos_0507.nii.gz").unlink()
    with pytest.raises(InputError, match=r"labelsTr/amos_0507\.nii\.gz"):
        AMOS(root)
    (root / "dataset.json").unlink()
    with pytest.raises(InputError, match=r"missing dataset\.json"):
        AMOS(root)


# --- Learn2Reg AbdomenMRCT -------------------------------------------------------------------


def learn2reg_fixture(root: Path) -> Path:
    for n in (1, 2):
        for ch, value in (("0000", 10), ("0001", -100)):
            name = f"AbdomenMRCT_{n:04d}_{ch}.nii.gz"
            volume(root / "imagesTr" / name, value=value)
            volume(root / "labelsTr" / name, dtype=np.uint8)
            volume(root / "masksTr" / name, dtype=np.uint8)
    volume(root / "imagesTr" / "AbdomenMRCT_0005_0001.nii.gz", value=-100)  # CT only
    volume(root / "labelsTr" / "AbdomenMRCT_0005_0001.nii.gz", dtype=np.uint8)
    volume(root / "masksTr" / "AbdomenMRCT_0005_0001.nii.gz", dtype=np.uint8)
    meta = {"name": "AbdomenMRCT", "pairings": "hybrid", "modality": {"0": "MR", "1": "CT"},
            "registration_direction": {"fixed": 0, "moving": 1}}  # fmt: skip
    (root / "AbdomenMRCT_dataset.json").write_text(json.dumps(meta))
    return root


def test_learn2reg_fixture(tmp_path: Path) -> None:
    ds = open_dataset(learn2reg_fixture(tmp_path / "AbdomenMRCT"))
    assert isinstance(ds, Learn2RegAbdomenMRCT)
    assert [c.case_id for c in ds] == ["AbdomenMRCT_0001", "AbdomenMRCT_0002", "AbdomenMRCT_0005"]
    first = ds["AbdomenMRCT_0001"]
    assert first.images["mr"].path.name.endswith("_0000.nii.gz")
    assert first.images["ct"].path.name.endswith("_0001.nii.gz")
    assert first.image("ct").voxels.min() == -100 and first.image("mr").voxels.min() == 10
    assert set(first.labels) == {"mr_labels", "ct_labels", "mr_mask", "ct_mask"}
    assert first.meta == {"paired": True, "aligned": False}
    assert ds["AbdomenMRCT_0005"].meta["paired"] is False


def test_learn2reg_wrong_and_incomplete(tmp_path: Path) -> None:
    root = learn2reg_fixture(tmp_path / "AbdomenMRCT")
    (root / "masksTr" / "AbdomenMRCT_0002_0000.nii.gz").unlink()
    with pytest.raises(InputError, match=r"masksTr/AbdomenMRCT_0002_0000\.nii\.gz"):
        Learn2RegAbdomenMRCT(root)
    (root / "AbdomenMRCT_dataset.json").unlink()
    with pytest.raises(InputError, match=r"missing AbdomenMRCT_dataset\.json"):
        Learn2RegAbdomenMRCT(root)


# --- SynthRAD2025 Task 1 abdomen -------------------------------------------------------------


def synthrad_fixture(root: Path) -> Path:
    for patient, value in (("1ABA005", 1), ("1ABC012", 2)):
        folder = root / "Task1" / "AB" / patient
        volume(folder / "mr.mha", value=value)
        volume(folder / "ct.mha", value=-1000 + value)
        volume(folder / "mask.mha", dtype=np.uint8)
    volume(root / "Task1" / "HN" / "1HNA001" / "mr.mha")  # another region: not abdomen
    return root


@pytest.mark.parametrize("sub", ["", "Task1", "Task1/AB"])
def test_synthrad_fixture(tmp_path: Path, sub: str) -> None:
    root = synthrad_fixture(tmp_path / "synthRAD2025_Task1_Train")
    ds = open_dataset(root / sub)
    assert isinstance(ds, SynthRAD2025Abdomen)
    assert [c.case_id for c in ds] == ["1ABA005", "1ABC012"]
    case = ds["1ABC012"]
    assert case.meta == {"paired": True, "aligned": True, "centre": "C"}
    assert case.image("ct").voxels.min() == -998
    assert case.geometry("mr") == case.geometry("ct") == case.geometry("body_mask")


def test_synthrad_wrong_and_incomplete(tmp_path: Path) -> None:
    root = synthrad_fixture(tmp_path / "s")
    (root / "Task1" / "AB" / "1ABC012" / "mask.mha").unlink()
    with pytest.raises(InputError, match=r"1ABC012/mask\.mha"):
        SynthRAD2025Abdomen(root)
    with pytest.raises(InputError, match="1ABxNNN"):
        SynthRAD2025Abdomen(root / "Task1" / "HN")


# --- detection -------------------------------------------------------------------------------


def test_open_dataset_refuses_unknown_folders(tmp_path: Path) -> None:
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a dataset this project knows"):
        open_dataset(tmp_path / "random")
    with pytest.raises(InputError, match="unknown dataset kind"):
        open_dataset(tmp_path / "random", kind="brats")
    with pytest.raises(InputError, match="not a folder"):
        open_dataset(tmp_path / "missing")
