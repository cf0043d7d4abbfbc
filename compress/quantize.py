"""`quantize`: INT8 (NNCF post-training quantization) or FP16 graphs, gated against torch.

INT8 works on the exported fp32 ONNX graphs (NNCF's ONNX backend writes QuantizeLinear /
DequantizeLinear pairs that onnxruntime's CPU provider fuses into integer kernels). Calibration
data are what the graphs see in use: the encoder gets phantom training slices at the model's
grid; the denoiser gets the states the student's own few-step sampler visits on those slices
(x_t, t, conditions at each of its timesteps), recorded from the torch student.

Which layers stay in fp32 is measured, not guessed: when a graph's worst output PSNR against
torch is below the gate plus a margin, NNCF's accuracy control ranks the quantized operations by
how much their quantization costs (on held-out feeds) and reverts the worst, one at a time, up
to `max_fp32_layers`, until the graph clears the margin. The layers it kept in fp32 are recorded.

FP16 (GPUs) converts weights and activations with onnxruntime's float16 converter, keeping the
graph's inputs and outputs float32 (the package's tensor contract).

Every result passes `export_onnx.gate` at the recipe's threshold (35 dB by default for
fp16/int8) on feeds that are not the calibration feeds, or the stage fails.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from compress.export_onnx import ExportConfig, GateResult, gate, run_onnx, with_outputs
from edge_runtime.package.manifest import (
    DENOISER_SAMPLE,
    DENOISER_TIMESTEP,
    ENCODER_INPUT,
    SEQUENCE_INPUT,
    SamplerSpec,
)
from models.aphidiff.config import SEQUENCES
from models.aphidiff.graphs import DenoiserGraph, EncoderGraph, condition_names

log = logging.getLogger("hidiff.compress.quantize")

Feeds = dict[str, np.ndarray]


@dataclass
class QuantizedGraph:
    """One graph after quantization, with its gate and the layers measured to need fp32."""

    role: str
    graph: bytes
    gate: GateResult
    fp32_layers: list[str] = field(default_factory=list)
    psnr_before_db: float | None = None

    def info(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "gate": self.gate.to_dict(),
            "fp32_layers": self.fp32_layers,
            "psnr_all_int8_db": self.psnr_before_db,
        }


@torch.no_grad()
def sampler_feeds(
    model: nn.Module, sequence: str, ct: np.ndarray, noise: np.ndarray, spec: SamplerSpec, seed: int
) -> tuple[list[Feeds], list[Feeds]]:
    """(encoder feeds, denoiser feeds), one per slice and per slice x sampler step: the inputs
    the graphs get when the torch model samples `ct` from `noise` with `spec`."""
    enc, den = EncoderGraph(model).eval(), DenoiserGraph(model).eval()
    enc_feeds: list[Feeds] = []
    den_feeds: list[Feeds] = []
    seq_id = SEQUENCES.index(sequence)
    for i in range(ct.shape[0]):
        seq = np.full((1,), seq_id, dtype=np.int64)
        c = np.ascontiguousarray(ct[i : i + 1], dtype=np.float32)
        enc_feeds.append({ENCODER_INPUT: c, SEQUENCE_INPUT: seq})
        conds = enc(torch.from_numpy(c), torch.from_numpy(seq))
        names = condition_names(len(conds))
        sampler = spec.build()
        rng = np.random.default_rng(seed + i)
        x = noise[i : i + 1].astype(np.float32) * np.float32(sampler.init_noise_sigma)
        for t in sampler.timesteps:
            t = int(t)
            inp = np.ascontiguousarray(sampler.scale_model_input(x, t), dtype=np.float32)
            tt = np.full((1,), t, dtype=np.float32)
            feeds = {DENOISER_SAMPLE: inp, DENOISER_TIMESTEP: tt, SEQUENCE_INPUT: seq}
            feeds.update({k: v.numpy() for k, v in zip(names, conds, strict=True)})
            den_feeds.append(feeds)
            pred = den(torch.from_numpy(inp), torch.from_numpy(tt), torch.from_numpy(seq), *conds)
            x = sampler.step(pred.numpy(), t, x, generator=rng).prev_sample.astype(np.float32)
    return enc_feeds, den_feeds


def stack_feeds(feeds: Sequence[Feeds]) -> Feeds:
    """Many batch-1 feeds as one batch (the graphs have a symbolic batch axis)."""
    return {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}


def _bytes(model: onnx.ModelProto) -> bytes:
    buf = io.BytesIO()
    onnx.save_model(model, buf)
    return buf.getvalue()


def _measure(role: str, graph: bytes, module: nn.Module, feeds: Feeds) -> GateResult:
    return gate(role, graph, module, feeds, ExportConfig(psnr_min_db=-np.inf))


def _quantize_nncf(graph: bytes, calibration: Sequence[Feeds], ignored: Sequence[str]) -> bytes:
    import nncf

    model = onnx.load_model_from_string(graph)
    scope = nncf.IgnoredScope(names=list(ignored), validate=False) if ignored else None
    q = nncf.quantize(
        model,
        nncf.Dataset(list(calibration)),
        subset_size=len(calibration),
        ignored_scope=scope,
    )
    return _bytes(q)


def _quantized_nodes(graph: bytes) -> list[str]:
    """Names of the operations NNCF quantized (a DequantizeLinear feeds their weights)."""
    model = onnx.load_model_from_string(graph)
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in dq_out
    ]


def layer_drops(fp32: bytes, int8: bytes, feeds: Feeds, names: Sequence[str]) -> dict[str, float]:
    """For each quantized operation: PSNR (int8 vs fp32) of its input minus that of its
    output, i.e. how much error the operation's own quantization adds, from one instrumented
    run of each graph on `feeds`."""
    m8 = onnx.load_model_from_string(int8)
    producer = {o: n for n in m8.graph.node for o in n.output}

    def source(tensor: str) -> str:
        while tensor in producer and producer[tensor].op_type in (
            "DequantizeLinear",
            "QuantizeLinear",
        ):
            tensor = producer[tensor].input[0]
        return tensor

    pairs = {
        n.name: (source(n.input[0]), n.output[0]) for n in m8.graph.node if n.name in set(names)
    }
    tensors = sorted({t for pair in pairs.values() for t in pair})
    ref = run_onnx(with_outputs(onnx.load_model_from_string(fp32), tensors), feeds)
    got = run_onnx(with_outputs(m8, tensors), feeds)

    def psnr(t: str) -> float:
        if t not in ref or t not in got:
            return 100.0
        r = ref[t].astype(np.float64)
        mse = float(np.mean((got[t] - r) ** 2))
        span = float(r.max() - r.min()) or 1.0
        return 100.0 if mse == 0 else min(100.0, 10 * np.log10(span**2 / mse))

    return {name: psnr(i) - psnr(o) for name, (i, o) in pairs.items()}


def quantize_int8(
    role: str,
    graph: bytes,
    module: nn.Module,
    calibration: Sequence[Feeds],
    check: Feeds,
    psnr_min_db: float,
    margin_db: float,
    max_fp32_layers: int,
    trials: int = 3,
) -> QuantizedGraph:
    """NNCF INT8 of one fp32 graph; layers reverted to fp32 where measurement says so; gated.

    While the worst output is below `psnr_min_db + margin_db` (and fewer than
    `max_fp32_layers` are kept): the `trials` operations whose quantization adds the most error
    (`layer_drops`) are each tried in fp32 (one NNCF run each) and the one whose graph measures
    best is kept in fp32."""
    q = _quantize_nncf(graph, calibration, ())
    first = _measure(role, q, module, check)
    kept: list[str] = []
    current = first
    while current.worst_db < psnr_min_db + margin_db and len(kept) < max_fp32_layers:
        drops = layer_drops(graph, q, check, [n for n in _quantized_nodes(q) if n not in kept])
        ranked = sorted(drops, key=drops.get, reverse=True)[:trials]
        best: tuple[str, bytes, GateResult] | None = None
        for name in ranked:
            trial = _quantize_nncf(graph, calibration, [*kept, name])
            res = _measure(role, trial, module, check)
            if best is None or res.worst_db > best[2].worst_db:
                best = (name, trial, res)
        if best is None or best[2].worst_db <= current.worst_db:
            break
        kept.append(best[0])
        q, current = best[1], best[2]
        log.info("%s: %s kept in fp32 -> %.1f dB", role, best[0], current.worst_db)
    final = gate(role, q, module, check, ExportConfig(psnr_min_db=psnr_min_db))
    return QuantizedGraph(role, q, final, kept, first.worst_db)


def to_fp16(role: str, graph: bytes, module: nn.Module, check: Feeds, psnr_min_db: float):
    """FP16 weights and activations, float32 inputs/outputs; gated."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_model_from_string(graph)
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    data = _bytes(half)
    final = gate(role, data, module, check, ExportConfig(psnr_min_db=psnr_min_db))
    return QuantizedGraph(role, data, final)


__all__ = ["QuantizedGraph", "quantize_int8", "run_onnx", "sampler_feeds", "to_fp16"]
