"""The on-device self-check behind `hidiff verify`.

A clinic runs it after installing, after a driver update, or when a new package arrives: the
package's reference inputs go through its encoder and denoiser on this machine's provider, and
the outputs must match the shipped reference outputs (PSNR >= the manifest's threshold, 40 dB by
default) and reproduce the shipped metrics against the reference targets within tolerance. A
different provider or precision may round differently; 40 dB tolerates that and nothing more.
A precision the package ships its own outputs for (INT8 beside fp32) is compared with those:
quantization moves the output further than rounding does, and the stages' gates measured by how
much.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_runtime import metrics
from edge_runtime.atomic import atomic_write_json
from edge_runtime.errors import HidiffError, PackageError
from edge_runtime.package.engine import Engine
from edge_runtime.package.loader import EdgePackage
from edge_runtime.providers import RuntimeOptions, hidiff_cache_root

log = logging.getLogger("hidiff.verify")


@dataclass(frozen=True)
class MetricCheck:
    name: str
    value: float
    shipped: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(abs(self.value - self.shipped) <= self.tolerance)


@dataclass(frozen=True)
class CaseResult:
    name: str
    psnr_db: float
    seconds: float
    psnr_min_db: float

    @property
    def passed(self) -> bool:
        return self.psnr_db >= self.psnr_min_db


@dataclass(frozen=True)
class VerifyReport:
    package: str
    provider: str
    precision: str
    cases: tuple[CaseResult, ...] = field(default_factory=tuple)
    # The precision whose shipped outputs (and metrics) the run was compared with.
    compared_with: str = ""
    # The manifest's metrics recomputed over all cases (mean), against the shipped values.
    checks: tuple[MetricCheck, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return (
            bool(self.cases)
            and all(c.passed for c in self.cases)
            and all(c.passed for c in self.checks)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every number, each check's verdict and the overall one."""
        return {
            "package": self.package,
            "provider": self.provider,
            "precision": self.precision,
            "compared_with": self.compared_with,
            "passed": self.passed,
            "cases": [dataclasses.asdict(c) | {"passed": c.passed} for c in self.cases],
            "checks": [dataclasses.asdict(c) | {"passed": c.passed} for c in self.checks],
        }


def image_metric(name: str, pred: np.ndarray, truth: np.ndarray, data_range: float) -> float:
    """A metric of `pred` against `truth`, (N, C, H, W) model space; SSIM averaged per slice."""
    if name == "psnr_db":
        return metrics.psnr(pred, truth, data_range)
    if name == "mae":
        return metrics.mae(pred, truth)
    if name == "ssim":
        values = [
            metrics.ssim(pred[i, c], truth[i, c], data_range)
            for i in range(pred.shape[0])
            for c in range(pred.shape[1])
        ]
        return float(np.mean(values))
    raise PackageError(f"unknown reference metric {name!r}")


def verify_package(
    package: EdgePackage,
    provider: str = "auto",
    precision: str | None = None,
    options: RuntimeOptions | None = None,
    engine: Engine | None = None,
) -> VerifyReport:
    """Run every reference case on `provider` and compare with the shipped outputs; the
    manifest's metrics are recomputed against the targets, averaged over the cases."""
    ref = package.manifest.reference
    engine = engine or Engine(package, provider, precision, options)
    shipped = ref.metrics_for(engine.precision)
    results = []
    values: dict[str, list[float]] = {name: [] for name in shipped.metrics}
    for case in ref.cases:
        ct = package.load_array(case.input).astype(np.float32)
        noise = package.load_array(case.noise).astype(np.float32)
        expected = package.load_array(case.output_for(engine.precision)).astype(np.float32)
        if noise.shape != expected.shape:
            raise PackageError(
                f"reference case {case.name}: noise {noise.shape} and output {expected.shape} "
                "differ in shape"
            )
        start = time.perf_counter()
        output = engine.generate(ct, noise, case.seed, case.output_name)
        seconds = time.perf_counter() - start
        results.append(
            CaseResult(
                name=case.name,
                psnr_db=metrics.psnr(output, expected, ref.data_range),
                seconds=seconds,
                psnr_min_db=ref.psnr_min_db,
            )
        )
        if shipped.metrics:
            target = package.load_array(case.target).astype(np.float32)
            for name in shipped.metrics:
                values[name].append(image_metric(name, output, target, ref.data_range))
    checks = tuple(
        MetricCheck(name, float(np.mean(values[name])), value, shipped.metric_tolerance[name])
        for name, value in shipped.metrics.items()
    )
    return VerifyReport(
        package=package.name,
        provider=engine.provider,
        precision=engine.precision,
        cases=tuple(results),
        checks=checks,
        compared_with=ref.compared_with(engine.precision),
    )


# -- records: has this package been verified on this device? ---------------------------------------


def record_path(package: EdgePackage, root: Path | None = None) -> Path:
    """Where the last self-check of this exact package (by manifest hash) on this device is kept:
    in the user's hidiff cache, never in the package."""
    return (root or hidiff_cache_root()) / "verified" / f"{package.manifest_sha256}.json"


def save_record(
    report: VerifyReport, package: EdgePackage, root: Path | None = None
) -> Path | None:
    """Keep the result for `hidiff package inspect`; a cache that cannot be written only warns."""
    record = {
        **report.to_dict(),
        "manifest_sha256": package.manifest_sha256,
        "onnxruntime": ort.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = record_path(package, root)
    try:
        return atomic_write_json(path, record)
    except (OSError, HidiffError) as exc:
        log.warning("could not keep the verification record in %s: %s", path.parent, exc)
        return None


def last_record(package: EdgePackage, root: Path | None = None) -> dict[str, Any] | None:
    """The last self-check record of this package on this device, if any (unreadable: None)."""
    path = record_path(package, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (
        data
        if isinstance(data, dict) and data.get("manifest_sha256") == package.manifest_sha256
        else None
    )
