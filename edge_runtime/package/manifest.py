"""`manifest.json`: what an edge model package is, as typed data.

The manifest plays the role of diffusers' `config.json` for a whole deployable model: the task
(which CT phases in, which MR sequences out), the grid and spacing the model was trained on, the
intensity normalisation, the sampler and its timesteps, the precisions built, every file with
its sha256, where the model came from, the metrics it was validated with, and reference
inputs/outputs so any device can check itself (`hidiff verify`).

Parsing is strict: an unknown format version, a missing or mistyped field, or an unknown key is
a `PackageError` naming the field, because a half-understood manifest would let the runtime
produce a plausible-looking wrong image. The JSON Schema next to this file says the same in
JSON Schema (for other tools; validated here too when `jsonschema` happens to be installed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from edge_runtime.errors import InputError, PackageError
from edge_runtime.normalise import from_model_space, to_model_space
from edge_runtime.samplers import SAMPLERS, Sampler, make_sampler

MANIFEST_NAME = "manifest.json"
SCHEMA_NAME = "manifest.schema.json"
FORMAT_VERSION = 1
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
GRAPH_ROLES: tuple[str, ...] = ("encoder", "denoiser")
SEQUENCES: tuple[str, ...] = ("t2", "t1", "t1c")
METRICS: tuple[str, ...] = ("psnr_db", "mae", "ssim")

# Tensor names of format 1 (docs/runtime.md; the names models/aphidiff/graphs.py exports): the
# encoder reads `ct` (and `sequence` when one network makes several MR sequences), its outputs
# are fed to the denoiser by name together with `x_t`, `t` (and `sequence`); the denoiser's first
# output is the network prediction (epsilon, v or x_0 as the sampler config says).
ENCODER_INPUT = "ct"
DENOISER_SAMPLE = "x_t"
DENOISER_TIMESTEP = "t"
SEQUENCE_INPUT = "sequence"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Reader:
    """Typed access to one JSON object, with errors that name the field's full path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise PackageError(f"manifest field {where or 'top level'}: expected an object")
        self.data, self.where, self.used = data, where, set()

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise PackageError(f"manifest field {self._path(key)} is missing")
            return default
        value = self.data[key]
        bad_bool = isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)
        )
        if not isinstance(value, kind) or bad_bool:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise PackageError(
                f"manifest field {self._path(key)}: expected {names}, got {type(value).__name__}"
            )
        return value

    def number(self, key: str, default: Any = ...) -> float:
        return float(self.get(key, (int, float), default))

    def pair(self, key: str, kind: type = float) -> tuple[Any, Any]:
        value = self.get(key, list)
        ok = len(value) == 2 and all(
            isinstance(v, (int, float) if kind is float else kind) and not isinstance(v, bool)
            for v in value
        )
        if not ok:
            raise PackageError(f"manifest field {self._path(key)}: expected 2 numbers, got {value}")
        return tuple(kind(v) for v in value)

    def child(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), self._path(key))

    def done(self) -> None:
        unknown = set(self.data) - self.used
        if unknown:
            raise PackageError(
                f"manifest {self.where or 'top level'} has unknown field(s) {sorted(unknown)}: "
                "written for a newer format?"
            )


@dataclass(frozen=True)
class FileEntry:
    """One file of the package, relative to its folder, with the hash it must have."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class InputSpec:
    """An input image the model expects, e.g. the portal-venous CT phase."""

    name: str
    modality: str = "CT"
    phase: str = "portal_venous"


@dataclass(frozen=True)
class OutputSpec:
    """An MR sequence the model produces."""

    name: str
    sequence: str = "t2"
    modality: str = "MR"
    # The MR intensity that the top of the model range stands for, and the bottom: the
    # training data's scale (for "percentile" scaling, the median scale of the training MR).
    mr_range: tuple[float, float] = (0.0, 1.0)
    # The value fed as the graphs' `sequence` input to make this output (graphs that make
    # several sequences with one network); None when the graphs have no such input.
    sequence_index: int | None = None


@dataclass(frozen=True)
class Task:
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    # 2.5D: neighbouring slices on each side stacked as channels (0 = single slice).
    context_slices: int = 1

    @property
    def in_channels(self) -> int:
        return len(self.inputs) * (2 * self.context_slices + 1)

    @property
    def out_channels(self) -> int:
        """Channels of x_t when all outputs are made in one pass (graphs without `sequence`)."""
        return len(self.outputs)

    def output(self, name: str | None = None) -> OutputSpec:
        """The output called `name` (the first when None)."""
        if name is None:
            return self.outputs[0]
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise PackageError(
            f"no output {name!r} in this package; it makes {[o.name for o in self.outputs]}"
        )


@dataclass(frozen=True)
class Grid:
    """The in-plane grid the model was trained on: rows x cols pixels of spacing_mm."""

    shape: tuple[int, int]
    spacing_mm: tuple[float, float]
    slice_thickness_mm: float | None = None


@dataclass(frozen=True)
class Normalisation:
    """Intensities <-> model space: the CT's HU window maps linearly onto model_range (clipped
    outside, as in training); model_range maps back onto each output's mr_range."""

    ct_hu_window: tuple[float, float]
    model_range: tuple[float, float] = (-1.0, 1.0)
    # How training MR was scaled: one "fixed" range, or each volume divided by a "percentile"
    # of its body signal (then mr_range holds the median scale over the training cases).
    mr_method: str = "fixed"
    mr_percentile: float | None = None

    def ct_to_model(self, hu: np.ndarray) -> np.ndarray:
        """HU -> model space, float32, clipped to model_range."""
        return to_model_space(hu, self.ct_hu_window, self.model_range)

    def model_to_mr(self, x: np.ndarray, mr_range: tuple[float, float]) -> np.ndarray:
        """Model space -> MR intensities of an output whose range is `mr_range`, float32."""
        return from_model_space(x, mr_range, self.model_range)


@dataclass(frozen=True)
class SamplerSpec:
    kind: str
    steps: int
    timesteps: tuple[int, ...] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Sampler:
        """The sampler with its timesteps set: the manifest's list, or `steps` spaced ones."""
        sampler = make_sampler(self.kind, dict(self.config))
        if self.timesteps is not None:
            sampler.set_timesteps(timesteps=list(self.timesteps))
        else:
            sampler.set_timesteps(self.steps)
        return sampler


@dataclass(frozen=True)
class ReferenceCase:
    """A self-check case: model-space input and initial noise in, expected output out."""

    name: str
    input: str
    noise: str
    output: str
    seed: int
    target: str | None = None
    # Which task output the case makes (graphs with a `sequence` input); None: the first.
    output_name: str | None = None
    # The same case through another precision's graphs (precision -> path): an INT8 encoder
    # may break near-tied codes the other way, so INT8 reproduces its own output, not fp32's.
    outputs: Mapping[str, str] = field(default_factory=dict)

    def output_for(self, precision: str) -> str:
        """The shipped output a run with `precision`'s graphs is compared with: its own when
        the package has one, else the reference precision's (`output`)."""
        return self.outputs.get(precision, self.output)


@dataclass(frozen=True)
class PrecisionMetrics:
    """The shipped metrics of another precision's own outputs, and their tolerance."""

    metrics: Mapping[str, float]
    metric_tolerance: Mapping[str, float]


@dataclass(frozen=True)
class Reference:
    # The precision whose graphs produced `output`; a precision with its own outputs (see
    # `ReferenceCase.outputs`) is compared with those, any other with `output`.
    precision: str
    cases: tuple[ReferenceCase, ...]
    # `hidiff verify` passes when every case's output is this close to the shipped one.
    psnr_min_db: float = 40.0
    # Peak-to-peak of the model space, for PSNR (2 for [-1, 1]).
    data_range: float = 2.0
    # Metrics of the shipped output against `target`, and how far a device may stray from them.
    metrics: Mapping[str, float] = field(default_factory=dict)
    metric_tolerance: Mapping[str, float] = field(default_factory=dict)
    # The same for the precisions with their own outputs (JSON `by_precision`).
    by_precision: Mapping[str, PrecisionMetrics] = field(default_factory=dict)

    def compared_with(self, precision: str) -> str:
        """The precision whose shipped outputs a run with `precision`'s graphs must match."""
        return precision if precision in self.cases[0].outputs else self.precision

    def metrics_for(self, precision: str) -> PrecisionMetrics:
        """The shipped metrics (and tolerance) a run with `precision`'s graphs must reproduce."""
        own = self.by_precision.get(precision)
        return own or PrecisionMetrics(self.metrics, self.metric_tolerance)


@dataclass(frozen=True)
class Manifest:
    format_version: int
    name: str
    task: Task
    grid: Grid
    normalisation: Normalisation
    sampler: SamplerSpec
    graphs: Mapping[str, Mapping[str, str]]
    files: tuple[FileEntry, ...]
    reference: Reference
    provenance: Mapping[str, Any] = field(default_factory=dict)
    validation: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    # Optional Core ML builds: role -> a .mlpackage folder whose files are all listed (hashed).
    # The runtime does not execute them (its `coreml` profile runs the ONNX graphs through
    # onnxruntime's CoreML provider); a macOS app with coremltools can.
    coreml: Mapping[str, str] = field(default_factory=dict)

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS if p in self.graphs)

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise PackageError(f"{path} is used by the manifest but not listed under files")

    def referenced_paths(self) -> list[str]:
        """Every file the manifest points at (graphs and reference arrays)."""
        paths = [p for roles in self.graphs.values() for p in roles.values()]
        for case in self.reference.cases:
            paths += [case.input, case.noise, case.output, *case.outputs.values()]
            if case.target:
                paths.append(case.target)
        return paths

    def files_under(self, folder: str) -> list[FileEntry]:
        """Listed files inside `folder` (for folder-shaped artefacts such as .mlpackage)."""
        prefix = folder.rstrip("/") + "/"
        return [e for e in self.files if e.path.startswith(prefix)]

    def check_input(self, modality: str | None, phase: str | None = None) -> None:
        """Refuse an input image whose modality (or CT phase, when known) the model was not
        trained on; the message names the package, what it expects and what it got."""
        expected = {spec.modality.upper() for spec in self.task.inputs}
        if modality is None or modality.upper() not in expected:
            raise InputError(
                f"package {self.name!r} expects {'/'.join(sorted(expected))} input, "
                f"got modality {modality!r}"
            )
        phases = {spec.phase for spec in self.task.inputs}
        if phase is not None and phase not in phases:
            raise InputError(
                f"package {self.name!r} was trained on {'/'.join(sorted(phases))} CT, "
                f"got phase {phase!r}"
            )


def _check_format_version(data: Mapping[str, Any]) -> int:
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise PackageError(
            f"manifest format_version {version!r} is unknown: this runtime reads format "
            f"{FORMAT_VERSION}"
        )
    if version > FORMAT_VERSION:
        raise PackageError(
            f"manifest format_version {version} is newer than this runtime supports "
            f"({FORMAT_VERSION}): upgrade hidiff-edge"
        )
    if version < 1:
        raise PackageError(f"manifest format_version {version} is unknown")
    return version


def check_rel_path(value: Any, where: str) -> str:
    """A '/'-separated path that stays inside the package folder (checked again, against
    symlinks, when the package is loaded)."""
    if not isinstance(value, str) or not value:
        raise PackageError(f"manifest field {where}: expected a relative path, got {value!r}")
    parts = value.split("/")
    if (
        value.startswith("/")
        or "\\" in value
        or re.match(r"^[A-Za-z]:", value)
        or ".." in parts
        or "" in parts
        or "." in parts
    ):
        raise PackageError(
            f"manifest field {where}: path {value!r} points outside the package folder "
            "(absolute, '..' or not a plain relative path)"
        )
    return value


def _parse_task(r: _Reader) -> Task:
    inputs, outputs = [], []
    for i, item in enumerate(r.get("inputs", list)):
        c = _Reader(item, f"task.inputs[{i}]")
        inputs.append(
            InputSpec(
                name=c.get("name", str),
                modality=c.get("modality", str),
                phase=c.get("phase", str),
            )
        )
        c.done()
    for i, item in enumerate(r.get("outputs", list)):
        c = _Reader(item, f"task.outputs[{i}]")
        seq = c.get("sequence", str)
        if seq not in SEQUENCES:
            raise PackageError(f"manifest field task.outputs[{i}].sequence: unknown {seq!r}")
        mr_range = c.pair("mr_range")
        if mr_range[0] >= mr_range[1]:
            raise PackageError(f"manifest task.outputs[{i}].mr_range must go from low to high")
        outputs.append(
            OutputSpec(
                name=c.get("name", str),
                sequence=seq,
                modality=c.get("modality", str),
                mr_range=mr_range,
                sequence_index=c.get("sequence_index", (int, type(None)), None),
            )
        )
        c.done()
    if not inputs or not outputs:
        raise PackageError("manifest task needs at least one input and one output")
    context = r.get("context_slices", int)
    if context < 0:
        raise PackageError("manifest field task.context_slices must be >= 0")
    r.done()
    return Task(tuple(inputs), tuple(outputs), context)


def _parse_grid(r: _Reader) -> Grid:
    shape = r.pair("shape", int)
    spacing = r.pair("spacing_mm")
    if min(shape) < 1 or min(spacing) <= 0:
        raise PackageError(f"manifest grid: shape {shape} and spacing {spacing} must be positive")
    thickness = r.get("slice_thickness_mm", (int, float, type(None)), None)
    r.done()
    return Grid(shape, spacing, None if thickness is None else float(thickness))


def _parse_normalisation(r: _Reader) -> Normalisation:
    window = r.pair("ct_hu_window")
    model = r.pair("model_range")
    method = r.get("mr_method", str)
    percentile = r.get("mr_percentile", (int, float, type(None)), None)
    if window[0] >= window[1] or model[0] >= model[1]:
        raise PackageError("manifest normalisation: every range must go from low to high")
    if method not in ("fixed", "percentile"):
        raise PackageError(f"manifest normalisation.mr_method: unknown {method!r}")
    if method == "percentile" and not (percentile is not None and 0 < percentile <= 100):
        raise PackageError("manifest normalisation.mr_percentile must be in (0, 100]")
    r.done()
    return Normalisation(window, model, method, None if percentile is None else float(percentile))


def _parse_sampler(r: _Reader) -> SamplerSpec:
    kind = r.get("kind", str)
    if kind not in SAMPLERS:
        raise PackageError(f"manifest sampler.kind {kind!r} is unknown; known: {sorted(SAMPLERS)}")
    steps = r.get("steps", int)
    ts = r.get("timesteps", (list, type(None)), None)
    if ts is not None and (
        not all(isinstance(t, int) and not isinstance(t, bool) for t in ts) or len(ts) != steps
    ):
        raise PackageError(f"manifest sampler.timesteps must be {steps} integers, got {ts}")
    config = r.get("config", dict, {})
    r.done()
    spec = SamplerSpec(kind, steps, None if ts is None else tuple(ts), config)
    try:
        spec.build()
    except (ValueError, TypeError) as exc:
        raise PackageError(f"manifest sampler: {exc}") from exc
    return spec


def _parse_graphs(r: _Reader) -> dict[str, dict[str, str]]:
    graphs: dict[str, dict[str, str]] = {}
    for precision in list(r.data):
        if precision not in PRECISIONS:
            raise PackageError(f"manifest graphs: unknown precision {precision!r}; {PRECISIONS}")
        c = r.child(precision)
        graphs[precision] = {
            role: check_rel_path(c.get(role, str), f"graphs.{precision}.{role}")
            for role in GRAPH_ROLES
        }
        c.done()
    if not graphs:
        raise PackageError("manifest graphs: no precision is built")
    return graphs


def _parse_files(items: list[Any]) -> tuple[FileEntry, ...]:
    entries, seen = [], set()
    for i, item in enumerate(items):
        c = _Reader(item, f"files[{i}]")
        path = check_rel_path(c.get("path", str), f"files[{i}].path")
        digest = c.get("sha256", str)
        size = c.get("bytes", int)
        c.done()
        if not _SHA256.match(digest):
            raise PackageError(f"manifest files[{i}].sha256 is not 64 lowercase hex digits")
        if path in seen:
            raise PackageError(f"manifest files: {path} is listed twice")
        seen.add(path)
        entries.append(FileEntry(path, digest, size))
    return tuple(entries)


def _parse_coreml(data: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for role, path in data.items():
        if role not in GRAPH_ROLES:
            raise PackageError(f"manifest coreml: unknown role {role!r}; {GRAPH_ROLES}")
        out[role] = check_rel_path(path, f"coreml.{role}")
        if not out[role].endswith(".mlpackage"):
            raise PackageError(f"manifest coreml.{role}: {path!r} is not a .mlpackage folder")
    return out


def _numbers(values: Mapping[str, Any], where: str) -> dict[str, float]:
    bad = [k for k, v in values.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise PackageError(f"manifest field {where}: {bad} must be numbers")
    return {k: float(v) for k, v in values.items()}


def _parse_reference(r: _Reader, precisions: tuple[str, ...]) -> Reference:
    precision = r.get("precision", str)
    if precision not in precisions:
        raise PackageError(f"manifest reference.precision {precision!r} has no graphs")
    cases = []
    for i, item in enumerate(r.get("cases", list)):
        c = _Reader(item, f"reference.cases[{i}]")
        target = c.get("target", (str, type(None)), None)
        outputs = {
            other: check_rel_path(path, f"reference.cases[{i}].outputs.{other}")
            for other, path in c.get("outputs", dict, {}).items()
        }
        for other in outputs:
            if other == precision or other not in precisions:
                raise PackageError(
                    f"manifest reference.cases[{i}].outputs: {other!r} is not one of the other "
                    f"precisions built ({[p for p in precisions if p != precision]})"
                )
        cases.append(
            ReferenceCase(
                name=c.get("name", str),
                input=check_rel_path(c.get("input", str), f"reference.cases[{i}].input"),
                noise=check_rel_path(c.get("noise", str), f"reference.cases[{i}].noise"),
                output=check_rel_path(c.get("output", str), f"reference.cases[{i}].output"),
                seed=c.get("seed", int),
                target=target,
                output_name=c.get("output_name", (str, type(None)), None),
                outputs=outputs,
            )
        )
        c.done()
    if not cases:
        raise PackageError(
            "manifest reference.cases is empty: a package must be able to self-check"
        )
    if len({frozenset(case.outputs) for case in cases}) > 1:
        raise PackageError("manifest reference.cases: every case needs the same outputs")
    own = _parse_metrics(r, "reference", cases)
    by_precision = {}
    for other, item in r.get("by_precision", dict, {}).items():
        if other not in cases[0].outputs:
            raise PackageError(
                f"manifest reference.by_precision.{other}: the cases have no {other} outputs"
            )
        c = _Reader(item, f"reference.by_precision.{other}")
        by_precision[other] = _parse_metrics(c, f"reference.by_precision.{other}", cases)
        c.done()
    missing = [p for p in cases[0].outputs if p not in by_precision]
    if own.metrics and missing:
        # otherwise a run would be held to its own output but to another precision's metrics
        raise PackageError(f"manifest reference.by_precision has no metrics for {missing}")
    ref = Reference(
        precision=precision,
        cases=tuple(cases),
        psnr_min_db=r.number("psnr_min_db", 40.0),
        data_range=r.number("data_range", 2.0),
        metrics=own.metrics,
        metric_tolerance=own.metric_tolerance,
        by_precision=by_precision,
    )
    r.done()
    return ref


def _parse_metrics(r: _Reader, where: str, cases: list[ReferenceCase]) -> PrecisionMetrics:
    metrics = _numbers(r.get("metrics", dict, {}), f"{where}.metrics")
    tolerance = _numbers(r.get("metric_tolerance", dict, {}), f"{where}.metric_tolerance")
    for key in metrics:
        if key not in METRICS:
            raise PackageError(f"manifest {where}.metrics: unknown metric {key!r}; {METRICS}")
        if key not in tolerance:
            raise PackageError(f"manifest {where}.metric_tolerance has no entry for {key!r}")
    if metrics and not all(case.target for case in cases):
        raise PackageError(f"manifest {where}.metrics need a target in every reference case")
    return PrecisionMetrics(metrics, tolerance)


def manifest_from_dict(data: Any) -> Manifest:
    """A `Manifest` from parsed JSON, or a PackageError naming the first problem."""
    if not isinstance(data, Mapping):
        raise PackageError("manifest.json must hold a JSON object")
    version = _check_format_version(data)
    r = _Reader(data, "")
    r.used.add("format_version")
    graphs = _parse_graphs(r.child("graphs"))
    manifest = Manifest(
        format_version=version,
        name=r.get("name", str),
        description=r.get("description", str, ""),
        task=_parse_task(r.child("task")),
        grid=_parse_grid(r.child("grid")),
        normalisation=_parse_normalisation(r.child("normalisation")),
        sampler=_parse_sampler(r.child("sampler")),
        graphs=graphs,
        files=_parse_files(r.get("files", list)),
        reference=_parse_reference(r.child("reference"), tuple(graphs)),
        provenance=r.get("provenance", dict, {}),
        validation=r.get("validation", dict, {}),
        coreml=_parse_coreml(r.get("coreml", dict, {})),
    )
    r.done()
    for path in manifest.referenced_paths():
        manifest.file(path)  # every file used must carry a hash
    for case in manifest.reference.cases:
        if case.output_name is not None:
            manifest.task.output(case.output_name)
    for role, folder in manifest.coreml.items():
        if not manifest.files_under(folder):
            raise PackageError(f"manifest coreml.{role}: no listed file under {folder}")
    _validate_with_schema(data)
    return manifest


def parse_manifest(text: str | bytes, source: str = MANIFEST_NAME) -> Manifest:
    """Parse manifest text; unparsable JSON is a PackageError naming `source`."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackageError(f"{source} is not valid JSON (unparsable manifest): {exc}") from exc
    try:
        return manifest_from_dict(data)
    except PackageError as exc:
        raise PackageError(f"{source}: {exc}") from exc


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of format 1, shipped next to this module."""
    text = resources.files("edge_runtime.package").joinpath(SCHEMA_NAME).read_text("utf-8")
    return json.loads(text)


def _validate_with_schema(data: Mapping[str, Any]) -> None:
    """Extra check with `jsonschema` where it is installed (it is not a runtime dependency)."""
    try:
        import jsonschema
    except ImportError:
        return
    validator = jsonschema.Draft202012Validator(manifest_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "top level"
        raise PackageError(f"manifest does not match its JSON Schema at {where}: {error.message}")
