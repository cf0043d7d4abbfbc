"""`hidiff bench accuracy`: a real run through the command, and bad input as one line, exit 2."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from edge_runtime import cli


def write_like(reference, array, out):
    ref = sitk.ReadImage(str(reference))
    img = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(out))


def _hidiff(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "accuracy", *map(str, args)])
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def _copy_method(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_command_runs_and_writes_the_report(cohort_dir, prediction_dirs, tmp_path, capsys) -> None:
    dirs, _ = prediction_dirs
    out = tmp_path / "acc"
    try:
        cli.main(
            ["bench", "accuracy", "--pred", f"truth={dirs['truth']}", "--pred",
             f"real1={dirs['real1']}", "--truth", str(cohort_dir), "--out", str(out),
             "--sequences", "t2", "--worst", "1"]
        )  # fmt: skip
    except SystemExit as exc:  # typer's standalone mode exits 0 on success
        assert exc.code in (0, None)
    text = capsys.readouterr().out
    assert "summary.json" in text and "real1: t2 SSIM" in text
    # one verdict line per non-inferiority metric, from the summary's comparisons
    assert "ssim: real1 - truth = -" in text and "NOT shown non-inferior (margin 0.01)" in text
    assert "ssim_liver_masked: real1 - truth = -" in text and "(95% CI [" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == {"truth": str(dirs["truth"]), "real1": str(dirs["real1"])}
    assert "bench accuracy" in summary["provenance"]["command"] or summary["provenance"]["command"]
    assert (out / "per_case.csv").is_file() and (out / "figures" / "box_plots.png").is_file()
    # an existing output is refused, not overwritten
    code, _, err = _hidiff(
        capsys, "--pred", f"real1={dirs['real1']}", "--truth", cohort_dir, "--out", out
    )
    assert code == 2 and "already exists" in err


def test_missing_cases_are_listed(cohort_dir, prediction_dirs, tmp_path, capsys) -> None:
    dirs, _ = prediction_dirs
    partial = _copy_method(dirs["truth"], tmp_path / "partial")
    shutil.rmtree(partial / "case-0001")
    (partial / "case-0000" / "mr_t1.nii.gz").unlink()
    code, _, err = _hidiff(
        capsys, "--pred", f"full={dirs['truth']}", "--pred", f"edge={partial}",
        "--truth", cohort_dir, "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    for item in ("edge:case-0000/mr_t1", "edge:case-0001/mr_t1", "edge:case-0001/mr_t2"):
        assert item in err
    assert "4 predicted volumes missing" in err and "full:" not in err
    assert not (tmp_path / "o").exists()


def test_grid_mismatch_is_refused(cohort_dir, prediction_dirs, tmp_path, capsys) -> None:
    dirs, _ = prediction_dirs
    bad = _copy_method(dirs["truth"], tmp_path / "bad")
    path = bad / "case-0001" / "mr_t2.nii.gz"
    img = sitk.ReadImage(str(path))
    img.SetSpacing(tuple(s * 1.5 for s in img.GetSpacing()))
    sitk.WriteImage(img, str(path))
    code, _, err = _hidiff(
        capsys, "--pred", f"bad={bad}", "--truth", cohort_dir, "--out", tmp_path / "o",
        "--sequences", "t2",
    )  # fmt: skip
    assert code == 2 and "grid differs from the truth (spacing" in err and "case-0001" in err


def test_nan_is_refused(cohort_dir, prediction_dirs, tmp_path, capsys) -> None:
    dirs, _ = prediction_dirs
    bad = _copy_method(dirs["truth"], tmp_path / "nan")
    path = bad / "case-0000" / "mr_t2.nii.gz"
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    arr[3, 10, 10] = np.nan
    write_like(cohort_dir / "case-0000" / "mr_t2_ctphase.nii.gz", arr, path)
    code, _, err = _hidiff(
        capsys, "--pred", f"nan={bad}", "--truth", cohort_dir, "--out", tmp_path / "o",
        "--sequences", "t2",
    )  # fmt: skip
    assert code == 2 and "NaN" in err and "case-0000/mr_t2.nii.gz" in err
    assert not (tmp_path / "o").exists()


def test_wrong_sequence_is_refused(cohort_dir, prediction_dirs, tmp_path, capsys, caplog) -> None:
    dirs, _ = prediction_dirs
    bad = _copy_method(dirs["truth"], tmp_path / "swap")
    shutil.copy(
        cohort_dir / "case-0000" / "mr_t1_ctphase.nii.gz", bad / "case-0000" / "mr_t2.nii.gz"
    )
    code, _, err = _hidiff(
        capsys, "--pred", f"swap={bad}", "--truth", cohort_dir, "--out", tmp_path / "o",
        "--sequences", "t2",
    )  # fmt: skip
    assert code == 2 and "looks like T1, not T2" in err
    # --sequence-check warn: the same file is judged as named, the mismatch logged
    code, _, err = _hidiff(
        capsys, "--pred", f"swap={bad}", "--truth", cohort_dir, "--out", tmp_path / "w",
        "--sequences", "t2", "--sequence-check", "warn",
    )  # fmt: skip
    assert code == 0 and "looks like T1, not T2" in caplog.text
    assert (tmp_path / "w" / "summary.json").is_file()
    code, _, err = _hidiff(
        capsys, "--pred", f"swap={bad}", "--truth", cohort_dir, "--out", tmp_path / "x",
        "--sequences", "t2", "--sequence-check", "maybe",
    )  # fmt: skip
    assert code == 2 and "--sequence-check" in err


def test_every_true_sequence_passes_the_sequence_check(cohort_dir) -> None:
    from benchmarks.accuracy.cohort import check_sequence, load_truth

    case = load_truth(cohort_dir).case("case-0001")
    for seq in ("t1", "t2", "t1c"):
        check_sequence(case.folder / f"mr_{seq}_ctphase.nii.gz", case.truth(seq), seq, case)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pred", "nodir"], "expected NAME=DIR"),
        (["--pred", "a=/nonexistent/x"], "is not a folder"),
        (["--pred", "a=.", "--sequences", "t3"], "unknown t3"),
    ],
)
def test_bad_arguments(cohort_dir, tmp_path, capsys, args, message) -> None:
    code, _, err = _hidiff(capsys, *args, "--truth", cohort_dir, "--out", tmp_path / "o")
    assert code == 2 and message in err


def test_bad_truth(tmp_path, capsys) -> None:
    code, _, err = _hidiff(
        capsys, "--pred", f"a={tmp_path}", "--truth", tmp_path, "--out", tmp_path / "o"
    )
    assert code == 2 and "neither cohort.json nor case.json" in err


def test_an_unknown_sequence_check_is_refused_through_the_api_too() -> None:
    from benchmarks.accuracy.cohort import CohortConfig
    from edge_runtime.errors import InputError

    with pytest.raises(InputError, match="use refuse or warn"):
        CohortConfig(sequence_check="refuse ")  # type: ignore[arg-type]
