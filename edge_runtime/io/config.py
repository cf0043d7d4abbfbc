"""Tolerances and limits of the readers, as one typed config with a reason for each default."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ReadConfig:
    """How strict the readers are. Defaults suit diagnostic CT/MR exported from a PACS."""

    # A volume is what every later step needs; `hidiff info --min-slices 1` inspects one image.
    min_slices: int = 2
    # Relative slice-spacing deviation treated as header rounding (positions are written with
    # ~5 significant digits), so no resampling and no warning.
    spacing_exact_rel: float = 2e-3
    # Up to this relative deviation the slices are resampled onto a uniform grid, with a warning;
    # larger irregularity is an error (a reconstruction with variable spacing is not safe to fix).
    spacing_resample_rel: float = 0.05
    # A gap within this fraction of k * median spacing (k >= 2) is reported as k-1 missing slices.
    missing_slice_rel: float = 0.25
    # Two slices closer than this (mm) along the normal share a position.
    duplicate_position_mm: float = 1e-3
    # Slice positions may drift off the normal by this angle (deg) before we call it gantry tilt.
    tilt_tolerance_deg: float = 0.05
    # Orientation cosines of two slices may differ by this much and still be "the same".
    orientation_tolerance: float = 1e-4
    # |row|, |col| must be 1 and row . col 0 within this (direction cosines are written as text).
    orthonormal_tolerance: float = 1e-3
    # Refuse an image whose float32 voxels would take more than this fraction of free memory,
    # before allocating anything (a corrupt or hostile header must not take the machine down).
    memory_fraction: float = 0.5
    # An absolute cap in bytes (None: only the free-memory rule applies).
    max_bytes: int | None = None
    # Treat every image file of a folder as one series, whatever its SeriesInstanceUID: some
    # anonymised exports (CHAOS MR) give each file its own UID. The geometry checks still
    # catch a real mix (duplicate positions, orientations, sizes).
    merge_series: bool = False


def available_memory_bytes() -> int:
    """Free memory as the kernel reports it (MemAvailable), else total physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def memory_limit_bytes(config: ReadConfig) -> int:
    limit = int(available_memory_bytes() * config.memory_fraction)
    if config.max_bytes is not None:
        limit = min(limit, config.max_bytes)
    return limit
