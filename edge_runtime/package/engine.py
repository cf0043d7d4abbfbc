"""`Engine`: a verified package's two graphs on one device, and the denoising loop.

This is the model-space core that `hidiff verify` runs today and the `Synthesizer` will wrap
(resampling, normalisation, slicing and tiling around it): encoder once per batch of slices,
then the sampler's steps with the denoiser. Tensors are (N, C, H, W) in model space.

Format 1 tensor contract (the names `models/aphidiff/graphs.py` exports; checked against the
graphs when the engine is made, since an ONNX file can only be inspected by loading it):
- encoder: reads `ct` (N, C_in, H, W), C_in = inputs x (2 context + 1), and optionally
  `sequence` (N,) int64; every output is a condition, fed to the denoiser by name;
- denoiser: reads `x_t` (N, C, H, W), `t` (N,) (float or integer timesteps; a scalar is
  allowed), `sequence` if the encoder or the denoiser is sequence-conditioned, and every
  encoder output; its first output is the prediction, shaped like `x_t`.
With a `sequence` input one network makes one MR sequence per pass (C = 1), chosen by the
output's `sequence_index`; without it, C = the number of outputs, made together.
Graphs exported with a fixed batch size take exactly that batch (`Engine.batch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from edge_runtime.errors import InputError, PackageError
from edge_runtime.package.loader import EdgePackage
from edge_runtime.package.manifest import (
    DENOISER_SAMPLE,
    DENOISER_TIMESTEP,
    ENCODER_INPUT,
    SEQUENCE_INPUT,
    OutputSpec,
)
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

    @property
    def sample_channels(self) -> int:
        """Channels of x_t: 1 per pass with a `sequence` input, else every output at once."""
        return 1 if self.uses_sequence else self.package.manifest.task.out_channels

    def _check_contract(self) -> None:
        m = self.package.manifest
        h, w = m.grid.shape
        graphs = m.graphs[self.precision]
        enc_inputs = {i.name: i for i in self.encoder.session.get_inputs()}
        den_inputs = {i.name: i for i in self.denoiser.session.get_inputs()}

        if ENCODER_INPUT not in enc_inputs or set(enc_inputs) - {ENCODER_INPUT, SEQUENCE_INPUT}:
            raise PackageError(
                f"encoder graph {graphs['encoder']} must read {ENCODER_INPUT!r} (and optionally "
                f"{SEQUENCE_INPUT!r}), it reads {sorted(enc_inputs)}"
            )
        self.encoder_uses_sequence = SEQUENCE_INPUT in enc_inputs
        self.uses_sequence = self.encoder_uses_sequence or SEQUENCE_INPUT in den_inputs
        expected = {DENOISER_SAMPLE, DENOISER_TIMESTEP, *self.cond_names}
        if self.uses_sequence:
            expected.add(SEQUENCE_INPUT)
        if set(den_inputs) != expected:
            raise PackageError(
                f"denoiser graph {graphs['denoiser']} reads {sorted(den_inputs)}, but format 1 "
                f"needs {sorted(expected)} (x_t, t, the encoder's outputs"
                + (", sequence)" if self.uses_sequence else ")")
            )
        if self.uses_sequence:
            missing = [o.name for o in m.task.outputs if o.sequence_index is None]
            if missing:
                raise PackageError(
                    f"the graphs of {m.name!r} read {SEQUENCE_INPUT!r}, but outputs {missing} "
                    "have no sequence_index in the manifest"
                )
        ct = enc_inputs[ENCODER_INPUT]
        x_t = den_inputs[DENOISER_SAMPLE]
        self._check_shape(graphs["encoder"], ct, (m.task.in_channels, h, w))
        self._check_shape(graphs["denoiser"], x_t, (self.sample_channels, h, w))
        batches = {_fixed(ct.shape[0]), _fixed(x_t.shape[0])} - {None}
        if len(batches) > 1:
            raise PackageError(
                f"encoder and denoiser graphs are fixed to different batches {batches}"
            )
        self.batch: int | None = batches.pop() if batches else None
        self._timestep_rank = len(den_inputs[DENOISER_TIMESTEP].shape)
        if self._timestep_rank > 1:
            raise PackageError(f"denoiser graph {graphs['denoiser']}: t must be (N,) or scalar")

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
        if self.batch is not None and ct.shape[0] != self.batch:
            raise InputError(
                f"package {m.name!r} has graphs fixed to batches of {self.batch}, got "
                f"{ct.shape[0]} slices: pad the batch"
            )
        if not np.isfinite(ct).all():
            raise InputError("CT batch contains NaN or infinite values")

    def _output(self, output: str | None) -> OutputSpec | None:
        spec = self.package.manifest.task.output(output)
        return spec if self.uses_sequence else None

    def encode(
        self, ct: np.ndarray, output: str | None = None
    ) -> dict[str, np.ndarray | ort.OrtValue]:
        """Conditions for a CT batch (and, with a `sequence` input, for `output`), left on the
        device when IO binding is on; pass them to `predict` / `denoise` as they are."""
        self.check_model_input(ct)
        feeds: dict[str, np.ndarray] = {ENCODER_INPUT: ct}
        extra: dict[str, np.ndarray] = {}
        spec = self._output(output)
        if spec is not None:
            seq = np.full((ct.shape[0],), spec.sequence_index, dtype=np.int64)
            extra[SEQUENCE_INPUT] = seq
            if self.encoder_uses_sequence:
                feeds[SEQUENCE_INPUT] = seq
        cond = self.encoder_runner.run(
            feeds, self.cond_names, keep_on_device=self.encoder_runner.io_binding
        )
        return {**cond, **extra}

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

    def generate(
        self, ct: np.ndarray, noise: np.ndarray, seed: int, output: str | None = None
    ) -> np.ndarray:
        """Encoder once, then the sampler loop: model-space CT in, model-space MR out."""
        return self.denoise(self.encode(ct, output), noise, np.random.default_rng(seed))
