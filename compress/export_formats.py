"""Deployable formats beside ONNX: the ORT format for reduced Android builds, and CoreML.

- ORT format (`.ort`): onnxruntime's own flatbuffer format, which the minimal (reduced
  operator) onnxruntime build for Android/iOS loads. `onnxruntime.tools.
  convert_onnx_models_to_ort` writes it together with `required_operators.config`, the list of
  operators (and types) a reduced build must contain; both go into the package. The converted
  graph is loaded back in onnxruntime as a check.
- CoreML (mlprogram, fp16 compute, optionally 4/6-bit palettised weights): coremltools converts
  the torch encoder and denoiser traced at the package's shapes (batch 1). The conversion and
  saving run anywhere; numeric checks need macOS (Core ML itself), so `checked` says whether
  they ran (tests/compress marks them).
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from edge_runtime.errors import HidiffError
from models.aphidiff.config import ModelConfig
from models.aphidiff.graphs import DenoiserGraph, EncoderGraph


def to_ort_format(graphs: dict[str, bytes], out: Path) -> dict[str, Any]:
    """Write `<role>.ort` for each graph and `required_operators.config` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "onnx"
        src.mkdir()
        for role, data in graphs.items():
            (src / f"{role}.onnx").write_bytes(data)
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "onnxruntime.tools.convert_onnx_models_to_ort",
                str(src),
                "--output_dir",
                str(Path(tmp) / "ort"),
                "--optimization_style",
                "Fixed",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise HidiffError(f"ORT format conversion failed: {res.stderr.strip()[-400:]}")
        made = Path(tmp) / "ort"
        total = 0
        for role in graphs:
            ort_file = made / f"{role}.ort"
            if not ort_file.is_file():
                raise HidiffError(f"ORT format conversion wrote no {role}.ort")
            opts = ort.SessionOptions()
            opts.add_session_config_entry("session.load_model_format", "ORT")
            ort.InferenceSession(str(ort_file), opts, providers=["CPUExecutionProvider"])
            (out / f"{role}.ort").write_bytes(ort_file.read_bytes())
            total += ort_file.stat().st_size
        configs = sorted(made.glob("*.config"))
        if not configs:
            raise HidiffError("ORT format conversion wrote no required-operators config")
        text = configs[0].read_text()
        (out / "required_operators.config").write_text(text)
    return {"bytes": total, "config": text}


def to_coreml(
    model: torch.nn.Module,
    mc: ModelConfig,
    ct: np.ndarray,
    out: Path,
    palettize_bits: int | None = None,
) -> dict[str, Any]:
    """Convert encoder and denoiser to CoreML mlprograms (fp16) under `out`/<role>.mlpackage."""
    import coremltools as ct_tools

    model = model.eval()
    enc, den = EncoderGraph(model).eval(), DenoiserGraph(model).eval()
    x_ct = torch.from_numpy(np.ascontiguousarray(ct[:1], dtype=np.float32))
    seq = torch.zeros(1, dtype=torch.int32)
    with torch.no_grad():
        conds = enc(x_ct, seq.long())
        sample = torch.randn(1, 1, *x_ct.shape[2:])
        t = torch.full((1,), 500.0)
        traced_enc = torch.jit.trace(_IntSequence(enc).eval(), (x_ct, seq))
        traced_den = torch.jit.trace(_IntSequence(den).eval(), (sample, t, seq, *conds))
    out.mkdir(parents=True, exist_ok=True)
    common = {
        "convert_to": "mlprogram",
        "compute_precision": ct_tools.precision.FLOAT16,
        "minimum_deployment_target": ct_tools.target.iOS16,
    }
    models = {
        "encoder": ct_tools.convert(
            traced_enc,
            inputs=[
                ct_tools.TensorType("ct", shape=tuple(x_ct.shape)),
                ct_tools.TensorType("sequence", shape=(1,), dtype=np.int32),
            ],
            outputs=[ct_tools.TensorType(f"cond_{i}") for i in range(len(conds))],
            **common,
        ),
        "denoiser": ct_tools.convert(
            traced_den,
            inputs=[
                ct_tools.TensorType("x_t", shape=tuple(sample.shape)),
                ct_tools.TensorType("t", shape=(1,)),
                ct_tools.TensorType("sequence", shape=(1,), dtype=np.int32),
                *[
                    ct_tools.TensorType(f"cond_{i}", shape=tuple(c.shape))
                    for i, c in enumerate(conds)
                ],
            ],
            outputs=[ct_tools.TensorType("prediction")],
            **common,
        ),
    }
    total = 0
    for role, ml in models.items():
        if palettize_bits:
            from coremltools.optimize.coreml import (
                OpPalettizerConfig,
                OptimizationConfig,
                palettize_weights,
            )

            cfg = OptimizationConfig(
                global_config=OpPalettizerConfig(nbits=palettize_bits, mode="kmeans")
            )
            ml = palettize_weights(ml, cfg)
        ml.short_description = f"HiDiff-Edge {mc.model} {mc.preset} {role}"
        path = out / f"{role}.mlpackage"
        ml.save(str(path))
        total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    checked = platform.system() == "Darwin"
    return {"bytes": total, "checked": checked, "palettize_bits": palettize_bits}


class _IntSequence(torch.nn.Module):
    """CoreML has no int64 inputs: takes `sequence` as int32 and widens it for the graph."""

    def __init__(self, graph: torch.nn.Module) -> None:
        super().__init__()
        self.inner = graph

    def forward(self, *args: torch.Tensor):
        args = list(args)
        idx = 1 if isinstance(self.inner, EncoderGraph) else 2
        args[idx] = args[idx].long()
        return self.inner(*args)
