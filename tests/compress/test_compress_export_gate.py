"""The export gate accepts a faithful graph and refuses a broken one: a graph whose weights
are perturbed after export no longer matches torch at 60 dB and is refused with a message
naming the graph, the output and the PSNR. The encoder's vector quantiser is gated through its
distances and codes: a near-tie broken the other way passes (and is counted), a wrong codebook
does not."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compress.export_onnx import ExportGateError, export_encoder, gate, run_onnx
from edge_runtime import metrics
from edge_runtime.package import load_package
from edge_runtime.package.manifest import (
    DENOISER_SAMPLE,
    DENOISER_TIMESTEP,
    ENCODER_INPUT,
    SEQUENCE_INPUT,
)
from models.aphidiff.graphs import DenoiserGraph, EncoderGraph
from models.training.predict import load_run


def _perturb(graph: bytes, scale: float) -> bytes:
    """The same graph with every convolution kernel changed by `scale` of its own spread
    (a damaged or wrongly converted export, as a quantiser gone wrong would make)."""
    model = onnx.load_from_string(graph)
    rng = np.random.default_rng(0)
    changed = 0
    for target in model.graph.initializer:
        if len(target.dims) != 4:
            continue
        w = numpy_helper.to_array(target).copy()
        w += rng.standard_normal(w.shape).astype(w.dtype) * (w.std() + 1e-3) * scale
        target.CopyFrom(numpy_helper.from_array(w, target.name))
        changed += 1
    assert changed > 0
    return model.SerializeToString()


@pytest.fixture(scope="module")
def parts(built_package: Path, short_run: Path):
    pkg = load_package(built_package)
    model, _, _ = load_run(short_run)
    ct = pkg.load_array(pkg.manifest.reference.cases[0].input)
    seq = np.full(ct.shape[0], pkg.manifest.task.outputs[0].sequence_index, dtype=np.int64)
    enc = EncoderGraph(model).eval()
    with torch.no_grad():
        conds = enc(torch.from_numpy(ct), torch.from_numpy(seq))
    names = [f"cond_{i}" for i in range(len(conds))]
    den_feeds = {
        DENOISER_SAMPLE: np.random.default_rng(1).standard_normal(
            (ct.shape[0], 1, 128, 128), dtype=np.float32
        ),
        DENOISER_TIMESTEP: np.full(ct.shape[0], 500.0, dtype=np.float32),
        SEQUENCE_INPUT: seq,
        **{n: c.numpy() for n, c in zip(names, conds, strict=True)},
    }
    return pkg, model, {ENCODER_INPUT: ct, SEQUENCE_INPUT: seq}, den_feeds


def test_gate_accepts_the_shipped_graphs(parts) -> None:
    pkg, model, enc_feeds, den_feeds = parts
    g = gate("encoder", pkg.graph_bytes("fp32", "encoder"), EncoderGraph(model).eval(), enc_feeds)
    assert g.passed and g.worst_db >= 60
    d = gate(
        "denoiser", pkg.graph_bytes("fp32", "denoiser"), DenoiserGraph(model).eval(), den_feeds
    )
    assert d.passed and d.worst_db >= 60


@pytest.mark.parametrize("role", ["encoder", "denoiser"])
def test_gate_refuses_perturbed_weights(parts, role: str) -> None:
    pkg, model, enc_feeds, den_feeds = parts
    module = (EncoderGraph if role == "encoder" else DenoiserGraph)(model).eval()
    feeds = enc_feeds if role == "encoder" else den_feeds
    broken = _perturb(pkg.graph_bytes("fp32", role), scale=0.05)
    with pytest.raises(ExportGateError, match=rf"export refused: {role} output .* dB PSNR"):
        gate(role, broken, module, feeds)


def test_gate_checks_the_codes_of_the_vector_quantiser(parts) -> None:
    pkg, model, enc_feeds, _ = parts
    g = gate("encoder", pkg.graph_bytes("fp32", "encoder"), EncoderGraph(model).eval(), enc_feeds)
    n = enc_feeds[ENCODER_INPUT].shape[0]
    assert g.codes["vq0"] > 0 and g.codes["vq0"] % n == 0
    assert g.psnr_db["vq0.distances"] >= 60
    assert g.to_dict()["code_flips"] == dict(g.code_flips)


def _near_tie(model, enc_feeds, delta: float):
    """`model` with one unused codeword moved to a distance (1 + delta) x that of the chosen
    codeword from the code vector with the largest quantisation error, on its far side."""
    model = copy.deepcopy(model)
    q = model.vqvae.quantizer
    with torch.no_grad():
        z = model.vqvae.anatomy.forward_ct(torch.from_numpy(enc_feeds[ENCODER_INPUT]))
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        chosen = q.distances(flat).argmin(1)
        err = (flat - q.codebook[chosen]).norm(dim=1)
        p = int(err.argmax())
        unused = [j for j in range(q.codebook.shape[0]) if j not in set(chosen.tolist())]
        away = (flat[p] - q.codebook[chosen[p]]) / err[p]
        q.codebook[unused[0]] = flat[p] + away * err[p] * (1 + delta)
    return model


def test_gate_accepts_a_near_tie_broken_the_other_way_and_counts_it(parts) -> None:
    """The graph's codebook puts a codeword a hair nearer than torch's does: one code flips
    (a whole codeword apart, so the condition maps alone would fail the gate), and the gate
    passes through the distances and the graph's own codes, counting the flip."""
    pkg, model, enc_feeds, _ = parts
    seq = pkg.manifest.task.outputs[0].sequence
    onnx_side = _near_tie(model, enc_feeds, -1e-4)
    torch_side = _near_tie(model, enc_feeds, +1e-4)
    graph = export_encoder(onnx_side, seq, enc_feeds[ENCODER_INPUT])
    module = EncoderGraph(torch_side).eval()
    with torch.no_grad():
        want = module(*(torch.from_numpy(v) for v in enc_feeds.values()))
    got = run_onnx(graph, enc_feeds)
    plain = min(
        metrics.psnr(g, w.numpy(), float(w.max() - w.min()))
        for g, w in zip(got.values(), want, strict=True)
    )
    assert plain < 60, "the construction must flip a code that matters"
    g = gate("encoder", graph, module, enc_feeds)
    assert g.passed and g.code_flips["vq0"] >= 1


def test_gate_refuses_a_codebook_that_is_really_wrong(parts) -> None:
    pkg, model, enc_feeds, _ = parts
    seq = pkg.manifest.task.outputs[0].sequence
    graph = export_encoder(_near_tie(model, enc_feeds, -0.2), seq, enc_feeds[ENCODER_INPUT])
    with pytest.raises(ExportGateError, match=r"encoder output vq0.distances .* dB PSNR"):
        gate("encoder", graph, EncoderGraph(model).eval(), enc_feeds)
