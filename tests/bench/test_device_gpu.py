"""GPU: provider selection and fp16 numerics of the device benchmark on CUDA (skips without)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.device.run import _child
from edge_runtime.package import Engine, load_package
from edge_runtime.providers import RuntimeOptions

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU"),
]


def test_cuda_profile_picks_fp16_and_reports_gpu_memory(bench_packages: list[Path]) -> None:
    full = bench_packages[0]  # ships fp32 and fp16
    cfg = {
        "package": str(full),
        "provider": "cuda",
        "precision": None,
        "batch": 2,
        "seed": 0,
        "warmup": 1,
        "repeats": 3,
        "percentiles": [50, 95],
        "volume_slices": 48,
        "threads": None,
        "use_cache": False,
    }
    res = _child("benchmarks.device.worker", cfg, 600)
    assert res["status"] == "ok", res
    assert res["provider_used"] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert res["precision"] == "fp16"  # the cuda profile prefers fp16 graphs
    assert res["gpu_memory_mib"] is not None and res["gpu_memory_mib"] > 0


def test_fp16_on_cuda_matches_fp32_on_cpu(bench_packages: list[Path]) -> None:
    pkg = load_package(bench_packages[0])
    m = pkg.manifest
    rng = np.random.default_rng(0)
    ct = np.tanh(rng.standard_normal((2, m.task.in_channels, *m.grid.shape))).astype(np.float32)
    noise = rng.standard_normal((2, 1, *m.grid.shape)).astype(np.float32)
    cpu = Engine(pkg, "cpu", "fp32", RuntimeOptions(cache_dir=None)).generate(ct, noise, 3)
    gpu_engine = Engine(pkg, "cuda", "fp16", RuntimeOptions(cache_dir=None))
    assert gpu_engine.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    gpu = gpu_engine.generate(ct, noise, 3)
    mse = float(np.mean((gpu.astype(np.float64) - cpu) ** 2))
    psnr = 10 * np.log10(4.0 / mse) if mse > 0 else np.inf  # model range [-1, 1]
    assert psnr >= 40.0, psnr
