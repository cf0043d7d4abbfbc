"""Export a trained run's two graphs to ONNX in the package's tensor contract, gated on
correctness.

`models/aphidiff/graphs.py` gives the two graphs with flat signatures: encoder
`ct, sequence -> cond_*`, denoiser `x_t, t, sequence, cond_* -> prediction` (t float). Package
format 1 reads exactly these names (the runtime feeds `sequence` from each output's
`sequence_index`), so one pair of graphs serves every MR sequence the run was trained on.

Shapes are static per grid (channels, rows, cols fixed) with a symbolic batch axis, so the
runtime can stream any batch size through one graph; opset 18; `onnx.checker` full check;
metadata names the run, its checkpoint's sha256, the role and the sequence.

The gate (apple/ml-stable-diffusion's idea, with this project's threshold): onnxruntime's output
on real inputs must match torch's at >= 60 dB PSNR for fp32 (data range: the torch output's
peak-to-peak), for every output tensor; otherwise the export is refused and nothing is returned.
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from edge_runtime import metrics
from edge_runtime.errors import HidiffError
from edge_runtime.package.manifest import (
    DENOISER_SAMPLE,
    DENOISER_TIMESTEP,
    ENCODER_INPUT,
    SEQUENCE_INPUT,
)
from models.aphidiff.config import SEQUENCES
from models.aphidiff.graphs import DenoiserGraph, EncoderGraph, condition_names

log = logging.getLogger("hidiff.compress.export")

PREDICTION = "prediction"


class ExportGateError(HidiffError):
    """An exported graph does not reproduce the torch model it came from."""


@dataclass(frozen=True)
class ExportConfig:
    """How graphs are exported and how hard they are checked."""

    # Opset 18: the first with the Resize/reduction forms torch's dynamo exporter emits, and
    # what onnxruntime >= 1.16 and the CoreML/OpenVINO converters read.
    opset: int = 18
    # The gate for fp32 graphs (issue 8): anything lower is a broken export, not rounding.
    psnr_min_db: float = 60.0
    # Largest batch the symbolic batch axis declares (torch.export needs a bound).
    max_batch: int = 256
    # Timesteps at which the denoiser is compared (noisy, middle, nearly clean).
    gate_timesteps: tuple[int, ...] = (999, 500, 20)
    # Seed of the gate's noisy samples.
    seed: int = 0


@dataclass(frozen=True)
class GateResult:
    """PSNR of onnxruntime vs torch for each output of one graph."""

    role: str
    psnr_db: Mapping[str, float]
    max_abs_error: Mapping[str, float]
    psnr_min_db: float

    @property
    def worst_db(self) -> float:
        return min(self.psnr_db.values())

    @property
    def passed(self) -> bool:
        return self.worst_db >= self.psnr_min_db

    def to_dict(self) -> dict:
        return {
            "role": self.role,
            "psnr_db": {k: _finite(v) for k, v in self.psnr_db.items()},
            "max_abs_error": dict(self.max_abs_error),
            "psnr_min_db": self.psnr_min_db,
            "passed": self.passed,
        }


def _finite(v: float) -> float | str:
    return v if np.isfinite(v) else "inf"


@dataclass(frozen=True)
class ExportedGraphs:
    """Serialised encoder and denoiser that passed the gate, with the gate's numbers."""

    encoder: bytes
    denoiser: bytes
    cond_names: tuple[str, ...]
    gates: tuple[GateResult, ...] = field(default_factory=tuple)


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic: tuple,
    cfg: ExportConfig,
) -> onnx.ModelProto:
    """torch.onnx (dynamo) export to an in-memory ModelProto; `dynamic` are torch.export's
    dynamic shapes, one entry per positional argument of `module.forward`."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "graph.onnx"
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            opset_version=cfg.opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes=dynamic,
            verbose=False,
        )
        return onnx.load(str(path))


def _with_metadata(model: onnx.ModelProto, meta: Mapping[str, str], doc: str) -> bytes:
    del model.metadata_props[:]
    for k, v in sorted(meta.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    model.doc_string = doc
    model.producer_name = "hidiff-edge compress.export_onnx"
    onnx.checker.check_model(model, full_check=True)
    buf = io.BytesIO()
    onnx.save_model(model, buf)
    return buf.getvalue()


def run_onnx(graph: bytes, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All outputs of a serialised graph on the CPU provider."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(feeds)), strict=True))


def gate(
    role: str,
    graph: bytes,
    module: nn.Module,
    feeds: Mapping[str, np.ndarray],
    cfg: ExportConfig | None = None,
) -> GateResult:
    """Compare `graph` in onnxruntime with `module` in torch on `feeds` (in the graph's input
    order); refuse (ExportGateError) when any output is below the PSNR threshold."""
    cfg = cfg or ExportConfig()
    with torch.no_grad():
        want = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()))
    want = want if isinstance(want, tuple) else (want,)
    got = run_onnx(graph, feeds)
    if len(got) != len(want):
        raise ExportGateError(f"{role} graph has {len(got)} outputs, torch gives {len(want)}")
    psnr, err = {}, {}
    for (name, g), w in zip(got.items(), want, strict=True):
        w = w.numpy()
        if g.shape != w.shape:
            raise ExportGateError(f"{role} output {name}: shape {g.shape}, torch {w.shape}")
        data_range = float(w.max() - w.min()) or 1.0
        psnr[name] = metrics.psnr(g, w, data_range)
        err[name] = float(np.abs(g.astype(np.float64) - w).max())
    result = GateResult(role, psnr, err, cfg.psnr_min_db)
    if not result.passed:
        worst = min(psnr, key=psnr.get)
        raise ExportGateError(
            f"export refused: {role} output {worst} matches torch at only "
            f"{psnr[worst]:.1f} dB PSNR (needs >= {cfg.psnr_min_db:.0f} dB); "
            f"max abs error {err[worst]:.3g}"
        )
    return result


def export_graphs(
    model: nn.Module,
    sequences: Sequence[str],
    ct: np.ndarray,
    metadata: Mapping[str, str] | None = None,
    cfg: ExportConfig | None = None,
) -> ExportedGraphs:
    """Export the encoder and denoiser of `model`, gated on `ct`, a real model-space CT batch
    (N, C_in, H, W) that fixes the graphs' static shapes; the gate runs every slice with each
    of `sequences` (the ones the package will offer)."""
    cfg = cfg or ExportConfig()
    bad = [s for s in sequences if s not in SEQUENCES]
    if bad or not sequences:
        raise HidiffError(f"unknown sequence(s) {bad or sequences}; choose from {SEQUENCES}")
    model = model.eval()
    enc, den = EncoderGraph(model).eval(), DenoiserGraph(model).eval()
    n = ct.shape[0]
    ct = np.ascontiguousarray(ct, dtype=np.float32)
    seq_ids = [SEQUENCES.index(s) for s in sequences]
    seq0 = torch.full((n,), seq_ids[0], dtype=torch.int64)
    ct_t = torch.from_numpy(ct)
    with torch.no_grad():
        conds = enc(ct_t, seq0)
    names = tuple(condition_names(len(conds)))
    meta = {
        "hidiff.sequences": ",".join(sequences),
        "hidiff.sequence_index": ",".join(f"{s}={SEQUENCES.index(s)}" for s in sequences),
        "hidiff.opset": str(cfg.opset),
        **(metadata or {}),
    }
    batch = {0: torch.export.Dim("batch", min=1, max=cfg.max_batch)}

    log.info("exporting encoder")
    enc_model = _export(
        enc, (ct_t, seq0), [ENCODER_INPUT, SEQUENCE_INPUT], names, (batch, batch), cfg
    )
    enc_bytes = _with_metadata(
        enc_model,
        {**meta, "hidiff.role": "encoder"},
        "Conditioning encoder: CT 2.5D stack (model space) and MR sequence id -> condition "
        "pyramid; once per slice.",
    )
    rng = np.random.default_rng(cfg.seed)
    sample = rng.standard_normal((n, 1, *ct.shape[2:]), dtype=np.float32)
    steps = np.resize(np.asarray(cfg.gate_timesteps, dtype=np.float32), n)
    den_inputs = [DENOISER_SAMPLE, DENOISER_TIMESTEP, SEQUENCE_INPUT, *names]
    log.info("exporting denoiser")
    den_model = _export(
        den,
        (torch.from_numpy(sample), torch.from_numpy(steps), seq0, *conds),
        den_inputs,
        [PREDICTION],
        (batch, batch, batch, tuple(batch for _ in conds)),
        cfg,
    )
    den_bytes = _with_metadata(
        den_model,
        {**meta, "hidiff.role": "denoiser"},
        "Denoiser: (noisy sample x_t, timestep t, sequence id, condition pyramid) -> "
        "prediction; once per sampler step.",
    )
    gates = []
    for name, idx in zip(sequences, seq_ids, strict=True):
        seq = np.full(n, idx, dtype=np.int64)
        feeds = {ENCODER_INPUT: ct, SEQUENCE_INPUT: seq}
        gates.append(gate(f"encoder[{name}]", enc_bytes, enc, feeds, cfg))
        with torch.no_grad():
            c = enc(ct_t, torch.from_numpy(seq))
        den_feeds = {DENOISER_SAMPLE: sample, DENOISER_TIMESTEP: steps, SEQUENCE_INPUT: seq}
        den_feeds.update({k: v.numpy() for k, v in zip(names, c, strict=True)})
        # Every gate timestep on every slice: each noise level is checked on real anatomy.
        for t in cfg.gate_timesteps:
            den_feeds[DENOISER_TIMESTEP] = np.full(n, t, dtype=np.float32)
            gates.append(gate(f"denoiser[{name}]@t={t}", den_bytes, den, den_feeds, cfg))
    return ExportedGraphs(enc_bytes, den_bytes, names, tuple(gates))
