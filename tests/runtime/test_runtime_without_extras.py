"""A clinic's install has the base dependencies only: `hidiff verify` and the samplers must run
with torch, onnx, diffusers, jsonschema and scipy all unimportable (blocked in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from package_factory import make_package

BLOCKED = ("torch", "onnx", "diffusers", "jsonschema", "scipy")

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"blocked in this test: {{name}}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HIDIFF_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"},
    )


def test_blocker_blocks(tmp_path: Path) -> None:
    out = run_blocked("import onnx", tmp_path)
    assert out.returncode != 0 and "blocked in this test: onnx" in out.stderr


def test_verify_and_samplers_run_with_base_dependencies_only(tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "pkg", sampler_kind="dpm_solver++", sampler_config={})
    out = run_blocked(
        f"""
        import numpy as np
        from edge_runtime.cli import main
        from edge_runtime.samplers import SAMPLERS, make_sampler
        for kind in SAMPLERS:
            s = make_sampler(kind)
            s.set_timesteps(4)
            rng = np.random.default_rng(0)
            x = s.sample(lambda x, t: 0.1 * x, s.init_noise((1, 1, 4, 4), rng), generator=rng)
            assert np.isfinite(x).all()
        sys.argv = ["hidiff", "verify", {str(pkg)!r}, "-p", "cpu"]
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        for name in {BLOCKED!r}:
            assert name not in sys.modules, name
        print("ok")
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "verified: tiny-test-package" in out.stdout
