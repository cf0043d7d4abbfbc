"""The synthetic MR comes back in exactly the input's geometry, whatever that geometry is, and
the model sees the same anatomy whichever way the scan's axes point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synth_helpers import IDENTITY, ct_volume, rotation

from edge_runtime.io import read_image, write_ct_series, write_nifti
from edge_runtime.synthesizer import Synthesizer


def assert_same_geometry(a, b, tol: float = 1e-6) -> None:
    assert a.voxels.shape == b.voxels.shape
    np.testing.assert_allclose(a.origin, b.origin, atol=tol, rtol=0)
    np.testing.assert_allclose(a.spacing, b.spacing, atol=tol, rtol=0)
    np.testing.assert_allclose(a.direction, b.direction, atol=tol, rtol=0)


@pytest.fixture(scope="module")
def synth(package32: Path) -> Synthesizer:
    return Synthesizer(package32, provider="cpu", batch=4)


@pytest.mark.parametrize(
    "spacing",
    [(1.5, 1.5, 3.0), (0.7, 0.9, 2.5), (2.2, 2.2, 5.0)],
    ids=["package-spacing", "finer-anisotropic", "coarser"],
)
def test_output_geometry_equals_input_in_memory(synth: Synthesizer, spacing) -> None:
    ct = ct_volume(spacing=spacing, origin=(-31.25, 17.5, -402.0))
    mr = synth.synthesize(ct, seed=1)
    assert mr.voxels.shape == ct.voxels.shape
    assert mr.origin == ct.origin and mr.spacing == ct.spacing and mr.direction == ct.direction
    assert np.isfinite(mr.voxels).all()
    assert mr.metadata.modality == "MR"
    assert mr.metadata.series_description.startswith("SYNTHETIC")
    # not a constant: the body and the air around it come out differently
    assert mr.voxels.std() > 1.0


def test_nifti_round_trip_through_the_command(hidiff, package32: Path, tmp_path: Path) -> None:
    # RAS-stored NIfTI (ITK reads it with flipped x and y): a common research layout
    ct = ct_volume(spacing=(0.8, 0.8, 2.0), direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    src = write_nifti(ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "out" / "t2.nii.gz"
    res = hidiff("synthesize", src, "--package", package32, "--out", out, "-p", "cpu")
    assert res.code == 0, res.err
    got, ref = read_image(out), read_image(src)
    assert_same_geometry(got, ref, tol=1e-4)
    assert (tmp_path / "out" / "t2.json").is_file()


def test_dicom_series_round_trip(hidiff, package32: Path, tmp_path: Path) -> None:
    ct = ct_volume(spacing=(0.75, 0.75, 3.0), origin=(-18.0, -15.0, 40.0))
    write_ct_series(ct, tmp_path / "ct", series_description="AX PORTAL")
    out = tmp_path / "mr_series"
    res = hidiff(
        "synthesize", tmp_path / "ct", "--package", package32, "--out", out,
        "--format", "dicom", "-p", "cpu",
    )  # fmt: skip
    assert res.code == 0, res.err
    src, got = read_image(tmp_path / "ct"), read_image(out)
    assert_same_geometry(got, src, tol=1e-4)
    assert got.metadata.modality == "MR"
    assert got.metadata.series_description.startswith("SYNTHETIC")
    # the derived series joins the CT's study and frame of reference
    assert got.metadata.study_instance_uid == src.metadata.study_instance_uid
    assert got.metadata.frame_of_reference_uid == src.metadata.frame_of_reference_uid


def test_oblique_input_keeps_its_geometry_and_its_slices(synth: Synthesizer) -> None:
    oblique = rotation((1.0, 0.4, 0.2), 23.0)
    axial = ct_volume(direction=IDENTITY)
    tilted = ct_volume(direction=oblique)
    a = synth.synthesize(axial, seed=4)
    b = synth.synthesize(tilted, seed=4)
    assert b.direction == tilted.direction and b.origin == tilted.origin
    assert b.spacing == tilted.spacing
    # The model works in the scan's own slice planes: same voxels in, same voxels out,
    # however the scanner's axes were tilted (no through-plane resampling of an oblique scan).
    np.testing.assert_allclose(b.voxels, a.voxels, atol=1e-3)


def test_flipped_axes_give_the_same_physical_output(synth: Synthesizer) -> None:
    """The same physical CT stored LPS and stored with x and y reversed (RAS): the model sees
    identical anatomy, so the outputs are identical up to the same flip."""
    lps = ct_volume()
    n = np.array(lps.size, dtype=np.float64)
    d = np.diag([-1.0, -1.0, 1.0])
    origin = np.asarray(lps.origin) + (n - 1) * np.asarray(lps.spacing) * np.array([1, 1, 0])
    ras = lps.with_voxels(lps.voxels[:, ::-1, ::-1].copy())
    ras.origin, ras.direction = tuple(origin), tuple(d.ravel())
    # same point in space at every voxel (checked, so the test cannot pass vacuously)
    np.testing.assert_allclose(
        ras.index_to_physical(np.array([0, 0, 0])),
        lps.index_to_physical(n - 1 - np.array([0, 0, n[2] - 1])),
    )
    out_lps = synth.synthesize(lps, seed=2)
    out_ras = synth.synthesize(ras, seed=2)
    np.testing.assert_allclose(out_ras.voxels[:, ::-1, ::-1], out_lps.voxels, atol=1e-3)


def test_seeded_and_independent_of_batch(package32: Path) -> None:
    ct = ct_volume(spacing=(1.2, 1.2, 3.0))
    one = Synthesizer(package32, provider="cpu", batch=1).synthesize(ct, seed=5).voxels
    many = Synthesizer(package32, provider="cpu", batch=7).synthesize(ct, seed=5).voxels
    again = Synthesizer(package32, provider="cpu", batch=7).synthesize(ct, seed=5).voxels
    other = Synthesizer(package32, provider="cpu", batch=7).synthesize(ct, seed=6).voxels
    np.testing.assert_array_equal(many, again)
    np.testing.assert_allclose(one, many, atol=1e-3)
    assert np.abs(other - many).max() > 1.0


def test_batches_stream_through_the_engine(package32: Path) -> None:
    """At most `batch` slices (or tiles) of model tensors go to the engine at once, every slice
    exactly once: the volume is streamed, not stacked."""
    synth = Synthesizer(package32, provider="cpu", batch=3)
    seen: list[int] = []
    encode = synth.engine.encode

    def spy(ct, output=None):
        seen.append(ct.shape[0])
        return encode(ct, output)

    synth.engine.encode = spy
    ct = ct_volume(shape=(7, 40, 48))  # 7 slices, 2 tiles each on the 32 grid (40 > 32, 48 > 32)
    result = synth.run(ct, seed=0)
    assert result.stats.tiles_per_slice == 4
    assert max(seen) == 3 and sum(seen) == 7 * 4
