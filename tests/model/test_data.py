"""The dataset over phantom case folders: 2.5D stacks, alignment, masks, normalisation."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_case import write_case

from edge_runtime.errors import InputError
from models.aphidiff.config import SEQUENCES, DataConfig
from models.data.cases import find_cases, read_case
from models.data.normalise import ct_to_unit, mr_from_unit, mr_to_unit
from models.data.slices import SliceDataset


def test_find_cases_by_split_and_single_folder(tiny_cohort):
    assert [p.name for p in find_cases(tiny_cohort, "train")] == ["case-0000", "case-0001"]
    assert [p.name for p in find_cases(tiny_cohort, "test")] == ["case-0002"]
    assert find_cases(tiny_cohort / "case-0001") == [tiny_cohort / "case-0001"]
    with pytest.raises(InputError, match="no case folders"):
        find_cases(tiny_cohort, "val")


def test_pseudo_lesions_are_background(tmp_path):
    # A contract-following case with a known arterio-portal shunt (lesion id 3, pseudo).
    folder = write_case(tmp_path / "case", seed=4)
    case = read_case(folder, ("portal",), ("t2",))
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lesions.nii.gz")))
    assert (raw == 3).any()  # the ap_shunt is in the file ...
    assert not (case.lesions == 3).any()  # ... and not a lesion to the model
    assert (case.lesions > 0).any()


def test_example_is_aligned_2p5d_and_normalised(tiny_cohort):
    cfg = DataConfig(context=1, crop=128)
    ds = SliceDataset([tiny_cohort / "case-0000"], cfg)
    ci, z = ds.index[len(ds.index) // 2]
    ex = ds.example((len(ds.index) // 2) * len(SEQUENCES))  # first sequence: t2
    case = ds.cases[ci]
    hu = case.ct["portal"]
    for k, dz in enumerate((-1, 0, 1)):
        np.testing.assert_array_equal(ex["ct"][k].numpy(), ct_to_unit(hu[z + dz], cfg))
    want_mr = mr_to_unit(case.mr["t2"][z], ds.scales[ci]["t2"])
    np.testing.assert_array_equal(ex["mr"][0].numpy(), want_mr)
    assert ex["ct"].min() >= -1 and ex["ct"].max() <= 1 and ex["mr"].abs().max() <= 1
    assert ex["sequence"].item() == SEQUENCES.index("t2")
    np.testing.assert_array_equal(ex["vessels"][0].numpy(), case.vessels[z] > 0)


def test_batches_depend_only_on_the_generator(tiny_cohort):
    ds = SliceDataset([tiny_cohort / "case-0001"], DataConfig(crop=64))
    a = ds.sample_batch(3, torch.Generator().manual_seed(5))
    b = ds.sample_batch(3, torch.Generator().manual_seed(5))
    c = ds.sample_batch(3, torch.Generator().manual_seed(6))
    assert a["ct"].shape == (3, 3, 64, 64)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["ct"], c["ct"])


def test_wrong_grid_is_a_user_error(tiny_cohort):
    with pytest.raises(InputError, match="grid"):
        SliceDataset([tiny_cohort / "case-0000"], DataConfig(grid=256, crop=256))


def test_normalisation_round_trip():
    x = np.linspace(0, 2.0, 11, dtype=np.float32)
    np.testing.assert_allclose(mr_from_unit(mr_to_unit(x, 2.0), 2.0), x, atol=1e-6)
    assert ct_to_unit(np.array([-1000, 40, 3000]), DataConfig()).tolist() == [-1.0, 0.0, 1.0]
