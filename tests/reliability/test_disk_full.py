"""A full disk: a clear one-line error, exit 2, and no partial file.

The output goes to a small tmpfs mounted for the test (root only: skipped with the reason
elsewhere). `hidiff synthesize` to NIfTI and to a DICOM series on a device too small for the
output; a cohort on a device that holds its first case and not the second: the run stops at
the second with the message (not one failure per remaining case), the first case is whole and
re-reads, nothing half-written is left, and once there is room a rerun finishes the rest
without redoing the first. ITK's NIfTI writer does not fail on a full disk (it prints "wrote
only 0 of N bytes" and returns), so the file must be read back: without that the output would
be a truncated file with a finished name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.io import read_image

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "compress" / "packages" / "aphidiff-tiny-t2-fp32"
PAGE = 4096


class Tmpfs:
    """A tmpfs of a given size at `path`, resizable, unmounted at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.mounted = False

    def mount(self, size: int) -> None:
        opts = f"size={size}" if not self.mounted else f"remount,size={size}"
        run = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(self.path)],
            capture_output=True, text=True,
        )  # fmt: skip
        if run.returncode != 0:
            pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {run.stderr}")
        self.mounted = True

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*"))

    def umount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path: Path):
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    fs = Tmpfs(tmp_path / "small-disk")
    yield fs
    fs.umount()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.phantom import write_cohort

    out = tmp_path_factory.mktemp("full-disk") / "cohort"
    write_cohort(3, 4, out, grid=128, slices=8, preview=False)
    return out


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path / "cache"))


def check_disk_full(code: int, text: str, where: Path) -> None:
    line = " ".join(text.split())  # rich wraps long lines at the terminal width
    assert code == 2, text
    assert "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if "error:" in ln]
    assert len(errors) == 1, text
    assert "no space left on the device" in line, text
    assert str(where) in line, text


def case_ct(cohort: Path, name: str) -> Path:
    return cohort / name / "ct_portal.nii.gz"


@pytest.mark.parametrize("fmt", ["nifti", "dicom"])
def test_one_scan_on_a_full_disk(cohort: Path, tmpfs: Tmpfs, hidiff, fmt: str) -> None:
    tmpfs.mount(16 * PAGE)  # the output needs ~0.3 MB
    ct = case_ct(cohort, "case-0000")
    out = tmpfs.path / ("mr.nii.gz" if fmt == "nifti" else "mr-dicom")
    run = hidiff("synthesize", ct, "--package", PACKAGE, "--out", out, "-p", "cpu", "--format", fmt)
    check_disk_full(run.code, run.text, out)
    assert tmpfs.files() == [], "a partial output was left on the full disk"


def _pages(folder: Path) -> int:
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in folder.rglob("*") if p.is_file())


def test_cohort_stops_at_the_full_disk_and_resumes(cohort: Path, tmp_path, tmpfs, hidiff) -> None:
    reference = tmp_path / "reference"
    args = ("synthesize", cohort, "--package", PACKAGE, "-p", "cpu", "--seed", "3")
    run = hidiff(*args, "--out", reference)
    assert run.code == 0, run.text
    cases = sorted(p.name for p in reference.iterdir() if p.is_dir())
    assert cases == ["case-0000", "case-0001", "case-0002"]

    # room for the first case and half of the second
    tmpfs.mount(_pages(reference / cases[0]) + _pages(reference / cases[1]) // 2 + 4 * PAGE)
    out = tmpfs.path / "out"
    run = hidiff(*args, "--out", out)
    check_disk_full(run.code, run.text, out / cases[1])
    assert "case-0002" not in run.text, "the run should stop at the full disk, not try every case"
    left = sorted(p.name for p in out.iterdir())
    assert left == [cases[0]], f"only the finished case may be there: {left}"
    first = out / cases[0]
    assert json.loads((first / "synthesis.json").read_text())["sequence"] == "t2"
    np.testing.assert_array_equal(
        read_image(first / "synth_mr_t2.nii.gz").voxels,
        read_image(reference / cases[0] / "synth_mr_t2.nii.gz").voxels,
    )
    mtime = (first / "synthesis.json").stat().st_mtime_ns

    tmpfs.mount(4 * _pages(reference))  # space freed: the rerun finishes the others
    run = hidiff(*args, "--out", out)
    assert run.code == 0, run.text
    assert "1 already finished (skipped)" in " ".join(run.text.split())
    assert (first / "synthesis.json").stat().st_mtime_ns == mtime
    for name in cases:
        np.testing.assert_array_equal(
            read_image(out / name / "synth_mr_t2.nii.gz").voxels,
            read_image(reference / name / "synth_mr_t2.nii.gz").voxels,
        )
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_phantom_case_on_a_full_disk(tmpfs: Tmpfs, hidiff) -> None:
    """The training data's writer too (`hidiff phantom case`, ITK's NIfTI writer underneath)."""
    tmpfs.mount(16 * PAGE)  # the case needs ~1 MB
    out = tmpfs.path / "case"
    run = hidiff("phantom", "case", "--seed", "1", "--grid", "64", "--out", out)
    check_disk_full(run.code, run.text, out)
    assert tmpfs.files() == [], "a partial case was left on the full disk"
