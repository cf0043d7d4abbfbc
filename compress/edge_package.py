"""The compressed model's package: quantized/exported graphs + manifest + reference + provenance.

Same format and contract as the full model's package (`packaging.build_package`), with three
differences:
- the graphs come from the recipe's stages (int8 or fp16 or fp32, possibly several precisions,
  an optional CoreML `.mlpackage`), not from a fresh export;
- the reference outputs are made by the package's own graphs in onnxruntime on the CPU (the
  exact loop `Engine.denoise` runs), one set per precision built: a quantized graph has no
  torch twin, so `hidiff verify` on a device checks that the device reproduces the package's
  graphs of the precision it runs; how far the graphs are from the torch model they came from
  is in the provenance (the stages' gates and ledger);
- provenance names the teacher (its checkpoint's sha256), the recipe and the calibration data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from compress.evaluate import OnnxPair
from compress.packaging import contract, held_out, held_out_cases, npy_bytes
from compress.recipe import PackageSpec
from compress.student import Student
from edge_runtime.errors import HidiffError, InputError
from edge_runtime.machine import provenance
from edge_runtime.package.loader import EdgePackage
from edge_runtime.package.manifest import SamplerSpec
from edge_runtime.package.selfcheck import image_metric, verify_package
from edge_runtime.package.writer import write_package
from edge_runtime.providers import RuntimeOptions
from models.aphidiff.config import SEQUENCES
from models.data.cases import read_case

METRIC_TOLERANCE = {"psnr_db": 0.5, "mae": 0.005, "ssim": 0.005}
# INT8 kernels differ between CPUs (onnxruntime picks AVX2, AVX512-VNNI or AMX code paths):
# the first INT8 edge package, built on one AMD EPYC, reproduced its output at 48.6 dB on an
# AVX2-only one (inside the 40 dB gate) with its SSIM vs the target 0.0051 lower, just past
# 0.005. The metric check is for a systematic drift, not a kernel's rounding.
INT8_METRIC_TOLERANCE = {"psnr_db": 1.0, "mae": 0.01, "ssim": 0.02}
SEED = 1234


def write_edge_package(
    out: Path,
    student: Student,
    data: Path,
    sequence: str,
    graphs: dict[str, tuple[bytes, bytes]],
    sampler: dict[str, Any],
    spec: PackageSpec,
    name: str,
    description: str,
    extra_files: dict[str, bytes] | None = None,
    coreml: dict[str, str] | None = None,
    provenance_extra: dict[str, Any] | None = None,
    validation: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> EdgePackage:
    """Write and verify the package at `out`. Every precision of `graphs` gets its own
    reference outputs and metrics; the first is the package's reference precision."""
    mc = student.mc
    primary = next(iter(graphs))
    files: dict[str, bytes] = dict(extra_files or {})
    manifest_graphs: dict[str, dict[str, str]] = {}
    for precision, (enc, den) in graphs.items():
        paths = {
            "encoder": f"graphs/{precision}/encoder.onnx",
            "denoiser": f"graphs/{precision}/denoiser.onnx",
        }
        files[paths["encoder"]], files[paths["denoiser"]] = enc, den
        manifest_graphs[precision] = paths

    case_dir = held_out_cases(Path(data), ("test", "val"))[0]
    case = read_case(case_dir, mc.data.ct_phases, (sequence,))
    if case.reference is None:
        raise InputError(f"case {case.case_id}: no geometry to read the grid spacing from")
    ref = held_out(case, mc, sequence, spec.reference_slices)
    noise = np.random.default_rng((SEED, 0)).standard_normal(ref.target.shape, dtype=np.float32)
    sampler_spec = SamplerSpec(
        sampler["kind"], sampler["steps"], tuple(sampler["timesteps"]), sampler["config"]
    )
    ref_name = f"case000_{sequence}"
    paths = {key: f"reference/{ref_name}_{key}.npy" for key in ("ct", "noise", "target")}
    for key, arr in (("ct", ref.ct), ("noise", noise), ("target", ref.target)):
        files[paths[key]] = npy_bytes(arr.astype(np.float32))
    outputs: dict[str, str] = {}
    shipped: dict[str, dict[str, Any]] = {}
    for precision, pair_bytes in graphs.items():
        output = OnnxPair(*pair_bytes).generate(
            ref.ct, SEQUENCES.index(sequence), noise, SEED, sampler_spec
        )
        suffix = "" if precision == primary else f"_{precision}"
        outputs[precision] = f"reference/{ref_name}_output{suffix}.npy"
        files[outputs[precision]] = npy_bytes(output.astype(np.float32))
        tolerance = INT8_METRIC_TOLERANCE if precision == "int8" else METRIC_TOLERANCE
        shipped[precision] = {
            "metrics": {k: image_metric(k, output, ref.target, 2.0) for k in tolerance},
            "metric_tolerance": dict(tolerance),
        }
    others = [p for p in graphs if p != primary]

    manifest: dict[str, Any] = {
        "name": name,
        "description": description,
        **contract(mc, student.mr_scales, (sequence,), case.reference.GetSpacing()),
        "sampler": sampler,
        "graphs": manifest_graphs,
        "provenance": {
            "built_by": "compress.edge_package.write_edge_package",
            "teacher_sha256": student.teacher.get("checkpoint_sha256"),
            "teacher": student.teacher,
            "student": {
                "pruning_history_entries": len(student.pruning_history),
                "architecture": mc.to_dict(),
            },
            **(provenance_extra or {}),
            "machine": provenance(),
        },
        "validation": validation or {},
        "reference": {
            "precision": primary,
            "psnr_min_db": 40.0,
            "data_range": 2.0,
            **shipped[primary],
            "by_precision": {p: shipped[p] for p in others},
            "cases": [
                {
                    "name": ref_name,
                    "seed": SEED,
                    "output_name": f"mr_{sequence}",
                    "input": paths["ct"],
                    "noise": paths["noise"],
                    "output": outputs[primary],
                    "outputs": {p: outputs[p] for p in others},
                    "target": paths["target"],
                }
            ],
        },
    }
    if coreml:
        manifest["coreml"] = coreml
    package = write_package(out, manifest, files, overwrite=overwrite)
    for precision in graphs:
        report = verify_package(package, "cpu", precision, options=RuntimeOptions(cache_dir=None))
        if not report.passed:
            shutil.rmtree(out, ignore_errors=True)
            raise HidiffError(
                f"package {name} does not reproduce its {precision} reference in onnxruntime "
                f"({json.dumps(report.to_dict())}); removed {out}"
            )
    return package
