"""The runtime layer must import and run where torch cannot be imported (a clinic's install)."""

import subprocess
import sys
import textwrap

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
