"""Geometry read from real DICOM (pydicom's bundled CT/MR files and series built from them, and
series we write) agrees with SimpleITK's readers; slice order never depends on file names or
InstanceNumber."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from iohelpers import ct_image, edit_file, files_of, oblique_direction
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from edge_runtime.io import read_image


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_same_geometry(ours, theirs: sitk.Image, atol: float = 1e-4) -> None:
    assert ours.size == theirs.GetSize()
    np.testing.assert_allclose(ours.origin, theirs.GetOrigin(), atol=atol)
    np.testing.assert_allclose(ours.spacing, theirs.GetSpacing(), atol=atol)
    np.testing.assert_allclose(ours.direction, theirs.GetDirection(), atol=1e-6)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_sample_single_file_matches_simpleitk(name: str) -> None:
    path = get_testdata_file(name)
    ours = read_image(path, min_slices=1)
    theirs = sitk.ReadImage(path)
    np.testing.assert_allclose(ours.origin, theirs.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.spacing[:2], theirs.GetSpacing()[:2], atol=1e-6)
    np.testing.assert_allclose(ours.direction, theirs.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(ours.voxels, sitk.GetArrayFromImage(theirs).astype(np.float32))
    assert ours.metadata.modality == name[:2]
    assert ours.orientation_code == "LPS"


def test_ct_small_is_in_hounsfield_units() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ours = read_image(get_testdata_file("CT_small.dcm"), min_slices=1)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(ours.voxels[0], expected.astype(np.float32))


@pytest.mark.parametrize("compressed", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_compressed_sample_decodes_like_the_uncompressed_one(compressed: str) -> None:
    ds = pydicom.dcmread(get_testdata_file(compressed))
    from pydicom.pixels import get_decoder

    if not get_decoder(ds.file_meta.TransferSyntaxUID).is_available:
        pytest.skip(f"no decoder plugin installed for {ds.file_meta.TransferSyntaxUID.name}")
    plain = read_image(get_testdata_file("MR_small.dcm"), min_slices=1)
    packed = read_image(get_testdata_file(compressed), min_slices=1)
    np.testing.assert_array_equal(plain.voxels, packed.voxels)


def series_from_sample(
    name: str, folder: Path, n: int, gap: float, orientation: np.ndarray | None = None
) -> Path:
    """A real vendor slice copied into a volume of `n` slices along its normal (new UIDs)."""
    folder.mkdir()
    src = pydicom.dcmread(get_testdata_file(name))
    iop = np.asarray(orientation if orientation is not None else src.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    origin = np.asarray(src.ImagePositionPatient, float)
    series_uid = generate_uid()
    order = list(range(n))
    random.Random(7).shuffle(order)
    for k in range(n):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in origin + k * gap * normal]
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = order[k] + 1
        arr = ds.pixel_array.copy()
        arr[0, 0] = k  # a per-slice signature
        ds.PixelData = arr.tobytes()
        ds.save_as(folder / f"slice_{order[k]:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.mark.parametrize("name,gap", [("CT_small.dcm", 5.0), ("MR_small.dcm", 0.8)])
def test_series_built_from_pydicom_samples_matches_simpleitk(
    tmp_path: Path, name: str, gap: float
) -> None:
    folder = series_from_sample(name, tmp_path / "s", n=7, gap=gap)
    ours = read_image(folder)
    theirs = sitk_series(folder)
    assert_same_geometry(ours, theirs)
    np.testing.assert_array_equal(ours.voxels, sitk.GetArrayFromImage(theirs).astype(np.float32))
    np.testing.assert_array_equal(ours.voxels[:, 0, 0] - ours.voxels[0, 0, 0], np.arange(7))


def test_oblique_series_from_sample_matches_simpleitk(tmp_path: Path) -> None:
    d = np.asarray(oblique_direction(4)).reshape(3, 3)
    iop = np.concatenate([d[:, 0], d[:, 1]])
    folder = series_from_sample("CT_small.dcm", tmp_path / "s", n=6, gap=3.0, orientation=iop)
    ours = read_image(folder)
    theirs = sitk_series(folder)
    assert_same_geometry(ours, theirs, atol=2e-3)  # positions were written with 4 decimals
    np.testing.assert_array_equal(ours.voxels, sitk.GetArrayFromImage(theirs).astype(np.float32))


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), oblique_direction(2)])
def test_written_series_matches_simpleitk(write_series, direction) -> None:
    image = ct_image(direction=direction)
    folder = write_series(image)
    ours = read_image(folder)
    theirs = sitk_series(folder)
    assert_same_geometry(ours, theirs)
    assert ours.same_grid(image)
    np.testing.assert_array_equal(ours.voxels, image.voxels)


def test_shuffled_files_with_scrambled_instance_numbers_read_in_order(
    write_series, tmp_path: Path
) -> None:
    image = ct_image(shape=(12, 10, 9), direction=oblique_direction(3))
    folder = write_series(image)
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    files = files_of(folder)
    rng = random.Random(11)
    names = [f"{rng.getrandbits(40):010x}.dcm" for _ in files]
    numbers = list(range(1, len(files) + 1))
    rng.shuffle(numbers)
    for f, new_name, number in zip(files, names, numbers, strict=True):
        edit_file(f, lambda ds, number=number: setattr(ds, "InstanceNumber", number))
        shutil.move(f, shuffled / new_name)
    # neither file name order nor InstanceNumber order is the slice order any more
    by_name = [pydicom.dcmread(p).InstanceNumber for p in sorted(shuffled.iterdir())]
    assert by_name != sorted(by_name)
    got = read_image(shuffled)
    np.testing.assert_array_equal(got.voxels, image.voxels)
    assert got.same_grid(image)


def test_series_selected_by_uid(write_series, tmp_path: Path) -> None:
    a = write_series(ct_image(seed=1), series_description="A")
    b = write_series(ct_image(seed=2), series_description="A")  # same description
    both = tmp_path / "both"
    shutil.copytree(a, both / "a")
    shutil.copytree(b, both / "b")
    uid = str(pydicom.dcmread(files_of(b)[0]).SeriesInstanceUID)
    from edge_runtime.errors import InputError

    with pytest.raises(InputError, match="2 series share the description"):
        read_image(both, series="A")
    np.testing.assert_array_equal(read_image(both, series=uid).voxels, ct_image(seed=2).voxels)


def test_metadata_hints(write_series) -> None:
    folder = write_series(series_description="Abdomen ARTERIAL 1.25mm")
    for f in files_of(folder):
        edit_file(f, lambda ds: setattr(ds, "ContrastBolusAgent", "Iohexol"))
    meta = read_image(folder).metadata
    assert meta.modality == "CT"
    assert meta.phase_hint == "arterial"
    assert meta.contrast_agent == "Iohexol"
    assert meta.series_description.startswith("Abdomen")
    assert meta.study_instance_uid and meta.series_instance_uid and meta.acquisition_time


def test_enhanced_multiframe_mr_matches_the_classic_series(tmp_path: Path) -> None:
    hd = pytest.importorskip("highdicom")
    folder = series_from_sample("MR_small.dcm", tmp_path / "classic", n=5, gap=0.8)
    classic = read_image(folder)
    sources = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=sources,
        series_instance_uid=generate_uid(),
        series_number=99,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    target = tmp_path / "enhanced.dcm"
    enhanced.save_as(target)
    multi = read_image(target)
    assert multi.metadata.source_format == "dicom-multiframe"
    assert multi.same_grid(classic)
    np.testing.assert_array_equal(multi.voxels, classic.voxels)
    assert multi.metadata.modality == "MR"


def test_enhanced_multiframe_ct_applies_per_frame_rescale(tmp_path: Path) -> None:
    hd = pytest.importorskip("highdicom")
    folder = series_from_sample("CT_small.dcm", tmp_path / "classic", n=4, gap=5.0)
    classic = read_image(folder)
    sources = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=sources,
        series_instance_uid=generate_uid(),
        series_number=98,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    target = tmp_path / "enhanced_ct.dcm"
    enhanced.save_as(target)
    multi = read_image(target)
    assert multi.same_grid(classic)
    np.testing.assert_array_equal(multi.voxels, classic.voxels)
    assert multi.voxels.min() < 0  # HU, so the rescale intercept was applied


def test_jpeg_lossless_series_decodes_like_the_uncompressed_one(
    write_series, tmp_path: Path
) -> None:
    """JPEG Lossless SV1 (the usual PACS CT export), with a -1024 rescale intercept, decodes
    (pydicom plugin if installed, else SimpleITK's GDCM) to the same HU as uncompressed."""
    image = ct_image(shape=(5, 16, 12))
    folder = write_series(image)
    for f in files_of(folder):
        ds = pydicom.dcmread(f)
        stored = (ds.pixel_array.astype(np.int32) + 1024).astype(np.int16)
        tmp = tmp_path / "one.dcm"
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp))
        writer.SetUseCompression(True)
        writer.SetCompressor("JPEG")
        writer.Execute(sitk.GetImageFromArray(stored[None]))
        packed = pydicom.dcmread(tmp)
        assert packed.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1
        ds.PixelData = packed.PixelData
        ds.file_meta.TransferSyntaxUID = packed.file_meta.TransferSyntaxUID
        ds.RescaleIntercept = "-1024"
        ds.save_as(f, enforce_file_format=True)
    got = read_image(folder)
    np.testing.assert_array_equal(got.voxels, image.voxels)
    assert got.same_grid(image)


def test_hidden_leftovers_of_an_interrupted_write_are_not_read(write_series) -> None:
    image = ct_image()
    folder = write_series(image)
    leftover = folder / ".IM.partial-123-abcd"
    shutil.copytree(write_series(ct_image(seed=9)), leftover)
    np.testing.assert_array_equal(read_image(folder).voxels, image.voxels)


def test_export_with_one_series_uid_per_file(write_series, tmp_path: Path) -> None:
    """Some anonymised exports (CHAOS MR) give every file its own SeriesInstanceUID."""
    from iohelpers import run_hidiff

    from edge_runtime.errors import InputError

    image = ct_image(shape=(6, 8, 7))
    folder = write_series(image)
    for f in files_of(folder):
        edit_file(f, lambda ds: setattr(ds, "SeriesInstanceUID", generate_uid()))
    with pytest.raises(InputError, match="6 DICOM series"):
        read_image(folder)
    np.testing.assert_array_equal(read_image(folder, merge_series=True).voxels, image.voxels)
    out = run_hidiff("info", str(folder), "--one-series")
    assert out.returncode == 0, out.stderr
    assert "7 x 8 x 6" in out.stdout
    # merging two echoes of one position set is still refused, by the geometry checks
    other = write_series(ct_image(shape=(6, 8, 7), seed=5))
    for f in files_of(other):
        shutil.copy(f, folder / f"b{f.name}")
    with pytest.raises(InputError, match="duplicate slice positions"):
        read_image(folder, merge_series=True)
