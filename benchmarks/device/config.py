"""The numbers that define a device benchmark, as dataclass defaults with their reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

RECORD_KIND = "hidiff-bench-device/1"


@dataclass(frozen=True)
class DeviceBenchConfig:
    """What `hidiff bench device` measures and how often."""

    # STYLE.md: medians over >= 20 timed calls; fewer only in tests, and the record says so.
    repeats: int = 20
    # Calls after the first that are run but not timed (caches, allocator, thread pools).
    warmup: int = 3
    # Batches of slices per call; 1 is the latency a viewer waits for, 4 the throughput case.
    batches: tuple[int, ...] = (1, 4)
    # Input slice sizes (G x G at the package's field of view, resampled by the runtime to the
    # package grid and back, in the timed call); None: the engine alone on each package's grid.
    grids: tuple[int, ...] | None = None
    providers: tuple[str, ...] = ("auto",)
    # None: every precision the package ships.
    precisions: tuple[str, ...] | None = None
    # None: every core this process may use (the runtime's default).
    threads: int | None = None
    # A liver MR series covers the liver in about 48 axial slices at 5-6 mm: the per-volume
    # figure a clinic plans with.
    volume_slices: int = 48
    seed: int = 0
    # Percentiles reported besides the median.
    percentiles: tuple[float, ...] = (50.0, 95.0)
    # Child process limit per configuration: a hung provider must not hang the whole run.
    child_timeout_s: float = 3600.0
    # The optimised-graph cache is off so that every load time includes graph optimisation
    # (the cold start a clinic sees once per install; with the cache it is shorter).
    use_cache: bool = False
    # A configuration whose call (predicted from the first call's encoder + steps x its first
    # denoiser step) would take longer is timed by its parts: `repeats` encoder calls and
    # `repeats` single denoiser steps, call = encoder + steps x step. 10 s keeps a 4-step edge
    # package on whole-call timing and measures a 50-step 512^2 package (~50 s a call on 2
    # cores) in minutes instead of 20 x 50 s per configuration.
    extrapolate_above_s: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class TorchReferenceConfig:
    """The teacher in PyTorch eager: how much of its sampling loop is timed."""

    # None: whole sampling loops are timed. k: only k denoiser calls are timed after one
    # untimed warm-up call and the per-step median times the sampler's steps gives the batch
    # latency (the full preset at 512^2 costs ~30 s per step here; the record says so).
    timed_steps: int | None = None
    # Whole sampling loops timed after one warm-up loop: few, since a teacher loop takes seconds.
    repeats: int = 3
    threads: int | None = None
