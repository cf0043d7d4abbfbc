"""The real AP-HiDiff network (tiny preset, random weights) exported to ONNX, packaged with
`write_package`, and verified by the runtime against torch: the package format and the Engine
fit the graphs models/aphidiff exports (cond pyramid, float t, sequence input, static batch).
Slow: two torch.onnx exports take about half a minute on two cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from package_factory import npy_bytes

from edge_runtime.package import Engine, verify_package
from edge_runtime.package.writer import write_package
from edge_runtime.providers import RuntimeOptions
from edge_runtime.samplers import make_sampler

BATCH = 2
STEPS = 3


def _export(module, args, path: Path, inputs, outputs) -> bytes:
    import torch

    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        opset_version=18,
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    return path.read_bytes()


@pytest.mark.slow
def test_real_model_package_verifies_against_torch(tmp_path: Path) -> None:
    # imported here, not at collection: the default (fast) run never pays for torch
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from models.aphidiff.config import SEQUENCES, preset
    from models.aphidiff.graphs import DenoiserGraph, EncoderGraph, condition_names
    from models.aphidiff.runtime_glue import schedule_config
    from models.training.factory import build_model

    torch.manual_seed(0)
    cfg = preset("tiny", "ap-hidiff")
    model = build_model(cfg).eval()
    with torch.no_grad():  # condition projections start at zero: give every path some weight
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    grid, c_in = cfg.data.grid, len(cfg.data.ct_phases) * (2 * cfg.data.context + 1)
    g = torch.Generator().manual_seed(1)
    ct = torch.rand(BATCH, c_in, grid, grid, generator=g) * 2 - 1
    seq_index = SEQUENCES.index("t1c")
    seq = torch.full((BATCH,), seq_index, dtype=torch.int64)
    enc, den = EncoderGraph(model).eval(), DenoiserGraph(model).eval()
    with torch.no_grad():
        conds = enc(ct, seq)
    names = condition_names(len(conds))
    x = torch.randn(BATCH, 1, grid, grid, generator=g)
    enc_bytes = _export(enc, (ct, seq), tmp_path / "e.onnx", ["ct", "sequence"], names)
    den_bytes = _export(
        den,
        (x, torch.tensor([5.0, 5.0]), seq, *conds),
        tmp_path / "d.onnx",
        ["x_t", "t", "sequence", *names],
        ["prediction"],
    )

    # the reference: torch network + the runtime's numpy sampler, as training samples
    sampler_config = {
        "prediction_type": cfg.diffusion.prediction,
        "schedule": schedule_config(cfg.diffusion).to_dict(),
    }
    sampler = make_sampler("ddim", sampler_config)
    sampler.set_timesteps(STEPS)
    noise = np.random.default_rng(2).standard_normal((BATCH, 1, grid, grid)).astype(np.float32)
    xt = noise.copy()
    with torch.no_grad():
        for t in sampler.timesteps:
            tt = torch.full((BATCH,), float(t))
            pred = den(torch.from_numpy(xt), tt, seq, *conds).numpy()
            xt = sampler.step(pred, int(t), xt).prev_sample.astype(np.float32)

    files = {
        "graphs/fp32/encoder.onnx": enc_bytes,
        "graphs/fp32/denoiser.onnx": den_bytes,
        "reference/case000_ct.npy": npy_bytes(ct.numpy()),
        "reference/case000_noise.npy": npy_bytes(noise),
        "reference/case000_output.npy": npy_bytes(xt),
    }
    manifest = {
        "name": "ap-hidiff-tiny-random",
        "task": {
            "inputs": [{"name": "ct", "modality": "CT", "phase": "portal_venous"}],
            "outputs": [
                {
                    "name": s,
                    "sequence": s,
                    "modality": "MR",
                    "mr_range": [0.0, 1.0],
                    "sequence_index": i,
                }
                for i, s in enumerate(SEQUENCES)
            ],
            "context_slices": cfg.data.context,
        },
        "grid": {"shape": [grid, grid], "spacing_mm": [1.5, 1.5]},
        "normalisation": {
            "ct_hu_window": [cfg.data.hu_min, cfg.data.hu_max],
            "model_range": [-1.0, 1.0],
            "mr_method": "fixed",
        },
        "sampler": {"kind": "ddim", "steps": STEPS, "config": sampler_config},
        "graphs": {
            "fp32": {"encoder": "graphs/fp32/encoder.onnx", "denoiser": "graphs/fp32/denoiser.onnx"}
        },
        "provenance": {"training_recipe": "untrained (random weights), tiny preset"},
        "reference": {
            "precision": "fp32",
            "cases": [
                {
                    "name": "case000",
                    "input": "reference/case000_ct.npy",
                    "noise": "reference/case000_noise.npy",
                    "output": "reference/case000_output.npy",
                    "seed": 0,
                    "output_name": "t1c",
                }
            ],
        },
    }
    pkg = write_package(tmp_path / "pkg", manifest, files)
    engine = Engine(pkg, "cpu", options=RuntimeOptions(cache_dir=None))
    assert engine.uses_sequence and engine.batch == BATCH and len(engine.cond_names) > 1
    report = verify_package(pkg, "cpu", engine=engine)
    assert report.passed, report
    assert report.cases[0].psnr_db >= 60
