"""`Synthesizer`: a CT volume in, a synthetic MR volume out, in exactly the CT's geometry.

The model-space work (encoder once per slice, denoiser once per sampler step) is the package's
`Engine`; this module is everything around it that a clinic's scan needs:

1. check the input contract (modality and phase against the manifest) before anything runs;
2. resample onto the model grid (`edge_runtime.resample`: closest-LPS axes, the package's
   in-plane spacing, the scan's own slices);
3. cut each slice's 2.5D stack, the neighbours taken at the package's slice thickness (linear
   interpolation between the scan's slices, the end slices repeated, as in training) and
   normalise with the package's HU window;
4. pad slices smaller than the grid with air, tile slices larger than it (`edge_runtime.tiling`);
5. stream (slice, tile) items through the engine `batch` at a time: only one batch of model
   tensors exists at once; results are blended into one model-grid volume;
6. de-normalise to the output's MR range and resample back onto the input grid.

Noise is drawn per slice from `default_rng((seed, slice))` on the whole padded slice and tiles
are cut from it, so a result does not depend on the batch size or on how the slice is tiled
(deterministic samplers); stochastic samplers draw their step noise from a generator seeded by
(seed, first slice of the batch).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.errors import InputError
from edge_runtime.io.image import MedicalImage
from edge_runtime.package.engine import Engine
from edge_runtime.package.loader import EdgePackage, load_package
from edge_runtime.package.manifest import Manifest, OutputSpec, SamplerSpec
from edge_runtime.providers import RuntimeOptions
from edge_runtime.resample import ModelGrid, ResampleConfig
from edge_runtime.tiling import Tile, TilingConfig, plan_tiles, weight_sum

log = logging.getLogger("hidiff.synthesize")

# `read_image`'s phase hints (from the series description) -> the manifest's phase names.
PHASE_NAMES: dict[str, str] = {
    "portal": "portal_venous",
    "arterial": "arterial",
    "plain": "plain",
    "delayed": "delayed",
}


@dataclass(frozen=True)
class SynthesisConfig:
    """Everything about a synthesis that is not the package or the device."""

    # Slices (or tiles) per engine call: more amortises overheads, costs batch x features.
    batch: int = 8
    tiling: TilingConfig = field(default_factory=TilingConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    # A CT without a recorded modality (NIfTI/MHA) is accepted as CT when its values reach at
    # least this low: only HU data has air at -1000; MR magnitudes are >= 0.
    hu_air_below: float = -500.0


@dataclass(frozen=True)
class SynthesisStats:
    """What one synthesis cost, for logs, `hidiff demo` and benchmarks."""

    slices: int
    tiles_per_slice: int
    model_grid: tuple[int, int, int]  # (z, y, x) of the resampled volume
    seconds: float
    seconds_model: float  # encoder + sampler loop only
    provider: str
    precision: str
    steps: int

    @property
    def seconds_per_slice(self) -> float:
        return self.seconds / max(1, self.slices)


@dataclass(frozen=True)
class SynthesisResult:
    image: MedicalImage
    stats: SynthesisStats


def infer_modality(image: MedicalImage, hu_air_below: float) -> str | None:
    """The image's modality: the header's, else 'CT' for HU-looking data, else None."""
    if image.metadata.modality:
        return image.metadata.modality
    if image.voxels.size and float(image.voxels.min()) <= hu_air_below:
        return "CT"
    return None


def check_input(
    manifest: Manifest, ct: MedicalImage, hu_air_below: float = SynthesisConfig.hu_air_below
) -> None:
    """Refuse a scan `manifest`'s model was not trained for: modality (from the header, or HU
    values when the file format does not record it) and CT phase (when the header hints it)."""
    modality = infer_modality(ct, hu_air_below)
    if modality is None:
        raise InputError(
            f"{ct.metadata.source_path or 'input'}: modality not recorded and the values "
            f"(min {float(ct.voxels.min()):.0f}) are not CT Hounsfield units; package "
            f"{manifest.name!r} expects CT"
        )
    hint = ct.metadata.phase_hint
    phase = PHASE_NAMES.get(hint, hint) if hint else None
    manifest.check_input(modality, phase)


def neighbour_stack(
    volume: np.ndarray, z: int, offsets: np.ndarray, window: tuple[slice, slice]
) -> np.ndarray:
    """Slices at continuous indices z + offsets (linear between slices, clamped to the ends),
    cropped to `window`: (len(offsets), h, w)."""
    depth = volume.shape[0]
    out = []
    for off in offsets:
        pos = float(np.clip(z + off, 0, depth - 1))
        lo = int(np.floor(pos))
        hi = min(lo + 1, depth - 1)
        frac = np.float32(pos - lo)
        a = volume[(lo, *window)]
        out.append(a if frac == 0 else (1 - frac) * a + frac * volume[(hi, *window)])
    return np.stack(out).astype(np.float32, copy=False)


class Synthesizer:
    """One package on one device; `synthesize(ct)` for each scan.

    synth = Synthesizer("compress/packages/aphidiff-tiny-t2-fp32", provider="cpu")
    mr = synth.synthesize(read_image("ct.nii.gz"), sequence="t2", seed=0)
    """

    def __init__(
        self,
        package: EdgePackage | str | Path,
        provider: str = "auto",
        precision: str | None = None,
        batch: int | None = None,
        config: SynthesisConfig | None = None,
        options: RuntimeOptions | None = None,
    ) -> None:
        self.package = package if isinstance(package, EdgePackage) else load_package(package)
        cfg = config or SynthesisConfig()
        if batch is not None:
            cfg = dataclasses.replace(cfg, batch=batch)
        if cfg.batch < 1:
            raise InputError(f"batch must be >= 1, got {cfg.batch}")
        self.config = cfg
        m = self.manifest
        if len(m.task.inputs) != 1:
            raise InputError(
                f"package {m.name!r} needs {len(m.task.inputs)} CT phases; the Synthesizer "
                "takes one CT volume"
            )
        self.engine = Engine(self.package, provider, precision, options)
        if self.engine.batch is not None and self.engine.batch != cfg.batch:
            # Graphs exported with a fixed batch take exactly that many slices per call.
            log.info("package graphs take batches of %d; using that", self.engine.batch)
            self.config = dataclasses.replace(cfg, batch=self.engine.batch)
        # The current slice's x_T, reused by its tiles (one slice of noise held at a time).
        self._noise_key: tuple | None = None
        self._noise = np.zeros(0, dtype=np.float32)

    @property
    def manifest(self) -> Manifest:
        return self.package.manifest

    def output_for(self, sequence: str | None) -> tuple[int, OutputSpec]:
        """The output channel producing `sequence` (the package's first output when None)."""
        outputs = self.manifest.task.outputs
        if sequence is None:
            return 0, outputs[0]
        for i, spec in enumerate(outputs):
            if spec.sequence == sequence:
                return i, spec
        have = ", ".join(o.sequence for o in outputs)
        raise InputError(f"package {self.manifest.name!r} synthesizes {have}, not {sequence!r}")

    def sampler_spec(self, steps: int | None) -> SamplerSpec:
        """The manifest's sampler, or the same kind and config with `steps` evenly spaced."""
        spec = self.manifest.sampler
        if steps is None or steps == spec.steps:
            return spec
        if steps < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        return SamplerSpec(spec.kind, steps, None, spec.config)

    def check_input(self, ct: MedicalImage) -> None:
        """Refuse a scan the package was not trained for (before any work is done)."""
        check_input(self.manifest, ct, self.config.hu_air_below)

    def synthesize(
        self,
        ct: MedicalImage,
        sequence: str | None = None,
        steps: int | None = None,
        seed: int = 0,
        on_slice: Callable[[int, int], None] | None = None,
    ) -> MedicalImage:
        """The synthetic MR of `ct` in `ct`'s geometry (see `run` for the costs too)."""
        return self.run(ct, sequence, steps, seed, on_slice).image

    def run(
        self,
        ct: MedicalImage,
        sequence: str | None = None,
        steps: int | None = None,
        seed: int = 0,
        on_slice: Callable[[int, int], None] | None = None,
    ) -> SynthesisResult:
        """Synthesize and measure; `on_slice(done, total)` is called as slices complete."""
        start = time.perf_counter()
        if seed < 0:
            raise InputError(f"seed must be >= 0, got {seed}")
        self.check_input(ct)
        index, out_spec = self.output_for(sequence)
        # One pass per sequence (graphs with a `sequence` input) or all outputs at once.
        channel = 0 if self.engine.uses_sequence else index
        sampler_spec = self.sampler_spec(steps)
        m = self.manifest
        grid = ModelGrid.for_image(ct, m.grid.spacing_mm)
        hu = grid.to_model(ct, self.config.resample)
        nz, ny, nx = hu.shape
        th, tw = m.grid.shape
        canvas = (max(ny, th), max(nx, tw))
        pad = ((canvas[0] - ny) // 2, (canvas[1] - nx) // 2)
        tiles = plan_tiles(canvas, (th, tw), self.config.tiling)
        total_w = weight_sum(canvas, tiles)
        thickness = m.grid.slice_thickness_mm or grid.slice_spacing_mm
        c = m.task.context_slices
        offsets = np.arange(-c, c + 1) * thickness / grid.slice_spacing_mm

        padded = np.full((nz, *canvas), self.config.resample.outside_hu, dtype=np.float32)
        padded[:, pad[0] : pad[0] + ny, pad[1] : pad[1] + nx] = hu
        del hu
        result = np.zeros((nz, *canvas), dtype=np.float32)
        model_seconds = 0.0
        done_slices = 0
        for items in self._batches(nz, tiles):
            cts, noises = [], []
            for z, tile in items:
                window = (slice(tile.y, tile.y + th), slice(tile.x, tile.x + tw))
                cts.append(neighbour_stack(padded, z, offsets, window))
                noises.append(self._slice_noise(seed, z, canvas)[(slice(None), *window)])
            # A fixed-batch graph gets its last, short batch padded with copies (discarded).
            short = self.config.batch - len(items) if self.engine.batch else 0
            ct_batch = m.normalisation.ct_to_model(np.stack(cts + cts[-1:] * short))
            noise = np.stack(noises + noises[-1:] * short)
            t0 = time.perf_counter()
            cond = self.engine.encode(ct_batch, out_spec.name)
            gen = np.random.default_rng((seed, items[0][0], 1))
            x = self.engine.denoise(cond, noise, gen, sampler_spec.build())
            model_seconds += time.perf_counter() - t0
            del cond, ct_batch, noise
            for (z, tile), out in zip(items, x[: len(items), channel], strict=True):
                win = (slice(tile.y, tile.y + th), slice(tile.x, tile.x + tw))
                result[(z, *win)] += (out * tile.weights).astype(np.float32)
            finished = items[-1][0] + (1 if items[-1][1] is tiles[-1] else 0)
            if finished > done_slices:
                done_slices = finished
                if on_slice:
                    on_slice(done_slices, nz)
        del padded
        result /= total_w.astype(np.float32)
        model_volume = result[:, pad[0] : pad[0] + ny, pad[1] : pad[1] + nx]
        mr = m.normalisation.model_to_mr(model_volume, out_spec.mr_range)
        del result, model_volume
        voxels = grid.to_image(mr, ct, self.config.resample)
        image = ct.with_voxels(
            voxels,
            modality="MR",
            series_description=f"SYNTHETIC {out_spec.sequence.upper()} ({m.name})",
            phase_hint="",
            contrast_agent="",
        )
        stats = SynthesisStats(
            slices=nz,
            tiles_per_slice=len(tiles),
            model_grid=(nz, ny, nx),
            seconds=time.perf_counter() - start,
            seconds_model=model_seconds,
            provider=self.engine.provider,
            precision=self.engine.precision,
            steps=sampler_spec.steps,
        )
        return SynthesisResult(image, stats)

    def _batches(self, nz: int, tiles: list[Tile]) -> Iterator[list[tuple[int, Tile]]]:
        """(slice, tile) work items in slice order, `batch` at a time."""
        batch: list[tuple[int, Tile]] = []
        for z in range(nz):
            for tile in tiles:
                batch.append((z, tile))
                if len(batch) == self.config.batch:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _slice_noise(self, seed: int, z: int, canvas: tuple[int, int]) -> np.ndarray:
        """x_T of slice z over the whole padded slice: (C_out, H, W), independent of batching."""
        key = (seed, z, canvas)
        if self._noise_key != key:
            rng = np.random.default_rng((seed, z))
            channels = self.engine.sample_channels
            self._noise = rng.standard_normal((channels, *canvas), dtype=np.float32)
            self._noise_key = key
        return self._noise
