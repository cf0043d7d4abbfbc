"""Build complete, valid edge packages in a temporary folder, for tests of any layer.

The graphs are real ONNX models made with `onnx.helper` (a conv/tanh conditioning encoder and a
conv denoiser with a timestep embedding, denoiser-shaped: (sample, timestep, cond) -> prediction),
never hand-written files. The reference outputs are computed by a numpy implementation of the
same graphs plus the runtime's numpy sampler, independently of onnxruntime, so `hidiff verify`
really compares two implementations.

    from tests.runtime.package_factory import TinyModel, make_package
    pkg_dir = make_package(tmp_path / "pkg", precisions=("fp32", "fp16"))
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_runtime.package.selfcheck import image_metric
from edge_runtime.package.writer import write_package
from edge_runtime.samplers import make_sampler

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime >= 1.14
_ONNX_TYPE = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16}
_NP_TYPE = {"fp32": np.float32, "fp16": np.float16}
SEQUENCE_NAMES = ("t2", "t1", "t1c")  # models/aphidiff/config.py's order


@dataclass(frozen=True)
class TinyModel:
    """Sizes and seeded weights of a tiny denoiser-shaped network.

    With `sequences` > 0 both graphs also read `sequence` (N,) int64 and one network makes one
    of several MR sequences per pass (x_t has one channel), as models/aphidiff exports it;
    with 0 the network makes `out_channels` outputs at once.
    """

    phases: int = 1
    context_slices: int = 1
    cond_channels: int = 4
    out_channels: int = 1
    sequences: int = 0
    # None: a symbolic batch dimension "N"; an int: graphs exported for that batch only.
    fixed_batch: int | None = None
    height: int = 16
    width: int = 16
    num_train_timesteps: int = 1000
    seed: int = 0

    @property
    def in_channels(self) -> int:
        return self.phases * (2 * self.context_slices + 1)

    @property
    def sample_channels(self) -> int:
        return 1 if self.sequences else self.out_channels

    @property
    def n(self) -> int | str:
        return "N" if self.fixed_batch is None else self.fixed_batch

    @property
    def n_outputs(self) -> int:
        return self.sequences or self.out_channels

    def weights(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        c_in, c_c, c_o = self.in_channels, self.cond_channels, self.sample_channels
        w = {
            "enc_w": (rng.standard_normal((c_c, c_in, 3, 3)) * 0.3).astype(np.float32),
            "enc_b": (rng.standard_normal(c_c) * 0.1).astype(np.float32),
            "den_w": (rng.standard_normal((c_o, c_o + c_c, 3, 3)) * 0.2).astype(np.float32),
            "den_b": (rng.standard_normal(c_o) * 0.1).astype(np.float32),
            "t_w": (rng.standard_normal((1, c_o, 1, 1)) * 0.5).astype(np.float32),
        }
        if self.sequences:
            w["enc_seq"] = (rng.standard_normal((self.sequences, c_c)) * 0.5).astype(np.float32)
            w["den_seq"] = (rng.standard_normal((self.sequences, c_o)) * 0.5).astype(np.float32)
        return w


def _init(name: str, array: np.ndarray, precision: str) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(_NP_TYPE[precision]), name)


def _axes(name: str, axes: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(axes, dtype=np.int64), name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hidiff-tests"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _sequence_bias(table: str, out: str) -> list[onnx.NodeProto]:
    """bias (N, C, 1, 1) = table[sequence]: how the network is told which sequence to make."""
    return [
        helper.make_node("Gather", [table, "sequence"], [f"{out}_row"], axis=0),
        helper.make_node("Unsqueeze", [f"{out}_row", "hw_axes"], [out]),
    ]


def encoder_graph(spec: TinyModel, precision: str = "fp32") -> onnx.ModelProto:
    """ct (N, C_in, H, W) [, sequence (N,)] -> cond = tanh(conv3x3(ct) [+ E[sequence]])."""
    w = spec.weights()
    t = _ONNX_TYPE[precision]
    hw = [spec.height, spec.width]
    nodes = [helper.make_node("Conv", ["ct", "enc_w", "enc_b"], ["enc_conv"], pads=[1, 1, 1, 1])]
    inputs = [helper.make_tensor_value_info("ct", t, [spec.n, spec.in_channels, *hw])]
    inits = [_init("enc_w", w["enc_w"], precision), _init("enc_b", w["enc_b"], precision)]
    pre = "enc_conv"
    if spec.sequences:
        nodes += _sequence_bias("enc_seq", "enc_seq_bias")
        nodes.append(helper.make_node("Add", ["enc_conv", "enc_seq_bias"], ["enc_pre"]))
        inputs.append(helper.make_tensor_value_info("sequence", TensorProto.INT64, [spec.n]))
        inits += [_init("enc_seq", w["enc_seq"], precision), _axes("hw_axes", [2, 3])]
        pre = "enc_pre"
    nodes.append(helper.make_node("Tanh", [pre], ["cond"]))
    graph = helper.make_graph(
        nodes,
        "tiny_encoder",
        inputs,
        [helper.make_tensor_value_info("cond", t, [spec.n, spec.cond_channels, *hw])],
        inits,
    )
    return _model(graph)


def denoiser_graph(spec: TinyModel, precision: str = "fp32") -> onnx.ModelProto:
    """(x_t, t, [sequence,] cond) -> tanh(conv3x3([x_t, cond]) + (t / T) w_t [+ E[sequence]])."""
    w = spec.weights()
    ty = _ONNX_TYPE[precision]
    inv_t = np.array(1.0 / spec.num_train_timesteps, dtype=_NP_TYPE[precision])
    c = spec.sample_channels
    hw = [spec.height, spec.width]
    nodes = [
        helper.make_node("Concat", ["x_t", "cond"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "den_w", "den_b"], ["den_conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Cast", ["t"], ["t_float"], to=ty),
        helper.make_node("Mul", ["t_float", "inv_T"], ["t_scaled"]),
        helper.make_node("Unsqueeze", ["t_scaled", "t_axes"], ["t_col"]),
        helper.make_node("Mul", ["t_col", "t_w"], ["t_emb"]),
        helper.make_node("Add", ["den_conv", "t_emb"], ["pre"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x_t", ty, [spec.n, c, *hw]),
        helper.make_tensor_value_info("t", TensorProto.INT64, [spec.n]),
        helper.make_tensor_value_info("cond", ty, [spec.n, spec.cond_channels, *hw]),
    ]
    inits = [
        _init("den_w", w["den_w"], precision),
        _init("den_b", w["den_b"], precision),
        _init("t_w", w["t_w"], precision),
        numpy_helper.from_array(inv_t, "inv_T"),
        _axes("t_axes", [1, 2, 3]),
    ]
    last = "pre"
    if spec.sequences:
        nodes += _sequence_bias("den_seq", "den_seq_bias")
        nodes.append(helper.make_node("Add", ["pre", "den_seq_bias"], ["pre_seq"]))
        inputs.append(helper.make_tensor_value_info("sequence", TensorProto.INT64, [spec.n]))
        inits += [_init("den_seq", w["den_seq"], precision), _axes("hw_axes", [2, 3])]
        last = "pre_seq"
    nodes.append(helper.make_node("Tanh", [last], ["prediction"]))
    graph = helper.make_graph(
        nodes,
        "tiny_denoiser",
        inputs,
        [helper.make_tensor_value_info("prediction", ty, [spec.n, c, *hw])],
        inits,
    )
    return _model(graph)


def conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Zero-padded 3x3 convolution (cross-correlation, as ONNX Conv), float64."""
    n, _, h, wd = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, dy : dy + h, dx : dx + wd], w[:, :, dy, dx])
    return out + b[None, :, None, None]


def numpy_encoder(spec: TinyModel, ct: np.ndarray, sequence: int | None = None) -> np.ndarray:
    w = spec.weights()
    pre = conv3x3(ct, w["enc_w"], w["enc_b"])
    if spec.sequences:
        pre += w["enc_seq"][sequence][None, :, None, None]
    return np.tanh(pre)


def numpy_denoiser(
    spec: TinyModel, sample: np.ndarray, t: int, cond: np.ndarray, sequence: int | None = None
) -> np.ndarray:
    w = spec.weights()
    pre = conv3x3(np.concatenate([sample, cond], axis=1), w["den_w"], w["den_b"])
    pre += (t / spec.num_train_timesteps) * w["t_w"].astype(np.float64)
    if spec.sequences:
        pre += w["den_seq"][sequence][None, :, None, None]
    return np.tanh(pre)


def numpy_generate(
    spec: TinyModel,
    sampler_kind: str,
    sampler_config: dict,
    steps: int,
    ct: np.ndarray,
    noise: np.ndarray,
    seed: int,
    sequence: int | None = None,
) -> np.ndarray:
    """The reference output: numpy network + the runtime's numpy sampler, float32 state."""
    sampler = make_sampler(sampler_kind, sampler_config)
    sampler.set_timesteps(steps)
    cond = numpy_encoder(spec, ct, sequence)
    rng = np.random.default_rng(seed)
    x = noise.astype(np.float32)
    for t in sampler.timesteps:
        pred = numpy_denoiser(spec, x, int(t), cond, sequence).astype(np.float32)
        x = sampler.step(pred, int(t), x, generator=rng).prev_sample.astype(np.float32)
    return x


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def smooth_target(spec: TinyModel, seed: int) -> np.ndarray:
    """A plausible 'true MRI' slice for metrics: a smooth blob in [-1, 1]."""
    yy, xx = np.mgrid[0 : spec.height, 0 : spec.width] / max(spec.height, spec.width)
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05) * 1.6 - 0.8
    shape = (1, spec.sample_channels, spec.height, spec.width)
    return np.broadcast_to(blob, shape).astype(np.float32)


@dataclass
class PackageSpec:
    """What `make_package` builds; every field has a default that makes a valid package."""

    model: TinyModel = field(default_factory=TinyModel)
    name: str = "tiny-test-package"
    precisions: tuple[str, ...] = ("fp32",)
    sampler_kind: str = "ddim"
    sampler_config: dict = field(default_factory=lambda: {"prediction_type": "epsilon"})
    steps: int = 4
    n_cases: int = 1
    batch: int = 2
    metrics: tuple[str, ...] = ("psnr_db", "mae", "ssim")


def make_package(dest: Path, spec: PackageSpec | None = None, **overrides: Any) -> Path:
    """Write a complete package folder at `dest` (created) and return it."""
    spec = spec or PackageSpec(**overrides)
    m = spec.model
    dest = Path(dest)
    blobs: dict[str, bytes] = {}
    graphs = {}
    for p in spec.precisions:
        enc, den = f"graphs/{p}/encoder.onnx", f"graphs/{p}/denoiser.onnx"
        blobs[enc] = encoder_graph(m, p).SerializeToString()
        blobs[den] = denoiser_graph(m, p).SerializeToString()
        graphs[p] = {"encoder": enc, "denoiser": den}

    cases, values = [], {k: [] for k in spec.metrics}
    for i in range(spec.n_cases):
        rng = np.random.default_rng(100 + i)
        ct = np.tanh(rng.standard_normal((spec.batch, m.in_channels, m.height, m.width))).astype(
            np.float32
        )
        noise = rng.standard_normal((spec.batch, m.sample_channels, m.height, m.width)).astype(
            np.float32
        )
        seed = 1000 + i
        sequence = i % m.sequences if m.sequences else None
        out = numpy_generate(
            m, spec.sampler_kind, spec.sampler_config, spec.steps, ct, noise, seed, sequence
        )
        target = np.repeat(smooth_target(m, i), spec.batch, axis=0)
        for k in spec.metrics:
            values[k].append(image_metric(k, out, target, 2.0))
        name = f"case{i:03d}"
        paths = {
            "input": f"reference/{name}_ct.npy",
            "noise": f"reference/{name}_noise.npy",
            "output": f"reference/{name}_output.npy",
            "target": f"reference/{name}_target.npy",
        }
        for key, arr in (("input", ct), ("noise", noise), ("output", out), ("target", target)):
            blobs[paths[key]] = npy_bytes(arr)
        case = {"name": name, "seed": seed, **paths}
        if m.sequences:
            case["output_name"] = SEQUENCE_NAMES[sequence]
        cases.append(case)

    manifest = {
        "name": spec.name,
        "description": "tiny untrained network built by tests/runtime/package_factory.py",
        "task": {
            "inputs": [
                {"name": f"ct_{k}", "modality": "CT", "phase": "portal_venous"}
                for k in range(m.phases)
            ],
            "outputs": [
                {
                    "name": SEQUENCE_NAMES[k] if m.sequences else f"mr_{k}",
                    "sequence": SEQUENCE_NAMES[k % 3],
                    "modality": "MR",
                    "mr_range": [0.0, 1000.0 + 100.0 * k],
                    "sequence_index": k if m.sequences else None,
                }
                for k in range(m.n_outputs)
            ],
            "context_slices": m.context_slices,
        },
        "grid": {"shape": [m.height, m.width], "spacing_mm": [1.5, 1.5], "slice_thickness_mm": 3.0},
        "normalisation": {
            "ct_hu_window": [-160.0, 240.0],
            "model_range": [-1.0, 1.0],
            "mr_method": "percentile",
            "mr_percentile": 99.5,
        },
        "sampler": {
            "kind": spec.sampler_kind,
            "steps": spec.steps,
            "timesteps": None,
            "config": spec.sampler_config,
        },
        "graphs": graphs,
        "provenance": {
            "training_recipe": "none (untrained test network)",
            "teacher_sha256": None,
            "compression_recipe": None,
            "built_by": "tests/runtime/package_factory.py",
        },
        "validation": {"dataset": "none", "metrics": {}},
        "reference": {
            "precision": spec.precisions[0],
            "psnr_min_db": 40.0,
            "data_range": 2.0,
            "metrics": {k: float(np.mean(v)) for k, v in values.items()},
            "metric_tolerance": {"psnr_db": 0.5, "mae": 0.005, "ssim": 0.005},
            "cases": cases,
        },
    }
    manifest["reference"]["metric_tolerance"] = {
        k: v for k, v in manifest["reference"]["metric_tolerance"].items() if k in spec.metrics
    }
    write_package(dest, manifest, blobs)
    return dest


def rewrite_manifest(pkg: Path, change) -> None:
    """Apply `change(dict)` to a package's manifest in place (for refusal tests)."""
    path = Path(pkg) / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def rehash(pkg: Path, rel: str) -> None:
    """Record a file's current sha256 and size in the manifest (to build 'valid' variants)."""
    data = (Path(pkg) / rel).read_bytes()

    def change(m: dict) -> None:
        for entry in m["files"]:
            if entry["path"] == rel:
                entry["sha256"] = hashlib.sha256(data).hexdigest()
                entry["bytes"] = len(data)

    rewrite_manifest(pkg, change)
