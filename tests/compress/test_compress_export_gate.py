"""The export gate accepts a faithful graph and refuses a broken one: a graph whose weights
are perturbed after export no longer matches torch at 60 dB and is refused with a message
naming the graph, the output and the PSNR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compress.export_onnx import ExportGateError, gate
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
