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

A graph with a vector quantiser (the encoder's ArgMin over codeword distances) is gated in two
parts, because argmin is not continuous: on a near-tie, rounding that is far below the gate
flips one code, and the condition maps then differ by a whole codeword at that position (seen
on 2026-12-03: cond_0 at 59.6 dB on one CPU, 65.1 dB on another, from the same weights). So
the gate taps each ArgMin's input (the distances) and output (the codes) in a copy of the
graph, compares the distances with torch's at the threshold, checks that every code the graph
chose differently is one its own distances prefer (a tie broken the other way, not a wrong
kernel), and compares the outputs with torch run on the graph's codes. The flips are counted
in the result. A genuinely wrong graph still fails: its distances, or its outputs given the
same codes, are off.
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
import torch.nn.functional as F
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
from models.aphidiff.vqvae import VectorQuantizer

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
    # Per vector quantiser: positions whose code the graph chose differently from torch (ties
    # its own distances break the other way), and how many positions were coded.
    code_flips: Mapping[str, int] = field(default_factory=dict)
    codes: Mapping[str, int] = field(default_factory=dict)

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
            **(
                {"code_flips": dict(self.code_flips), "codes": dict(self.codes)}
                if self.codes
                else {}
            ),
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


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> bytes:
    """A serialised copy of `model` that also returns the intermediate tensors `names` (their
    types as shape inference gives them, float where it cannot)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type for v in (*inferred.value_info, *inferred.input, *inferred.output)}
    have = {o.name for o in model.graph.output}
    for name in names:
        if name in have:
            continue
        out = model.graph.output.add()
        out.name = name
        if name in types:
            out.type.CopyFrom(types[name])
        else:
            out.type.CopyFrom(onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, None))
    buf = io.BytesIO()
    onnx.save_model(model, buf)
    return buf.getvalue()


def _argmin_taps(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(distances, codes) tensor names of each top-level ArgMin, in graph order."""
    return [(n.input[0], n.output[0]) for n in model.graph.node if n.op_type == "ArgMin"]


@dataclass
class _QuantiserTap:
    """Forward hooks on a module's vector quantisers: record what each call saw and chose,
    or make each call use given codes instead of its own argmin."""

    quantisers: list[VectorQuantizer]
    forced: list[np.ndarray] | None = None
    seen: list[tuple[VectorQuantizer, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def hook(self, q: VectorQuantizer, args: tuple, output: tuple) -> tuple | None:
        z = args[0]
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        self.seen.append((q, flat, output[1].reshape(-1)))
        if self.forced is None:
            return None
        idx = torch.from_numpy(self.forced[len(self.seen) - 1].reshape(-1).astype(np.int64))
        zq = F.embedding(idx, q.codebook).reshape(b, h, w, d).permute(0, 3, 1, 2)
        return zq, idx.reshape(b, h, w), output[2]

    def run(self, module: nn.Module, args: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        self.seen = []
        handles = [q.register_forward_hook(self.hook) for q in self.quantisers]
        try:
            with torch.no_grad():
                out = module(*args)
        finally:
            for h in handles:
                h.remove()
        return out if isinstance(out, tuple) else (out,)


def _compare(
    role: str, got: Sequence[np.ndarray], want: Sequence[torch.Tensor], names: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """PSNR and max abs error of each graph output against torch's, by name."""
    psnr, err = {}, {}
    for name, g, w in zip(names, got, want, strict=True):
        w = w.numpy()
        if g.shape != w.shape:
            raise ExportGateError(f"{role} output {name}: shape {g.shape}, torch {w.shape}")
        data_range = float(w.max() - w.min()) or 1.0
        psnr[name] = metrics.psnr(g, w, data_range)
        err[name] = float(np.abs(g.astype(np.float64) - w).max())
    return psnr, err


def _codes_gate(
    role: str,
    graph: bytes,
    taps: Sequence[tuple[str, str]],
    tap: _QuantiserTap,
    feeds: Mapping[str, np.ndarray],
) -> tuple[dict, dict, dict, list[np.ndarray]]:
    """Distances PSNR and code flips per quantiser (the graph's ArgMins in call order), and
    the graph's codes; refuses codes that are not the argmin of the graph's own distances."""
    inner = run_onnx(
        with_outputs(onnx.load_model_from_string(graph), [name for pair in taps for name in pair]),
        feeds,
    )
    psnr, err, flips, codes_all = {}, {}, {}, []
    for k, ((dist_name, code_name), (q, flat, torch_codes)) in enumerate(
        zip(taps, tap.seen, strict=True)
    ):
        dist, codes = inner[dist_name], inner[code_name].reshape(-1)
        with torch.no_grad():
            want = q.distances(flat)
        p, e = _compare(role, [dist], [want], [f"vq{k}.distances"])
        psnr.update(p)
        err.update(e)
        if np.any(dist[np.arange(codes.size), codes] > dist.min(axis=1)):
            raise ExportGateError(
                f"export refused: {role} quantiser {k}: the graph's codes are not the argmin "
                "of its own distances"
            )
        flips[f"vq{k}"] = int((codes != torch_codes.numpy()).sum())
        codes_all.append(codes)
    return psnr, err, flips, codes_all


def gate(
    role: str,
    graph: bytes,
    module: nn.Module,
    feeds: Mapping[str, np.ndarray],
    cfg: ExportConfig | None = None,
) -> GateResult:
    """Compare `graph` in onnxruntime with `module` in torch on `feeds` (in the graph's input
    order); refuse (ExportGateError) when any output is below the PSNR threshold. Vector
    quantisers are compared through their distances and codes (module docstring)."""
    cfg = cfg or ExportConfig()
    args = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
    tap = _QuantiserTap([m for m in module.modules() if isinstance(m, VectorQuantizer)])
    want = tap.run(module, args)
    got = run_onnx(graph, feeds)
    if len(got) != len(want):
        raise ExportGateError(f"{role} graph has {len(got)} outputs, torch gives {len(want)}")
    taps = _argmin_taps(onnx.load_model_from_string(graph)) if tap.seen else []
    psnr, err, flips, coded = {}, {}, {}, {}
    if taps and len(taps) == len(tap.seen):
        psnr, err, flips, codes = _codes_gate(role, graph, taps, tap, feeds)
        coded = {k: int(c.size) for k, c in zip(flips, codes, strict=True)}
        want = _QuantiserTap(tap.quantisers, forced=codes).run(module, args)
    p, e = _compare(role, list(got.values()), want, list(got))
    psnr.update(p)
    err.update(e)
    result = GateResult(role, psnr, err, cfg.psnr_min_db, flips, coded)
    if any(flips.values()):
        log.info("%s: codes broken the other way on near-ties: %s of %s", role, flips, coded)
    if not result.passed:
        worst = min(psnr, key=psnr.get)
        raise ExportGateError(
            f"export refused: {role} output {worst} matches torch at only "
            f"{psnr[worst]:.1f} dB PSNR (needs >= {cfg.psnr_min_db:.0f} dB); "
            f"max abs error {err[worst]:.3g}"
        )
    return result


def _export_encoder(
    enc: EncoderGraph,
    ct: torch.Tensor,
    seq: torch.Tensor,
    names: Sequence[str],
    meta: Mapping[str, str],
    cfg: ExportConfig,
) -> bytes:
    batch = {0: torch.export.Dim("batch", min=1, max=cfg.max_batch)}
    log.info("exporting encoder")
    model = _export(enc, (ct, seq), [ENCODER_INPUT, SEQUENCE_INPUT], names, (batch, batch), cfg)
    return _with_metadata(
        model,
        {**meta, "hidiff.role": "encoder"},
        "Conditioning encoder: CT 2.5D stack (model space) and MR sequence id -> condition "
        "pyramid; once per slice.",
    )


def export_encoder(
    model: nn.Module, sequence: str, ct: np.ndarray, cfg: ExportConfig | None = None
) -> bytes:
    """The encoder of `model` alone, ungated (`export_graphs` gates what it ships): for
    checking the gate itself on graphs made to differ from torch."""
    enc = EncoderGraph(model.eval()).eval()
    ct_t = torch.from_numpy(np.ascontiguousarray(ct, dtype=np.float32))
    seq = torch.full((ct.shape[0],), SEQUENCES.index(sequence), dtype=torch.int64)
    with torch.no_grad():
        names = tuple(condition_names(len(enc(ct_t, seq))))
    return _export_encoder(enc, ct_t, seq, names, {}, cfg or ExportConfig())


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

    enc_bytes = _export_encoder(enc, ct_t, seq0, names, meta, cfg)
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
