"""Compression recipes: YAML files that say which stages run, in which order, with what settings.

A recipe is data, validated strictly: an unknown key anywhere (a typo) or a stage out of the
canonical order is an `InputError` naming the file and the key, because a silently ignored
setting would ship a package built from a recipe nobody wrote. The shipped recipes live next to
this file in `recipes/` (edge-cpu, hospital-gpu, apple); `docs/compress.md` explains each key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_runtime.errors import InputError

STAGES: tuple[str, ...] = ("sampler", "prune", "distill-steps", "quantize", "export", "package")
RECIPES = Path(__file__).resolve().parent / "recipes"


@dataclass(frozen=True)
class SamplerStageSpec:
    """The package's few-step sampler, run on the network as it is (no training).

    A v-predicting teacher's DDIM at 1-4 steps can match its own 50-step output (measured on the
    small teacher 2026-12-02: liver SSIM 0.255 / 0.275 / 0.271 at 1 / 2 / 4 steps vs 0.249 at
    50), so this stage alone can cut the steps; `distill-steps` after it trains for the steps
    instead when the plain sampler loses accuracy."""

    kind: str = "ddim"
    steps: int = 2


@dataclass(frozen=True)
class PruneSpec:
    """Structured channel pruning (torch-pruning) and the distillation that repairs it."""

    # "magnitude" (L2 of each channel group) or "taylor" (|w * dL/dw| on distillation batches).
    importance: str = "magnitude"
    # Fraction of each channel group removed (0.75: a quarter of the channels stay, ~1/16 FLOPs).
    ratio: float = 0.75
    # Instead of `ratio`: the fraction of the teacher's denoiser FLOPs to keep (pruned in
    # small rounds until reached); null: use `ratio`.
    flops: float | None = None
    # Ratio for the channel groups of layers that run at the model's full grid (the U-Net's
    # top level, the encoder's stem level); null: `ratio` everywhere. Those layers set the CPU
    # latency, and with GroupNorm's 8 groups any ratio >= 0.55 takes the 32-channel top level
    # to 8 channels, too few for the repair (docs/compress.md, "Why not fewer channels").
    full_res_ratio: float | None = None
    # Distillation steps after pruning (student's prediction -> teacher's, on training crops).
    steps: int = 300
    batch: int = 8
    lr: float = 1e-3
    # Weight of the plain diffusion loss against the phantom's true MR next to the teacher term.
    truth_weight: float = 0.5
    # Timesteps the repair trains at: "uniform" (the whole schedule) or "sampler" (only those
    # the package's few-step sampler visits, from a `sampler` stage before prune: the thinner
    # network spends its capacity where the package uses it).
    timesteps: str = "uniform"


@dataclass(frozen=True)
class DistillStepsSpec:
    """Trajectory distillation from the teacher's many-step sampler to `steps` steps."""

    # Student sampler: a kind the runtime has (edge_runtime.samplers) and its steps (<= 4).
    sampler: str = "ddim"
    steps: int = 4
    # The teacher's sampler that makes the targets, and its steps.
    teacher_steps: int = 50
    # Training crops whose teacher samples are cached (the costly part: teacher_steps calls).
    trajectories: int = 64
    # Student optimisation steps and batch over the cached trajectories.
    train_steps: int = 400
    batch: int = 8
    lr: float = 5e-4


@dataclass(frozen=True)
class QuantizeSpec:
    """Post-training quantization (NNCF, int8) or fp16 conversion of the exported graphs."""

    precision: str = "int8"
    # Calibration samples per graph (phantom training slices at the model's grid).
    calibration: int = 16
    # Gate: every output of each graph vs the torch model it came from.
    psnr_min_db: float = 35.0
    # int8: layers reverted to fp32, most sensitive first, while the measured PSNR of a graph is
    # below psnr_min_db + margin_db (NNCF's accuracy control); 0 turns the search off.
    max_fp32_layers: int = 8
    margin_db: float = 3.0


@dataclass(frozen=True)
class ExportSpec:
    """Deployable formats beside the ONNX graphs."""

    # "onnx" (always), "ort" (ORT format + required operators, for a reduced Android build),
    # "coreml" (mlprogram; numeric checks only on macOS).
    formats: tuple[str, ...] = ("onnx",)
    # CoreML weight palettisation bits (4 or 6), or null for plain fp16 weights.
    coreml_palettize_bits: int | None = None


@dataclass(frozen=True)
class PackageSpec:
    """The edge package written at --out."""

    # None: aphidiff-<preset>-<seq>-<precision>-<sampler><steps>-<recipe>.
    name: str | None = None
    reference_slices: int = 2
    # Graph precisions shipped, the reference's first; empty: the last stage's precision only.
    # "fp32" beside "int8" ships the pruned student's fp32 graphs too: each device profile runs
    # its preferred one (edge_runtime.providers: the CPU fp32, NPUs int8). On 2-core x86 CPUs
    # the int8 graphs of this architecture measured slower than fp32 (quantize/dequantize and
    # layout changes around every GroupNorm and SiLU); the quantize row of the ledger has both.
    precisions: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalSpec:
    """How every stage is scored for the ledger (fixed held-out liver slices at full grid)."""

    slices: int = 4
    # Teacher latency = median of this many timed denoiser steps x its steps + encoder.
    teacher_timed_steps: int = 3
    # Torch/onnxruntime threads for latency (the target: a 2-core CPU).
    latency_threads: int = 2
    latency_repeats: int = 3
    seed: int = 0


@dataclass(frozen=True)
class GateSpec:
    """When a stage fails the recipe."""

    # Masked SSIM may fall at most this far below the previous stage's.
    max_ssim_drop: float = 0.03
    # PSNR vs the phantom's truth (whole slice, dB) may fall at most this far below the previous
    # stage's; null: not gated. Liver-masked SSIM is structure inside the liver only: on
    # 2026-12-08 a prune to 40 % of the channels kept it (0.752) while the student rendered the
    # body too dark, 1.9 dB below the stage before and 8 dB below the 50 % prune.
    max_psnr_drop_db: float | None = None
    # fp32 ONNX export vs torch.
    export_psnr_db: float = 60.0


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    sequence: str = "t2"
    eval: EvalSpec = field(default_factory=EvalSpec)
    gates: GateSpec = field(default_factory=GateSpec)
    stages: tuple[str, ...] = ()
    sampler: SamplerStageSpec | None = None
    prune: PruneSpec | None = None
    distill_steps: DistillStepsSpec | None = None
    quantize: QuantizeSpec | None = None
    export: ExportSpec | None = None
    package: PackageSpec | None = None
    source: str = ""

    def spec(self, stage: str) -> Any:
        return getattr(self, stage.replace("-", "_"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SPECS: dict[str, type] = {
    "sampler": SamplerStageSpec,
    "prune": PruneSpec,
    "distill-steps": DistillStepsSpec,
    "quantize": QuantizeSpec,
    "export": ExportSpec,
    "package": PackageSpec,
}


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    values = {}
    for key, value in data.items():
        default = known[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[key] = value
    return cls(**values)


def _check(recipe: Recipe, where: str) -> None:
    p, d, q, e = recipe.prune, recipe.distill_steps, recipe.quantize, recipe.export
    samplers = [("sampler", recipe.sampler.kind, recipe.sampler.steps)] if recipe.sampler else []
    if d is not None:
        samplers.append(("distill-steps", d.sampler, d.steps))
    for name, kind, steps in samplers:
        if not 1 <= steps <= 4:
            raise InputError(f"{where}: {name}.steps must be 1..4, got {steps}")
        if kind not in ("ddim", "dpm_solver++"):
            raise InputError(f"{where}: {name} sampler must be ddim or dpm_solver++")
    if p is not None:
        if p.importance not in ("magnitude", "taylor"):
            raise InputError(f"{where}: prune.importance must be magnitude or taylor")
        if not 0.0 <= p.ratio < 1.0 or (p.flops is not None and not 0.0 < p.flops <= 1.0):
            raise InputError(f"{where}: prune.ratio must be in [0, 1), prune.flops in (0, 1]")
        if p.full_res_ratio is not None and not 0.0 <= p.full_res_ratio < 1.0:
            raise InputError(f"{where}: prune.full_res_ratio must be in [0, 1) or null")
        if p.timesteps not in ("uniform", "sampler"):
            raise InputError(f"{where}: prune.timesteps must be uniform or sampler")
        if p.timesteps == "sampler" and recipe.sampler is None:
            raise InputError(f"{where}: prune.timesteps: sampler needs a sampler stage first")
    g = recipe.gates
    if g.max_psnr_drop_db is not None and g.max_psnr_drop_db < 0:
        raise InputError(f"{where}: gates.max_psnr_drop_db must be >= 0 dB or null")
    if q is not None and q.precision not in ("int8", "fp16"):
        raise InputError(f"{where}: quantize.precision must be int8 or fp16")
    if e is not None:
        bad = [f for f in e.formats if f not in ("onnx", "ort", "coreml")]
        if bad:
            raise InputError(f"{where}: unknown export format(s) {bad}")
        if e.coreml_palettize_bits not in (None, 4, 6):
            raise InputError(f"{where}: export.coreml_palettize_bits must be 4, 6 or null")
    pk = recipe.package
    if pk is not None and pk.precisions:
        made = {"fp32", q.precision} if q is not None else {"fp32"}
        bad = [x for x in pk.precisions if x not in made]
        if bad or len(set(pk.precisions)) != len(pk.precisions):
            raise InputError(
                f"{where}: package.precisions {list(pk.precisions)}: each once, from the graphs "
                f"the stages make ({sorted(made)})"
            )
    if "package" not in recipe.stages:
        raise InputError(f"{where}: a recipe ends with the package stage")


def parse_recipe(data: Any, where: str) -> Recipe:
    """A `Recipe` from parsed YAML; InputError names `where` and the offending key."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: a recipe is a mapping")
    top = {"name", "description", "sequence", "eval", "gates", "stages"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known: {sorted(top)}")
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise InputError(f"{where}: `stages` must be a non-empty list of single-key mappings")
    names: list[str] = []
    specs: dict[str, Any] = {}
    for i, item in enumerate(stages):
        if isinstance(item, str):
            item = {item: None}
        if not isinstance(item, dict) or len(item) != 1:
            raise InputError(f"{where}: stages[{i}] must be one stage name with its settings")
        ((name, settings),) = item.items()
        if name not in _SPECS:
            raise InputError(f"{where}: stages[{i}]: unknown stage {name!r}; known: {STAGES}")
        if name in names:
            raise InputError(f"{where}: stage {name} appears twice")
        names.append(name)
        specs[name.replace("-", "_")] = _build(_SPECS[name], settings, f"{where}: {name}")
    order = [s for s in STAGES if s in names]
    if names != order:
        raise InputError(f"{where}: stages must run in the order {order}, got {names}")
    recipe = Recipe(
        name=str(data.get("name") or Path(where).stem),
        description=str(data.get("description", "")),
        sequence=str(data.get("sequence", "t2")),
        eval=_build(EvalSpec, data.get("eval"), f"{where}: eval"),
        gates=_build(GateSpec, data.get("gates"), f"{where}: gates"),
        stages=tuple(names),
        source=where,
        **specs,
    )
    _check(recipe, where)
    return recipe


def load_recipe(path: Path | str) -> Recipe:
    """Read and validate a recipe file (a bare name finds compress/recipes/NAME.yaml)."""
    path = Path(path)
    if not path.is_file() and (RECIPES / f"{path}.yaml").is_file():
        path = RECIPES / f"{path}.yaml"
    if not path.is_file():
        raise InputError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from exc
    return parse_recipe(data, str(path))
