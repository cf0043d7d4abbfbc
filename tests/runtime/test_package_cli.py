"""`hidiff package inspect` and `hidiff verify`: tables on stdout, exit 0 when all is well, 2
when not (a HidiffError is one line through the root command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from package_factory import make_package, npy_bytes, rehash
from typer.testing import CliRunner

from edge_runtime.errors import PackageError
from edge_runtime.package.cli import app as package_app
from edge_runtime.package.cli import verify


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    """The two entry points as the root command mounts them (package group, verify command),
    without loading the other layers' commands."""
    app = typer.Typer()
    app.add_typer(package_app, name="package")
    app.command("verify")(verify)
    return app


def invoke(cli: typer.Typer, *args: str, tmp_cache: Path | None = None):
    env = {"HIDIFF_CACHE_DIR": str(tmp_cache)} if tmp_cache else None
    return CliRunner().invoke(cli, list(args), env=env)


def test_inspect_prints_the_manifest_and_integrity(cli, tiny_package: Path) -> None:
    res = invoke(cli, "package", "inspect", str(tiny_package))
    assert res.exit_code == 0, res.output
    for text in (
        "package tiny-test-package",
        "16 x 16 px at 1.5 x 1.5 mm",
        "ddim, 4 steps",
        "fp32, fp16",
        "graphs/fp16/denoiser.onnx",
        "CT window (-160.0, 240.0) HU",
        "integrity: ok (8 files match their sha256)",
        "run `hidiff verify PACKAGE`",
    ):
        assert text in res.output


def test_inspect_with_self_check(cli, tiny_package: Path, tmp_path: Path) -> None:
    res = invoke(
        cli,
        "package",
        "inspect",
        str(tiny_package),
        "--self-check",
        "-p",
        "cpu",
        tmp_cache=tmp_path,
    )
    assert res.exit_code == 0, res.output
    assert "PSNR vs shipped fp32 output" in res.output and "FAIL" not in res.output


def test_inspect_lists_every_damaged_file(cli, fresh_package: Path) -> None:
    (fresh_package / "graphs/fp32/encoder.onnx").write_bytes(b"x")
    (fresh_package / "reference/case000_ct.npy").unlink()
    (fresh_package / "notes.txt").write_text("left here by hand")
    res = invoke(cli, "package", "inspect", str(fresh_package))
    assert res.exit_code == 2
    assert "integrity: FAILED" in res.output
    assert "graphs/fp32/encoder.onnx has 1 bytes" in res.output
    assert "reference/case000_ct.npy is missing" in res.output
    assert "notes.txt" in res.output  # unlisted files are shown, not trusted


def test_verify_passes_on_this_cpu(cli, tiny_package: Path, tmp_path: Path) -> None:
    res = invoke(cli, "verify", str(tiny_package), "--provider", "cpu", tmp_cache=tmp_path)
    assert res.exit_code == 0, res.output
    assert "verify tiny-test-package on CPUExecutionProvider (fp32)" in res.output
    assert "verified: tiny-test-package reproduces its reference" in res.output


def test_verify_fp16_on_this_cpu(cli, tiny_package: Path, tmp_path: Path) -> None:
    res = invoke(cli, "verify", str(tiny_package), "-p", "cpu", "--precision", "fp16", "--no-cache")
    assert res.exit_code == 0, res.output
    assert "(fp16)" in res.output


def test_verify_fails_with_exit_2_when_outputs_differ(cli, fresh_package: Path) -> None:
    """A reference output that this device does not reproduce (here: shifted by 0.05)."""
    rel = "reference/case000_output.npy"
    out = np.load(fresh_package / rel, allow_pickle=False)
    (fresh_package / rel).write_bytes(npy_bytes(out + np.float32(0.05)))
    rehash(fresh_package, rel)
    res = invoke(cli, "verify", str(fresh_package), "-p", "cpu", "--no-cache")
    assert res.exit_code == 2
    assert "FAIL" in res.output and "verification FAILED" in res.output


def test_verify_refuses_a_corrupt_package(cli, fresh_package: Path) -> None:
    (fresh_package / "graphs/fp32/denoiser.onnx").write_bytes(b"tampered")
    res = invoke(cli, "verify", str(fresh_package))
    assert isinstance(res.exception, PackageError)
    assert "graphs/fp32/denoiser.onnx" in str(res.exception)


def test_verify_with_a_provider_this_machine_lacks(cli, tiny_package: Path) -> None:
    res = invoke(cli, "verify", str(tiny_package), "-p", "qnn")
    assert "provider 'qnn' asked for" in str(res.exception)


def test_root_command_exit_codes(tmp_path: Path) -> None:
    """Through the installed `hidiff` root: 0 when verified, 2 and one line when refused."""
    pkg = make_package(tmp_path / "pkg")
    env = {**os.environ, "HIDIFF_CACHE_DIR": str(tmp_path / "cache")}

    def hidiff(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "edge_runtime.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    ok = hidiff("verify", str(pkg), "-p", "cpu")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verified" in ok.stdout
    (pkg / "reference/case000_noise.npy").write_bytes(b"\x93NUMPY broken")
    bad = hidiff("verify", str(pkg))
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "reference/case000_noise.npy" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_inspect_shows_the_last_self_check_on_this_device(cli, fresh_package: Path) -> None:
    before = invoke(cli, "package", "inspect", str(fresh_package))
    assert "self-check on this device: never run" in before.output
    assert invoke(cli, "verify", str(fresh_package), "-p", "cpu").exit_code == 0
    after = invoke(cli, "package", "inspect", str(fresh_package))
    assert "self-check on this device: passed" in after.output
    assert "CPUExecutionProvider (fp32, onnxruntime" in after.output
    # a changed manifest is a different package: its record does not carry over
    rehash(fresh_package, "reference/case000_ct.npy")
    path = fresh_package / "manifest.json"
    path.write_text(path.read_text().replace("tiny untrained", "tiny, untrained"))
    again = invoke(cli, "package", "inspect", str(fresh_package))
    assert "never run" in again.output


def test_verify_json(cli, tiny_package: Path, fresh_package: Path) -> None:
    import json

    res = invoke(cli, "verify", str(tiny_package), "-p", "cpu", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["passed"] is True and report["provider"] == "CPUExecutionProvider"
    assert report["cases"][0]["psnr_db"] > 40 and {c["name"] for c in report["checks"]} == {
        "psnr_db",
        "mae",
        "ssim",
    }
    rel = "reference/case000_output.npy"
    out = np.load(fresh_package / rel, allow_pickle=False)
    (fresh_package / rel).write_bytes(npy_bytes(-out))
    rehash(fresh_package, rel)
    bad = invoke(cli, "verify", str(fresh_package), "-p", "cpu", "--json")
    assert bad.exit_code == 2 and json.loads(bad.stdout)["passed"] is False


def test_an_unwritable_record_folder_only_warns(cli, tiny_package: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = invoke(cli, "verify", str(tiny_package), "-p", "cpu", "--no-cache", tmp_cache=blocker)
    assert res.exit_code == 0, res.output


def test_inspect_prints_manifest_text_literally(cli, fresh_package: Path) -> None:
    """Text from a package is data, not terminal markup: brackets survive as they are."""
    from package_factory import rewrite_manifest

    rewrite_manifest(fresh_package, lambda m: m.update(description="[bold]x[/bold] [red]"))
    res = invoke(cli, "package", "inspect", str(fresh_package))
    assert res.exit_code == 0, res.output
    assert "[bold]x[/bold] [red]" in res.output
