"""`Engine`: a verified package's two graphs on one device, and the denoising loop.

This is the model-space core that `hidiff verify` runs today and the `Synthesizer` will wrap
(resampling, normalisation, slicing and tiling around it): encoder once per batch of slices,
then the sampler's steps with the denoiser. Tensors are (N, C, H, W) in model space.

Format 1 tensor contract (checked against the graphs when the engine is made, since an ONNX
file can only be inspected by loading it): the encoder reads `ct` of shape (N, C_in, H, W) with
C_in = inputs x (2 context + 1); every encoder output is a denoiser input of the same name; the
denoiser also reads `sample` (N, C_out, H, W) and `timestep` (N,) and its first output is the
network prediction, shaped like `sample`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from edge_runtime.errors import InputError, PackageError
from edge_runtime.package.loader import EdgePackage
from edge_runtime.package.manifest import DENOISER_SAMPLE, DENOISER_TIMESTEP, ENCODER_INPUT
from edge_runtime.providers import (
    RuntimeOptions,
    SessionHandle,
    SessionRunner,
    choose_precision,
    create_session,
    resolve_profile,
)
from edge_runtime.samplers import Sampler

Cond = Mapping[str, np.ndarray | ort.OrtValue]


def _fixed(dim: object) -> int | None:
    """A graph dimension if it is a fixed integer, None if symbolic (e.g. the batch)."""
    return dim if isinstance(dim, int) else None


class Engine:
    """Encoder and denoiser sessions of one package on one provider, at one precision."""

    def __init__(
        self,
        package: EdgePackage,
        provider: str = "auto",
        precision: str | None = None,
        options: RuntimeOptions | None = None,
        io_binding: bool | None = None,
    ) -> None:
        self.package = package
        m = package.manifest
        profile = resolve_profile(provider)
        self.precision = choose_precision(profile, m.precisions, precision)
        label = f"{m.name} {self.precision}"
        self.encoder: SessionHandle = create_session(
            package.graph_bytes(self.precision, "encoder"),
            provider,
            options,
            name=f"{label} encoder",
        )
        self.denoiser: SessionHandle = create_session(
            package.graph_bytes(self.precision, "denoiser"),
            provider,
            options,
            name=f"{label} denoiser",
        )
        self.encoder_runner = SessionRunner(self.encoder, io_binding)
        self.denoiser_runner = SessionRunner(self.denoiser, io_binding)
        self.cond_names = [o.name for o in self.encoder.session.get_outputs()]
        self.prediction_name = self.denoiser.session.get_outputs()[0].name
        self._check_contract()

    @property
    def provider(self) -> str:
        """The onnxruntime provider the denoiser actually runs on."""
        return self.denoiser.provider

    def _check_contract(self) -> None:
        m = self.package.manifest
        h, w = m.grid.shape
        c_in, c_out = m.task.in_channels, m.task.out_channels
        graphs = m.graphs[self.precision]

        enc_inputs = {i.name: i for i in self.encoder.session.get_inputs()}
        if set(enc_inputs) != {ENCODER_INPUT}:
            raise PackageError(
                f"encoder graph {graphs['encoder']} must read exactly one input "
                f"{ENCODER_INPUT!r}, it reads {sorted(enc_inputs)}"
            )
        self._check_shape(graphs["encoder"], enc_inputs[ENCODER_INPUT], (c_in, h, w))

        den_inputs = {i.name: i for i in self.denoiser.session.get_inputs()}
        expected = {DENOISER_SAMPLE, DENOISER_TIMESTEP, *self.cond_names}
        if set(den_inputs) != expected:
            raise PackageError(
                f"denoiser graph {graphs['denoiser']} reads {sorted(den_inputs)}, but format 1 "
                f"needs {sorted(expected)} (sample, timestep and the encoder's outputs)"
            )
        self._check_shape(graphs["denoiser"], den_inputs[DENOISER_SAMPLE], (c_out, h, w))
        self._timestep_rank = len(den_inputs[DENOISER_TIMESTEP].shape)
        if self._timestep_rank > 1:
            raise PackageError(
                f"denoiser graph {graphs['denoiser']}: timestep must be (N,) or scalar"
            )

    @staticmethod
    def _check_shape(graph: str, arg: ort.NodeArg, chw: Sequence[int]) -> None:
        shape = list(arg.shape)
        if len(shape) != 4:
            raise PackageError(f"graph {graph}: input {arg.name} has rank {len(shape)}, not 4")
        for axis, (dim, want) in enumerate(zip(shape[1:], chw, strict=True), start=1):
            if _fixed(dim) is not None and dim != want:
                raise PackageError(
                    f"graph {graph}: input {arg.name} has size {dim} on axis {axis}, but the "
                    f"manifest's task and grid say {want}"
                )

    def check_model_input(self, ct: np.ndarray) -> None:
        """Refuse a model-space CT batch that violates the package's input contract."""
        m = self.package.manifest
        want = (m.task.in_channels, *m.grid.shape)
        if ct.ndim != 4 or tuple(ct.shape[1:]) != want:
            raise InputError(
                f"package {m.name!r} takes CT batches of shape (N, {', '.join(map(str, want))}) "
                f"(channels = phases x (2 x {m.task.context_slices} + 1), grid "
                f"{m.grid.shape[0]}x{m.grid.shape[1]}), got {tuple(ct.shape)}"
            )
        if not np.isfinite(ct).all():
            raise InputError("CT batch contains NaN or infinite values")

    def encode(self, ct: np.ndarray) -> dict[str, np.ndarray | ort.OrtValue]:
        """Conditioning features of a CT batch, left on the device when IO binding is on."""
        self.check_model_input(ct)
        return self.encoder_runner.run(
            {ENCODER_INPUT: ct}, self.cond_names, keep_on_device=self.encoder_runner.io_binding
        )

    def predict(self, cond: Cond, sample: np.ndarray, timestep: int) -> np.ndarray:
        """One denoiser call: the network's prediction at `timestep`, as float32."""
        n = sample.shape[0]
        t = np.full((n,), timestep) if self._timestep_rank == 1 else np.asarray(timestep)
        feeds = {DENOISER_SAMPLE: sample, DENOISER_TIMESTEP: t, **cond}
        out = self.denoiser_runner.run(feeds, [self.prediction_name])[self.prediction_name]
        return np.asarray(out, dtype=np.float32)

    def denoise(
        self,
        cond: Cond,
        noise: np.ndarray,
        generator: np.random.Generator,
        sampler: Sampler | None = None,
    ) -> np.ndarray:
        """Run the package's sampler from `noise` (x_T) to a model-space image."""
        sampler = sampler or self.package.make_sampler()
        x = np.asarray(noise, dtype=np.float32) * np.float32(sampler.init_noise_sigma)
        for t in sampler.timesteps:
            t = int(t)
            pred = self.predict(cond, sampler.scale_model_input(x, t), t)
            x = sampler.step(pred, t, x, generator=generator).prev_sample.astype(np.float32)
        return x

    def generate(self, ct: np.ndarray, noise: np.ndarray, seed: int) -> np.ndarray:
        """Encoder once, then the sampler loop: model-space CT in, model-space MR out."""
        return self.denoise(self.encode(ct), noise, np.random.default_rng(seed))
