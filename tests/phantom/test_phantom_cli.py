"""The `hidiff phantom` commands: files, geometry, determinism, and the exit-2 error contract."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

HIDIFF = Path(sys.executable).parent / "hidiff"
EXPECTED = {
    "ct_plain.nii.gz", "ct_arterial.nii.gz", "ct_portal.nii.gz", "mr_t1.nii.gz", "mr_t2.nii.gz",
    "mr_t1c.nii.gz", "mr_t1_ctphase.nii.gz", "mr_t2_ctphase.nii.gz", "mr_t1c_ctphase.nii.gz",
    "labels.nii.gz", "mr_labels.nii.gz", "vessels.nii.gz", "lesions.nii.gz",
    "motion_ct_to_mr.nii.gz", "lesions.json", "vessels.json", "case.json", "preview.png",
}  # fmt: skip


def hidiff(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [str(HIDIFF), *args], capture_output=True, text=True, env=env, timeout=600
    )


def hidiff_inprocess(capsys, *args: str) -> tuple[int, str]:
    """Run `hidiff` in this process (same code path as the console script); (exit code,
    stderr + stdout)."""
    from edge_runtime.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli")
    a, b = base / "a", base / "b"
    args = ["phantom", "case", "--seed", "21", "--grid", "64", "--slices", "10", "--out"]
    r = hidiff(*args, str(a))  # the console script, in a fresh process
    assert r.returncode == 0, r.stderr
    from edge_runtime.cli import main

    with pytest.raises(SystemExit) as exc:  # and in this process (other thread counts, state)
        main([*args, str(b)])
    assert exc.value.code in (0, None)
    return a, b


def test_case_folder_has_the_contract_files(two_runs) -> None:
    a, _ = two_runs
    assert {p.name for p in a.iterdir()} == EXPECTED
    meta = json.loads((a / "case.json").read_text())
    for key in ("seed", "realisation", "config", "ct_phase", "mr_phase", "labels", "ssim_ceiling"):
        assert key in meta
    assert meta["seed"] == 21 and set(meta["ssim_ceiling"]) == {"t1", "t2", "t1c"}
    assert 0 <= meta["ct_phase"]["phase"] < 1 and 0 <= meta["mr_phase"]["phase"] < 1


def test_geometry_and_types(two_runs) -> None:
    a, _ = two_runs
    dtypes = {"ct_portal": np.int16, "mr_t2": np.float32, "labels": np.uint8,
              "vessels": np.uint8, "lesions": np.uint16, "motion_ct_to_mr": np.float32}  # fmt: skip
    ref = sitk.ReadImage(str(a / "ct_plain.nii.gz"))
    assert ref.GetSize() == (64, 64, 10)
    assert ref.GetSpacing() == pytest.approx((360 / 64, 360 / 64, 20.0))
    assert ref.GetOrigin() == pytest.approx((-180 + 180 / 64, -180 + 180 / 64, -100 + 10.0))
    assert ref.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    for stem, dtype in dtypes.items():
        img = sitk.ReadImage(str(a / f"{stem}.nii.gz"))
        assert sitk.GetArrayViewFromImage(img).dtype == dtype, stem
        assert img.GetSpacing() == ref.GetSpacing() and img.GetOrigin() == ref.GetOrigin()
    assert sitk.ReadImage(str(a / "motion_ct_to_mr.nii.gz")).GetNumberOfComponentsPerPixel() == 3


def test_same_seed_gives_identical_bytes(two_runs) -> None:
    a, b = two_runs
    assert digests(a) == digests(b)


def test_other_seed_differs(tmp_path, two_runs, capsys) -> None:
    out = tmp_path / "c"
    code, err = hidiff_inprocess(capsys, "phantom", "case", "--seed", "22", "--grid", "64",
                                 "--slices", "10", "--out", str(out))  # fmt: skip
    assert code == 0, err
    da, dc = digests(two_runs[0]), digests(out)
    assert all(da[k] != dc[k] for k in ("ct_plain.nii.gz", "labels.nii.gz", "lesions.json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "100"], "unsupported --grid"),
        (["--lesion-types", "hcc,lymphoma"], "unknown lesion type"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message) -> None:
    """Through the installed console script: one line on stderr, exit code 2."""
    out = tmp_path / "x"
    r = hidiff("phantom", "case", "--seed", "1", "--slices", "8", "--out", str(out), *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slices", "-4"], "--slices must be"),
        (["--seed", "-1"], "--seed must be"),
        (["--realisation", "-2"], "--realisation must be"),
        (["--grid", "1024"], "unsupported --grid"),
    ],
)
def test_bad_sizes_exit_2(tmp_path, capsys, args, message) -> None:
    out = tmp_path / "x"
    base = ["phantom", "case", "--seed", "1", "--grid", "64", "--slices", "8", "--out", str(out)]
    code, err = hidiff_inprocess(capsys, *base, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    assert not out.exists()


def test_unknown_lesion_type_in_config_file(tmp_path, capsys) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"lesions": {"type_weights": {"lymphoma": 1.0}}}))
    code, err = hidiff_inprocess(capsys, "phantom", "cohort", "--n", "2", "--seed", "1",
                                 "--grid", "64", "--slices", "8", "--out", str(tmp_path / "co"),
                                 "--config", str(cfg))  # fmt: skip
    assert code == 2 and "unknown lesion type" in err
    assert not (tmp_path / "co").exists()


def test_negative_size_in_config_file(tmp_path, capsys) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"body": {"width_mm": [-300, 360]}}))
    code, err = hidiff_inprocess(capsys, "phantom", "case", "--seed", "1", "--grid", "64",
                                 "--slices", "8", "--out", str(tmp_path / "c"),
                                 "--config", str(cfg))  # fmt: skip
    assert code == 2 and "must not be negative" in err


def test_unwritable_output_exits_2(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for cmd in (["case"], ["cohort", "--n", "1"]):
        code, err = hidiff_inprocess(capsys, "phantom", *cmd, "--seed", "1", "--grid", "64",
                                     "--slices", "8", "--out", str(blocker / "out"))  # fmt: skip
        assert code == 2 and "cannot create output folder" in err, err


def test_existing_output_needs_overwrite(two_runs, capsys) -> None:
    a, _ = two_runs
    code, err = hidiff_inprocess(capsys, "phantom", "case", "--seed", "21", "--grid", "64",
                                 "--slices", "10", "--out", str(a))  # fmt: skip
    assert code == 2 and "already exists" in err


def test_help_everywhere(capsys) -> None:
    r = hidiff("phantom", "--help")
    assert r.returncode == 0 and "Usage" in r.stdout
    for cmd in (["case"], ["cohort"], ["bench"]):
        code, out = hidiff_inprocess(capsys, "phantom", *cmd, "--help")
        assert code == 0 and "Usage" in out


def test_case_json_config_reproduces_the_case(two_runs) -> None:
    """case.json holds the full config: reading it back renders the same patient."""
    from models.phantom import PhantomConfig, render_case

    a, _ = two_runs
    meta = json.loads((a / "case.json").read_text())
    cfg = PhantomConfig.from_dict(meta["config"])
    shape = meta["grid"]["shape_zyx"]
    again = render_case(meta["seed"], cfg, grid=shape[1], slices=shape[0], ssim=False)
    for stem, arr in (("ct_portal", again.images["ct_portal"]), ("labels", again.labels),
                      ("mr_t2", again.images["mr_t2"])):  # fmt: skip
        on_disk = sitk.GetArrayFromImage(sitk.ReadImage(str(a / f"{stem}.nii.gz")))
        assert np.array_equal(on_disk, arr), stem
    assert json.loads((a / "lesions.json").read_text()) == again.lesion_table
