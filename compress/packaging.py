"""`package`: a trained run -> a verified edge package (format 1) for one MR sequence.

What goes in, and why:
- the two graphs from `compress.export_onnx`, already gated against torch (>= 60 dB);
- the manifest: task (CT phase -> MR sequence, 2.5D context), grid and spacing of the training
  cases, the run's normalisation (HU window; MR percentile scaling with the run's median scale
  as the output's range), the sampler (kind, steps, spacing, the model's schedule and
  prediction type), provenance (the run's whole config, its checkpoint's sha256, the recipe);
- reference cases: real phantom slices of held-out cases in model space, their initial noise,
  and the outputs computed by the TORCH model with the runtime's numpy sampler, exactly the loop
  `Engine.denoise` runs. `hidiff verify` on any device is then a comparison with torch;
- validation metrics of the torch model against the phantom's true MR on the held-out split.

The written package is verified once more through the runtime (`verify_package` on the CPU);
a package that does not reproduce its own reference is deleted and the build fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as safetensors_load
from torch import nn

from compress.export_onnx import ExportConfig, ExportedGraphs, export_graphs
from edge_runtime import metrics
from edge_runtime.errors import HidiffError, InputError
from edge_runtime.machine import provenance
from edge_runtime.package.loader import EdgePackage
from edge_runtime.package.manifest import SamplerSpec
from edge_runtime.package.selfcheck import image_metric, verify_package
from edge_runtime.package.writer import write_package
from edge_runtime.providers import RuntimeOptions
from models.aphidiff import runtime_glue
from models.aphidiff.config import SEQUENCES, ModelConfig
from models.aphidiff.graphs import DenoiserGraph, EncoderGraph
from models.data.cases import CaseArrays, find_cases, read_case
from models.data.normalise import mr_scale, mr_to_unit
from models.data.slices import ct_stack
from models.training.checkpoint import latest_checkpoint, read_run_config
from models.training.factory import build_model

# The phantom's CT phase names (file names ct_<phase>) -> the manifest's phase names.
MANIFEST_PHASES: dict[str, str] = {
    "portal": "portal_venous",
    "arterial": "arterial",
    "plain": "plain",
}
DIFFUSION_MODELS = ("ap-hidiff", "ddpm")


@dataclass(frozen=True)
class PackagingConfig:
    """What package to build from a run."""

    # MR sequences offered (one output each, one pair of graphs); None: all the run learned.
    sequences: tuple[str, ...] | None = None
    # DDIM: deterministic (eta 0), so a package's output depends on its seed and noise only.
    sampler: str = "ddim"
    # Few steps for the shipped fp32 package; the full model's many-step package uses 50.
    steps: int = 4
    # "trailing" starts at the noisiest training step (999), which few-step sampling needs
    # (Lin et al. 2023); "leading" would start 4 steps at t = 750 from pure noise.
    timestep_spacing: str = "trailing"
    # None: aphidiff-<preset>-<sequences>-fp32-<sampler><steps>.
    name: str | None = None
    # Held-out splits: reference slices and validation metrics come from them, never from train.
    splits: tuple[str, ...] = ("test", "val")
    # Reference cases for `hidiff verify` (one per held-out case, up to this many).
    reference_cases: int = 1
    # Liver slices per reference case: a batch the self-check runs in a second or two.
    reference_slices: int = 4
    # Slices the export gate compares torch and ONNX on.
    gate_slices: int = 2
    # Validation: every liver slice of up to this many held-out cases, `batch` at a time.
    validation_cases: int = 2
    # Liver slices scored per validation case, evenly spaced (None: all): a many-step package
    # at 512^2 costs a minute or more per slice on a 2-core CPU.
    validation_slices: int | None = None
    batch: int = 8
    seed: int = 1234
    psnr_min_db: float = 40.0
    # How far a device's recomputed metrics may stray from the shipped ones.
    metric_tolerance: dict[str, float] = field(
        default_factory=lambda: {"psnr_db": 0.5, "mae": 0.005, "ssim": 0.005}
    )


@dataclass(frozen=True)
class HeldOutCase:
    """One held-out case in model space: liver slices, CT stacks, normalised true MR, body."""

    case_id: str
    slices: np.ndarray  # z indices
    ct: np.ndarray  # (N, C_in, H, W)
    target: np.ndarray  # (N, 1, H, W) in [-1, 1]
    body: np.ndarray  # (N, H, W) bool


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def held_out_cases(data: Path, splits: tuple[str, ...]) -> list[Path]:
    """Case folders of the held-out `splits` (a small cohort may lack one of them)."""
    found: list[Path] = []
    for split in splits:
        try:
            found += find_cases(data, split)
        except InputError:
            continue
    if not found:
        raise InputError(f"{data}: no case in the held-out split(s) {', '.join(splits)}")
    return found


def load_weights(run: Path, weights: bytes) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """The run's model (config.json) with the given safetensors bytes, in eval mode."""
    doc = read_run_config(Path(run))
    mc = ModelConfig.from_dict(doc["model"])
    model = build_model(mc)
    model.load_state_dict(safetensors_load(weights))
    return model.eval(), mc, doc


def checkpoint_file(run: Path) -> Path:
    """The weights `load_run` uses: the final EMA weights, else the latest checkpoint's EMA."""
    final = Path(run) / "weights.safetensors"
    return final if final.is_file() else latest_checkpoint(Path(run)) / "ema.safetensors"


def held_out(
    case: CaseArrays, mc: ModelConfig, sequence: str, count: int | None = None
) -> HeldOutCase:
    """Liver slices of `case` (all, or `count` evenly spaced) as the model sees them."""
    liver = case.label_table.get("liver")
    if liver is None:
        raise InputError(f"case {case.case_id}: no liver label in case.json")
    zs = np.flatnonzero((case.labels == liver).any(axis=(1, 2)))
    if zs.size == 0:
        raise InputError(f"case {case.case_id}: no liver slices")
    if count is not None and count < zs.size:
        zs = zs[np.linspace(0, zs.size - 1, count).round().astype(int)]
    body = case.labels > 0
    scale = mr_scale(case.mr[sequence], body, mc.data.mr_percentile)
    ct = np.stack([ct_stack(case, int(z), mc.data) for z in zs]).astype(np.float32)
    target = mr_to_unit(case.mr[sequence][zs], scale)[:, None]
    return HeldOutCase(case.case_id, zs, ct, target.astype(np.float32), body[zs])


@torch.no_grad()
def torch_generate(
    model: nn.Module,
    sequence: str,
    ct: np.ndarray,
    noise: np.ndarray,
    seed: int,
    sampler_spec: SamplerSpec,
) -> np.ndarray:
    """The torch model through the runtime's sampler: the loop of `Engine.denoise`, step for
    step (x_T scaled by init_noise_sigma, scale_model_input, generator from `seed`)."""
    enc, den = EncoderGraph(model).eval(), DenoiserGraph(model).eval()
    seq = torch.full((ct.shape[0],), SEQUENCES.index(sequence), dtype=torch.int64)
    conds = enc(torch.from_numpy(np.ascontiguousarray(ct, dtype=np.float32)), seq)
    sampler = sampler_spec.build()
    rng = np.random.default_rng(seed)
    x = np.asarray(noise, dtype=np.float32) * np.float32(sampler.init_noise_sigma)
    for t in sampler.timesteps:
        t = int(t)
        inp = np.ascontiguousarray(sampler.scale_model_input(x, t), dtype=np.float32)
        steps = torch.full((x.shape[0],), float(t))
        pred = den(torch.from_numpy(inp), steps, seq, *conds).float().numpy()
        x = sampler.step(pred, t, x, generator=rng).prev_sample.astype(np.float32)
    return x


def sampler_manifest(mc: ModelConfig, cfg: PackagingConfig) -> dict[str, Any]:
    """The manifest's sampler: the model's schedule and prediction type, the chosen solver."""
    sched = runtime_glue.schedule_config(mc.diffusion).to_dict()
    config: dict[str, Any] = {"prediction_type": mc.diffusion.prediction, "schedule": sched}
    if cfg.sampler in ("ddim", "ddpm", "dpm_solver++"):
        config["timestep_spacing"] = cfg.timestep_spacing
    spec = {"kind": cfg.sampler, "steps": cfg.steps, "timesteps": None, "config": config}
    built = SamplerSpec(cfg.sampler, cfg.steps, None, config).build()
    spec["timesteps"] = [int(t) for t in built.timesteps]
    return spec


def validation_metrics(
    model: nn.Module, sequence: str, cases: list[HeldOutCase], spec: SamplerSpec, cfg
) -> dict[str, Any]:
    """Torch model vs the phantom's true MR (model space, range 2) over the liver slices of
    the held-out cases: PSNR, MAE, SSIM of the slice and SSIM inside the body."""
    values: dict[str, list[float]] = {"psnr_db": [], "mae": [], "ssim": [], "ssim_body": []}
    for case in cases:
        for i0 in range(0, len(case.slices), cfg.batch):
            sl = slice(i0, i0 + cfg.batch)
            rng = np.random.default_rng((cfg.seed, int(case.slices[i0])))
            noise = rng.standard_normal(case.target[sl].shape, dtype=np.float32)
            out = torch_generate(model, sequence, case.ct[sl], noise, cfg.seed, spec)
            for pred, truth, body in zip(out[:, 0], case.target[sl, 0], case.body[sl], strict=True):
                values["psnr_db"].append(metrics.psnr(pred, truth, 2.0))
                values["mae"].append(metrics.mae(pred, truth))
                values["ssim"].append(metrics.ssim(pred, truth, 2.0))
                values["ssim_body"].append(metrics.masked_ssim(pred, truth, body, 2.0))
    return {
        "metrics": {k: float(np.mean(v)) for k, v in values.items()},
        "slices": len(values["mae"]),
        "cases": [c.case_id for c in cases],
        "space": "model space [-1, 1] (MR / body 99.5th percentile), data range 2",
        "reference": "phantom mr_<seq>_ctphase (the MR at the CT's breathing phase)",
    }


def contract(
    mc: ModelConfig, scales: dict[str, float], seqs: tuple[str, ...], spacing: tuple[float, ...]
) -> dict[str, Any]:
    """The manifest's task, grid and normalisation of a model trained with `mc` (shared by the
    full model's package and the compressed ones: same inputs, outputs and intensities)."""
    return {
        "task": {
            "inputs": [
                {"name": f"ct_{p}", "modality": "CT", "phase": MANIFEST_PHASES.get(p, p)}
                for p in mc.data.ct_phases
            ],
            "outputs": [
                {
                    "name": f"mr_{q}",
                    "sequence": q,
                    "modality": "MR",
                    "mr_range": [0.0, float(scales[q])],
                    "sequence_index": SEQUENCES.index(q),
                }
                for q in seqs
            ],
            "context_slices": mc.data.context,
        },
        "grid": {
            "shape": [mc.data.grid, mc.data.grid],
            "spacing_mm": [float(spacing[1]), float(spacing[0])],
            "slice_thickness_mm": float(spacing[2]),
        },
        "normalisation": {
            "ct_hu_window": [float(mc.data.hu_min), float(mc.data.hu_max)],
            "model_range": [-1.0, 1.0],
            "mr_method": "percentile",
            "mr_percentile": float(mc.data.mr_percentile),
        },
    }


def build_package(
    run: Path,
    data: Path,
    out: Path,
    cfg: PackagingConfig | None = None,
    export_cfg: ExportConfig | None = None,
    overwrite: bool = False,
) -> tuple[EdgePackage, dict[str, Any]]:
    """Export, reference, validate and write the package at `out`; return it and a summary."""
    cfg = cfg or PackagingConfig()
    start = time.perf_counter()
    run, data, out = Path(run), Path(data), Path(out)
    # The weights are read once: the bytes hashed are the bytes loaded (a run still training
    # may write a newer checkpoint meanwhile).
    weights = checkpoint_file(run)
    weights_bytes = weights.read_bytes()
    weights_sha = sha256_bytes(weights_bytes)
    model, mc, doc = load_weights(run, weights_bytes)
    if mc.model not in DIFFUSION_MODELS:
        raise InputError(f"{run}: a {mc.model} run is not a diffusion model; cannot package it")
    scales = doc.get("mr_scales", {})
    seqs = tuple(cfg.sequences or [q for q in SEQUENCES if q in scales])
    missing = [q for q in seqs if q not in scales]
    if missing or not seqs:
        raise InputError(f"{run} was not trained on sequence(s) {missing} ({sorted(scales)})")
    config_bytes = (run / "config.json").read_bytes()

    case_dirs = held_out_cases(data, cfg.splits)
    n_cases = max(cfg.reference_cases, cfg.validation_cases)
    cases = [read_case(d, mc.data.ct_phases, seqs) for d in case_dirs[:n_cases]]
    for c in cases:
        if c.labels.shape[1:] != (mc.data.grid, mc.data.grid):
            raise InputError(
                f"case {c.case_id} is {c.labels.shape[1:]} in-plane; the run's grid is "
                f"{mc.data.grid}: render the held-out cases at the model's grid"
            )
    exported: ExportedGraphs = export_graphs(
        model,
        seqs,
        held_out(cases[0], mc, seqs[0], cfg.gate_slices).ct,
        metadata={
            "hidiff.run": run.name,
            "hidiff.checkpoint_sha256": weights_sha,
            "hidiff.model": mc.model,
            "hidiff.preset": mc.preset,
        },
        cfg=export_cfg,
    )
    sampler = sampler_manifest(mc, cfg)
    spec = SamplerSpec(cfg.sampler, cfg.steps, tuple(sampler["timesteps"]), sampler["config"])

    files: dict[str, bytes] = {
        "graphs/fp32/encoder.onnx": exported.encoder,
        "graphs/fp32/denoiser.onnx": exported.denoiser,
    }
    ref_cases: list[dict[str, Any]] = []
    values: dict[str, list[float]] = {k: [] for k in cfg.metric_tolerance}
    validation: dict[str, Any] = {}
    for seq in seqs:
        for case in cases[: cfg.reference_cases]:
            i = len(ref_cases)
            ref = held_out(case, mc, seq, cfg.reference_slices)
            seed = cfg.seed + i
            noise = np.random.default_rng((cfg.seed, i)).standard_normal(
                ref.target.shape, dtype=np.float32
            )
            output = torch_generate(model, seq, ref.ct, noise, seed, spec)
            for k in values:
                values[k].append(image_metric(k, output, ref.target, 2.0))
            name = f"case{i:03d}_{seq}"
            paths = {
                key: f"reference/{name}_{key if key != 'input' else 'ct'}.npy"
                for key in ("input", "noise", "output", "target")
            }
            for key, arr in (
                ("input", ref.ct),
                ("noise", noise),
                ("output", output),
                ("target", ref.target),
            ):
                files[paths[key]] = npy_bytes(arr.astype(np.float32))
            ref_cases.append({"name": name, "seed": seed, "output_name": f"mr_{seq}", **paths})
        vals = [held_out(c, mc, seq, cfg.validation_slices) for c in cases[: cfg.validation_cases]]
        validation[seq] = validation_metrics(model, seq, vals, spec, cfg)

    cohort = _cohort_info(data)
    spacing = cases[0].reference.GetSpacing() if cases[0].reference is not None else None
    if spacing is None:
        raise InputError(f"case {cases[0].case_id}: no geometry to read the grid spacing from")
    name = cfg.name or f"aphidiff-{mc.preset}-{'-'.join(seqs)}-fp32-{cfg.sampler}{cfg.steps}"
    if mc.model != "ap-hidiff":
        name = name.replace("aphidiff", mc.model)
    manifest = {
        "name": name,
        "description": (
            f"{mc.model} preset {mc.preset}, CT ({', '.join(mc.data.ct_phases)}) -> "
            f"synthetic {'/'.join(q.upper() for q in seqs)}, fp32, {cfg.sampler.upper()} {cfg.steps} steps. "
            "Not compressed: the full model's graphs as trained."
        ),
        **contract(mc, scales, seqs, spacing),
        "sampler": sampler,
        "graphs": {
            "fp32": {"encoder": "graphs/fp32/encoder.onnx", "denoiser": "graphs/fp32/denoiser.onnx"}
        },
        "provenance": {
            "built_by": "compress.packaging.build_package",
            "training_run": {
                "name": run.name,
                "config": json.loads(config_bytes),
                "config_sha256": sha256_bytes(config_bytes),
                "checkpoint": weights.relative_to(run).as_posix(),
                "checkpoint_sha256": weights_sha,
                "step": _run_step(run, weights),
            },
            "teacher_sha256": weights_sha,
            "recipe": {
                "stages": ["export", "package"],
                "export": asdict(export_cfg or ExportConfig()),
                "package": asdict(cfg),
            },
            "compression_recipe": None,
            "export_gate": [g.to_dict() for g in exported.gates],
            "data": cohort,
            "machine": provenance(),
        },
        "validation": {
            "dataset": {**cohort, "splits": list(cfg.splits)},
            "by_sequence": validation,
            "reference_sources": [c.case_id for c in cases[: cfg.reference_cases]],
        },
        "reference": {
            "precision": "fp32",
            "psnr_min_db": cfg.psnr_min_db,
            "data_range": 2.0,
            "metrics": {k: float(np.mean(v)) for k, v in values.items()},
            "metric_tolerance": dict(cfg.metric_tolerance),
            "cases": ref_cases,
        },
    }
    package = write_package(out, manifest, files, overwrite=overwrite)
    report = verify_package(package, "cpu", options=RuntimeOptions(cache_dir=None))
    if not report.passed:
        shutil.rmtree(out, ignore_errors=True)
        raise HidiffError(
            f"package {name} does not reproduce its torch reference in onnxruntime "
            f"({json.dumps(report.to_dict())}); removed {out}"
        )
    summary = {
        "package": str(out),
        "name": name,
        "export_gate": [g.to_dict() for g in exported.gates],
        "verify": report.to_dict(),
        "validation": validation,
        "bytes": sum(len(b) for b in files.values()),
        "seconds": time.perf_counter() - start,
    }
    return package, summary


def _run_step(run: Path, weights: Path) -> int | None:
    """The training step of `weights`: its checkpoint folder's, or the run's last."""
    if weights.parent.name.startswith("step-"):
        return int(weights.parent.name.removeprefix("step-"))
    latest = run / "latest.json"
    if not latest.is_file():
        return None
    return int(json.loads(latest.read_text()).get("step", 0))


def _cohort_info(data: Path) -> dict[str, Any]:
    """Which data the package was validated on: the cohort's seed, size and grid if known."""
    info: dict[str, Any] = {"path": data.name}
    cohort = data / "cohort.json"
    if cohort.is_file():
        doc = json.loads(cohort.read_text())
        info.update(
            {k: doc[k] for k in ("format", "seed", "n", "grid", "slices") if k in doc},
        )
        info["cases"] = len(doc.get("cases", []))
    return info


__all__ = ["PackagingConfig", "build_package", "load_weights", "torch_generate"]
