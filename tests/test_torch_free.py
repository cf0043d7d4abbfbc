"""The runtime layer must import and run where torch cannot be imported (a clinic's install)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this test: {name}")
            return None

    sys.meta_path.insert(0, BlockTorch())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_block_really_blocks() -> None:
    out = _run("import torch")
    assert out.returncode != 0
    assert "torch is blocked" in out.stderr


def test_every_runtime_module_imports_without_torch() -> None:
    out = _run(
        """
        import importlib, pkgutil
        import edge_runtime
        names = [m.name for m in pkgutil.walk_packages(edge_runtime.__path__, "edge_runtime.")]
        for name in names:
            importlib.import_module(name)
        assert "torch" not in sys.modules
        print(len(names))
        """
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 1


def test_hidiff_help_runs_without_torch() -> None:
    out = _run(
        """
        from edge_runtime.cli import main
        sys.argv = ["hidiff", "--help"]
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        assert "torch" not in sys.modules
        """
    )
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


@pytest.mark.slow
def test_runtime_only_install_in_fresh_venv(tmp_path) -> None:
    """A clinic's `pip install hidiff-edge` (base dependencies only) brings no torch and works."""
    repo = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, str(repo)], check=True, timeout=1800)
    py = str(venv / "bin" / "python")
    no_torch = subprocess.run([py, "-c", "import torch"], capture_output=True, timeout=120)
    assert no_torch.returncode != 0, "the base install pulled in torch"
    imports = subprocess.run(
        [
            py,
            "-c",
            "import importlib, pkgutil, edge_runtime; "
            "[importlib.import_module(m.name) for m in "
            "pkgutil.walk_packages(edge_runtime.__path__, 'edge_runtime.')]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert imports.returncode == 0, imports.stderr
    help_out = subprocess.run(
        [str(venv / "bin" / "hidiff"), "--help"], capture_output=True, text=True, timeout=300
    )
    assert help_out.returncode == 0, help_out.stderr
    assert "info" in help_out.stdout
