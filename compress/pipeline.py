"""`hidiff compress --teacher RUN --recipe R --out PKG`: a recipe end to end, resumable, ledgered.

Work happens in `<PKG>.work/`, one folder per stage (`00-teacher`, `01-prune`, ...). A stage's
folder is written atomically and holds its artifacts and `row.json`, its ledger row: a folder
that exists is a finished stage, so a killed run resumes at the stage it was in (the stage
restarts; finished ones are read back). Each row carries its stage's key (the teacher, the
evaluation and the settings of it and every earlier stage): an edited recipe reruns the stages
it changed and all after them. The ledger `<PKG>.ledger.json` is rewritten after every
stage, so it shows how far a run got and where it failed.

Each row has the stage's params, GFLOPs per full-grid slice, sampler steps, package_mb (what
the stage would ship: fp32 weights for torch stages, graph files for ONNX stages, the folder
for the package), CPU latency per slice, peak RSS (package only: a fresh runtime process),
masked SSIM in the liver vs the phantom's truth, PSNR vs truth and vs the teacher, status.

Gates: a stage whose masked SSIM is more than `gates.max_ssim_drop` below the previous stage's
(or, where the recipe sets `gates.max_psnr_drop_db`, whose PSNR vs truth is that far below it),
or whose export/quantization misses its PSNR gate, is marked "failed" with the reason, the
ledger is written and `CompressionFailed` (exit 2, one line naming the stage) is raised; no
package is written.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as np_load
from safetensors.numpy import save as np_save

from compress import export_formats
from compress.edge_package import write_edge_package
from compress.evaluate import (
    EvalSet,
    OnnxPair,
    accuracy,
    eval_set,
    package_probe,
    torch_latency,
    torch_outputs,
    torch_threads,
)
from compress.export_onnx import ExportGateError
from compress.prune import prune_stage
from compress.recipe import GateSpec, Recipe
from compress.stage_io import (
    distill_steps,
    quantize_student,
    sampler_dict,
    spec_of,
    teacher_student,
    train_data,
)
from compress.student import (
    Student,
    count_params,
    encoder_denoiser_gflops,
    load_student,
)
from edge_runtime.atomic import atomic_directory, atomic_write_json, remove_partials
from edge_runtime.console import console, log
from edge_runtime.errors import HidiffError, InputError
from edge_runtime.machine import provenance
from edge_runtime.package.manifest import SamplerSpec
from models.data.slices import SliceDataset

LEDGER_FORMAT = "hidiff-compress-ledger/1"


class CompressionFailed(HidiffError):
    """A stage of the recipe broke a gate; the ledger says which and why."""


@dataclass
class Context:
    """What every stage reads: teacher, data, evaluation set, recipe, work folder."""

    recipe: Recipe
    teacher: Student
    teacher_run: Path
    data: Path
    work: Path
    out: Path
    es: EvalSet
    teacher_outputs: np.ndarray
    teacher_spec: SamplerSpec
    _train: SliceDataset | None = None

    @property
    def train(self) -> SliceDataset:
        if self._train is None:
            self._train = train_data(self.teacher, self.data, self.recipe.sequence)
        return self._train


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def torch_row(ctx: Context, student: Student, spec: SamplerSpec) -> dict[str, Any]:
    """Size, FLOPs, latency and accuracy of a torch stage (sampled with `spec`)."""
    mc, ev = student.mc, ctx.recipe.eval
    enc_g, den_g = encoder_denoiser_gflops(student.model, mc, mc.data.grid)
    with torch_threads(ev.latency_threads):
        speed = torch_latency(student.model, ctx.es, spec.steps, ev.teacher_timed_steps)
    with torch_threads(ev.latency_threads):
        out = torch_outputs(student.model, ctx.es, spec)
    return {
        "params": count_params(student.model),
        "gflops_per_slice": enc_g + spec.steps * den_g,
        "sampler_steps": spec.steps,
        "package_mb": 4 * count_params(student.model) / 1e6,
        **speed,
        **accuracy(out, ctx.es, ctx.teacher_outputs),
        "runtime": "torch",
    }


def graphs_row(
    ctx: Context, student: Student, enc: bytes, den: bytes, spec: SamplerSpec
) -> dict[str, Any]:
    """Size, latency (whole loop in onnxruntime) and accuracy of a pair of ONNX graphs."""
    mc, ev = student.mc, ctx.recipe.eval
    enc_g, den_g = encoder_denoiser_gflops(student.model, mc, mc.data.grid)
    out = OnnxPair(enc, den).outputs(ctx.es, spec)
    seconds = OnnxPair(enc, den, ev.latency_threads).latency(ctx.es, spec, ev.latency_repeats)
    return {
        "params": count_params(student.model),
        "gflops_per_slice": enc_g + spec.steps * den_g,
        "sampler_steps": spec.steps,
        "package_mb": (len(enc) + len(den)) / 1e6,
        "cpu_latency_s_per_slice": seconds,
        "latency_method": f"onnxruntime CPU, {ev.latency_threads} threads, whole sampler loop, "
        f"median of {ev.latency_repeats}",
        **accuracy(out, ctx.es, ctx.teacher_outputs),
        "runtime": "onnxruntime",
    }


# -- the stages: each reads the previous stage's folder and writes its own ------------------------


def stage_sampler(ctx: Context, prev: Path | None, dest: Path) -> dict[str, Any]:
    spec = ctx.recipe.sampler
    assert spec is not None
    student = _student_from(ctx, prev)
    student.sampler = sampler_dict(student, spec.kind, spec.steps)
    student.save(dest / "student")
    return {**torch_row(ctx, student, spec_of(student.sampler)), "sampler": spec.kind}


def stage_prune(ctx: Context, prev: Path | None, dest: Path) -> dict[str, Any]:
    spec = ctx.recipe.prune
    assert spec is not None
    sampler = _student_from(ctx, prev).sampler
    res = prune_stage(ctx.teacher, ctx.train, spec, sampler)
    res.student.save(dest / "student")
    return {
        **torch_row(ctx, res.student, spec_of(_sampler(ctx, res.student))),
        "prune_ratio": res.ratio,
        "prune_full_res_ratio": spec.full_res_ratio,
        "distil_loss_first": res.losses[0] if res.losses else None,
        "distil_loss_last": res.losses[-1] if res.losses else None,
    }


def stage_distill_steps(ctx: Context, prev: Path | None, dest: Path) -> dict[str, Any]:
    spec = ctx.recipe.distill_steps
    assert spec is not None
    student = _student_from(ctx, prev)
    # The teacher's trajectories depend on the teacher (one per work folder) and on these only.
    traj_key = _key(
        {"teacher_steps": spec.teacher_steps, "n": spec.trajectories, "batch": spec.batch}
    )
    cache = ctx.work / f"distill-steps-trajectories-{traj_key}.safetensors"
    losses = distill_steps(student, ctx.teacher, ctx.train, spec, dest / "student", cache)
    assert student.sampler is not None
    return {
        **torch_row(ctx, student, spec_of(student.sampler)),
        "teacher_sampler": f"ddim {spec.teacher_steps}",
        "trajectories": spec.trajectories,
        "distil_loss_first10_mean": float(np.mean(losses[:10])),
        "distil_loss_last10_mean": float(np.mean(losses[-10:])),
    }


def stage_quantize(ctx: Context, prev: Path | None, dest: Path) -> dict[str, Any]:
    spec = ctx.recipe.quantize
    assert spec is not None
    student = _student_from(ctx, prev)
    info = quantize_student(
        student,
        ctx.data,
        ctx.recipe.sequence,
        spec,
        dest / "quantized",
        ctx.recipe.gates.export_psnr_db,
        _graph_metadata(ctx, student),
    )
    (dest / "quantized" / "graphs").rename(dest / "graphs")
    (dest / "quantized" / "quantize.json").rename(dest / "quantize.json")
    (dest / "quantized").rmdir()
    student.save(dest / "student")
    enc, den = _graphs(dest, spec.precision)
    sspec = spec_of(_sampler(ctx, student))
    row = graphs_row(ctx, student, enc, den, sspec)
    # The same loop with the stage's fp32 graphs: whether the quantized graphs are faster on
    # this CPU is measured, not assumed (it decides which precisions a CPU package ships).
    ev = ctx.recipe.eval
    fp32_s = OnnxPair(*_graphs(dest, "fp32"), ev.latency_threads).latency(
        ctx.es, sspec, ev.latency_repeats
    )
    speedup = fp32_s / row["cpu_latency_s_per_slice"]
    if speedup < 1.0:
        log.warning(
            "quantize: %s graphs %.3f s per slice vs fp32 %.3f s on this CPU (%.2fx)",
            spec.precision,
            row["cpu_latency_s_per_slice"],
            fp32_s,
            speedup,
        )
    return {
        **row,
        "cpu_latency_s_per_slice_fp32": fp32_s,
        "speedup_vs_fp32": speedup,
        "precision": spec.precision,
        "export_gate_worst_db": info["export_gate_worst_db"],
        "quantize_gate_db": info["gates"],
        "encoder_kept_fp32": "encoder_kept_fp32" in info,
    }


def stage_export(ctx: Context, prev: Path | None, dest: Path) -> dict[str, Any]:
    spec = ctx.recipe.export
    assert spec is not None and prev is not None
    student = _student_from(ctx, prev)
    precision = _precision(prev)
    enc, den = _graphs(prev, precision)
    shutil.copytree(prev / "graphs", dest / "graphs")
    student.save(dest / "student")
    row: dict[str, Any] = {"formats": list(spec.formats), "precision": precision}
    if "ort" in spec.formats:
        ort_info = export_formats.to_ort_format({"encoder": enc, "denoiser": den}, dest / "ort")
        row["ort_mb"] = ort_info["bytes"] / 1e6
        row["ort_required_operators"] = ort_info["config"]
    if "coreml" in spec.formats:
        cm = export_formats.to_coreml(
            student.model, student.mc, ctx.es.ct[:1], dest / "coreml", spec.coreml_palettize_bits
        )
        row["coreml_mb"] = cm["bytes"] / 1e6
        row["coreml_checked_numerically"] = cm["checked"]
    row.update(graphs_row(ctx, student, enc, den, spec_of(_sampler(ctx, student))))
    return row


def stage_package(ctx: Context, prev: Path | None, dest: Path) -> dict[str, Any]:
    spec = ctx.recipe.package
    assert spec is not None and prev is not None
    student = _student_from(ctx, prev)
    shipped = spec.precisions or (_precision(prev),)
    precision = shipped[0]
    graphs = {p: _graphs(prev, p) for p in shipped}
    sampler = _sampler(ctx, student)
    seq = ctx.recipe.sequence
    mc = student.mc
    name = spec.name or (
        f"aphidiff-{mc.preset}-{seq}-{precision}-{sampler['kind'].replace('+', 'p')}"
        f"{sampler['steps']}-{ctx.recipe.name}"
    )
    extra: dict[str, bytes] = {}
    coreml: dict[str, str] = {}
    for folder in ("ort", "coreml"):
        if (prev / folder).is_dir():
            for f in sorted((prev / folder).rglob("*")):
                if f.is_file():
                    extra[f"{folder}/{f.relative_to(prev / folder).as_posix()}"] = f.read_bytes()
    for role in ("encoder", "denoiser"):
        if (prev / "coreml" / f"{role}.mlpackage").is_dir():
            coreml[role] = f"coreml/{role}.mlpackage"
    ledger_rows = _read_rows(ctx.work)
    quant = prev.parent / _stage_dir_name(ctx.work, "quantize")
    quant_info = json.loads((quant / "quantize.json").read_text()) if quant.is_dir() else None
    pkg = write_edge_package(
        ctx.out,
        student,
        ctx.data,
        seq,
        graphs,
        sampler,
        spec,
        name,
        f"AP-HiDiff {mc.preset} compressed by recipe {ctx.recipe.name}: "
        f"{', '.join(ctx.recipe.stages)}; {' + '.join(graphs)}, {sampler['kind']} "
        f"{sampler['steps']} steps.",
        extra_files=extra,
        coreml=coreml or None,
        provenance_extra={
            "recipe": ctx.recipe.to_dict(),
            "compression_recipe": ctx.recipe.name,
            "calibration": quant_info.get("calibration") if quant_info else None,
            "quantization": quant_info,
            "data": {"path": ctx.data.name},
        },
        validation={
            "evaluation_set": ctx.es.describe(),
            "ledger_rows": [
                {k: r.get(k) for k in ("stage", "masked_ssim", "psnr_vs_teacher")}
                for r in ledger_rows
            ],
        },
        overwrite=True,
    )
    ev = ctx.recipe.eval
    probe = package_probe(ctx.out, ev.latency_threads, ev.latency_repeats)
    out = _runtime_outputs(pkg, ctx.es)
    (dest / "package.txt").write_text(str(ctx.out) + "\n")
    enc_g, den_g = encoder_denoiser_gflops(student.model, mc, mc.data.grid)
    return {
        "params": count_params(student.model),
        "gflops_per_slice": enc_g + sampler["steps"] * den_g,
        "sampler_steps": sampler["steps"],
        "package_mb": _dir_mb(ctx.out),
        "cpu_latency_s_per_slice": probe["seconds"],
        "peak_rss_mib": probe["peak_rss_mib"],
        "latency_method": f"fresh runtime process (edge_runtime only), Engine on CPU, "
        f"{ev.latency_threads} threads, median of {ev.latency_repeats} after a warm-up",
        **accuracy(out, ctx.es, ctx.teacher_outputs),
        "runtime": "edge_runtime",
        "precision": precision,
        "precisions": list(graphs),
        "package": pkg.name,
    }


def _runtime_outputs(pkg, es: EvalSet) -> np.ndarray:
    from edge_runtime.package.engine import Engine
    from edge_runtime.providers import RuntimeOptions

    engine = Engine(pkg, "cpu", None, RuntimeOptions(cache_dir=None, intra_op_threads=1))
    out_name = pkg.manifest.task.outputs[0].name
    return np.concatenate(
        [
            engine.generate(es.ct[i : i + 1], es.noise[i : i + 1], es.seed + i, out_name)
            for i in range(es.ct.shape[0])
        ]
    )


STAGE_FUNCTIONS: dict[str, Callable[[Context, Path | None, Path], dict[str, Any]]] = {
    "sampler": stage_sampler,
    "prune": stage_prune,
    "distill-steps": stage_distill_steps,
    "quantize": stage_quantize,
    "export": stage_export,
    "package": stage_package,
}


# -- plumbing ---------------------------------------------------------------------------------------


def _student_from(ctx: Context, prev: Path | None) -> Student:
    if prev is None or not (prev / "student").is_dir():
        return Student(
            copy.deepcopy(ctx.teacher.model),
            ctx.teacher.mc,
            ctx.teacher.mr_scales,
            ctx.teacher.teacher,
        )
    return load_student(prev / "student")


def _sampler(ctx: Context, student: Student) -> dict[str, Any]:
    """The student's sampler (from a sampler or distill-steps stage), else the teacher's."""
    return student.sampler or sampler_dict(student, ctx.teacher_spec.kind, ctx.teacher_spec.steps)


def _graphs(stage_dir: Path, precision: str) -> tuple[bytes, bytes]:
    folder = stage_dir / "graphs" / precision
    return (folder / "encoder.onnx").read_bytes(), (folder / "denoiser.onnx").read_bytes()


def _precision(stage_dir: Path) -> str:
    found = [p.name for p in (stage_dir / "graphs").iterdir() if p.name != "fp32"]
    return found[0] if found else "fp32"


def _graph_metadata(ctx: Context, student: Student) -> dict[str, str]:
    return {
        "hidiff.teacher_sha256": str(student.teacher.get("checkpoint_sha256")),
        "hidiff.recipe": ctx.recipe.name,
        "hidiff.model": student.mc.model,
        "hidiff.preset": student.mc.preset,
    }


def _stage_dir_name(work: Path, stage: str) -> str:
    for p in sorted(work.glob(f"*-{stage}")):
        return p.name
    return f"missing-{stage}"


def _key(doc: Any) -> str:
    """A short content hash of JSON-able settings (which stage results are still valid)."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def stage_keys(recipe: Recipe, teacher_sha: str) -> dict[str, str]:
    """Each stage's key: the teacher, the evaluation, and the settings of this stage and of every
    stage before it. A finished stage whose key differs (the recipe was edited) is run again, and
    so is everything after it, instead of resuming from results of settings nobody asked for."""
    chain: list[Any] = [teacher_sha, recipe.sequence, dataclasses.asdict(recipe.eval)]
    keys = {"teacher": _key(chain)}
    for stage in recipe.stages:
        chain.append(
            [stage, dataclasses.asdict(recipe.spec(stage)), dataclasses.asdict(recipe.gates)]
        )
        keys[stage] = _key(chain)
    return keys


def _finished(folder: Path, key: str) -> dict[str, Any] | None:
    """The row of a finished stage folder made with `key`, else None."""
    path = folder / "row.json"
    if not path.is_file():
        return None
    row = json.loads(path.read_text())
    return row if row.get("key") == key else None


def _read_rows(work: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(work.glob("*/row.json"))]


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}


def write_ledger(path: Path, doc: dict[str, Any], rows: list[dict[str, Any]], status: str) -> None:
    atomic_write_json(path, {**doc, "status": status, "stages": [_finite(r) for r in rows]})


def _teacher_stage(ctx_args: dict[str, Any], work: Path) -> tuple[dict[str, Any], np.ndarray]:
    """The teacher's row and its outputs on the evaluation slices (cached in 00-teacher)."""
    folder = work / "00-teacher"
    key = ctx_args["key"]
    done = _finished(folder, key)
    if done is not None:
        arrays = np_load((folder / "outputs.safetensors").read_bytes())
        return done, arrays["outputs"]
    teacher: Student = ctx_args["teacher"]
    es: EvalSet = ctx_args["es"]
    spec: SamplerSpec = ctx_args["teacher_spec"]
    ev = ctx_args["recipe"].eval
    mc = teacher.mc
    enc_g, den_g = encoder_denoiser_gflops(teacher.model, mc, mc.data.grid)
    with torch_threads(ev.latency_threads):
        speed = torch_latency(teacher.model, es, spec.steps, ev.teacher_timed_steps)
        out = torch_outputs(teacher.model, es, spec)
    row = {
        "stage": "teacher",
        "status": "ok",
        "params": count_params(teacher.model),
        "gflops_per_slice": enc_g + spec.steps * den_g,
        "sampler_steps": spec.steps,
        "package_mb": 4 * count_params(teacher.model) / 1e6,
        **speed,
        **accuracy(out, es, None),
        "psnr_vs_teacher": float("inf"),
        "runtime": "torch",
        "key": key,
    }
    with atomic_directory(folder, overwrite=True) as tmp:
        (tmp / "outputs.safetensors").write_bytes(np_save({"outputs": out}))
        (tmp / "row.json").write_text(json.dumps(_finite(row), indent=1) + "\n")
    return row, out


def run_recipe(
    teacher_run: Path,
    recipe: Recipe,
    out: Path,
    data: Path | None = None,
    work: Path | None = None,
) -> dict[str, Any]:
    """Run `recipe` on the teacher run; write the package at `out` and the ledger beside it.
    Returns the ledger. Raises CompressionFailed when a stage breaks a gate."""
    teacher_run, out = Path(teacher_run), Path(out)
    work = Path(work) if work else out.with_name(out.name + ".work")
    ledger_path = out.with_name(out.name + ".ledger.json")
    teacher, doc = teacher_student(teacher_run)
    mc = teacher.mc
    teacher_info = teacher.teacher
    if recipe.sequence not in teacher.mr_scales:
        raise InputError(f"{teacher_run} was not trained on sequence {recipe.sequence}")
    data = Path(data or doc.get("data", ""))
    if not data.is_dir():
        raise InputError(f"{data}: no phantom cohort there (pass --data)")
    work.mkdir(parents=True, exist_ok=True)
    remove_partials(work)  # stage folders a killed run left half-written
    for stale in out.parent.glob(f".{out.name}.partial-*"):  # and its half-written package
        shutil.rmtree(stale, ignore_errors=True)
    marker = work / "teacher.json"
    if marker.is_file() and json.loads(marker.read_text()) != teacher_info:
        raise InputError(
            f"{work} holds stages of another teacher checkpoint; remove it or pass another --out"
        )
    atomic_write_json(marker, teacher_info)
    es = eval_set(data, mc, recipe.sequence, recipe.eval.slices, recipe.eval.seed)
    teacher_spec = spec_of(sampler_dict(teacher, mc.diffusion.sampler, mc.diffusion.sample_steps))
    ledger_doc = {
        "format": LEDGER_FORMAT,
        "recipe": recipe.to_dict(),
        "teacher": teacher_info,
        "teacher_hash": teacher_info["checkpoint_sha256"],
        "data": str(data),
        "evaluation": {
            **es.describe(),
            "metrics": "masked_ssim: SSIM inside the liver vs the phantom's true MR (model "
            "space, range 2); psnr_vs_teacher: vs the teacher's own output from the same noise. "
            "vessel clDice and < 3 mm miss rate: `hidiff bench accuracy` (benchmarks layer).",
        },
        "provenance": provenance(),
        "package": str(out),
    }
    console.print(f"compress: teacher {teacher_run.name} ({mc.preset}), recipe {recipe.name}")
    start = time.perf_counter()
    keys = stage_keys(recipe, teacher_info["checkpoint_sha256"])
    teacher_row, teacher_out = _teacher_stage(
        {
            "teacher": teacher,
            "es": es,
            "teacher_spec": teacher_spec,
            "recipe": recipe,
            "key": keys["teacher"],
        },
        work,
    )
    rows = [teacher_row]
    write_ledger(ledger_path, ledger_doc, rows, "running")
    ctx = Context(recipe, teacher, teacher_run, data, work, out, es, teacher_out, teacher_spec)
    prev: Path | None = None
    stale = False
    for i, stage in enumerate(recipe.stages, start=1):
        folder = work / f"{i:02d}-{stage}"
        done = _finished(folder, keys[stage]) if not stale else None
        if done is not None:
            rows.append(done)
            console.print(f"  {stage}: done earlier (resumed)")
            prev = folder
            continue
        if folder.is_dir():
            console.print(f"  {stage}: settings changed since it ran, running it again")
        stale = True  # every later stage read this one's output: none of them is valid now
        console.print(f"  {stage} ...")
        t0 = time.perf_counter()
        row: dict[str, Any] = {"stage": stage, "key": keys[stage]}
        try:
            with atomic_directory(folder, overwrite=True) as tmp:
                row.update(STAGE_FUNCTIONS[stage](ctx, prev, tmp))
                row["seconds"] = time.perf_counter() - t0
                reason = stage_gate(recipe.gates, rows, row)
                if reason:
                    raise CompressionFailed(reason)
                row["status"] = "ok"
                (tmp / "row.json").write_text(json.dumps(_finite(row), indent=1) + "\n")
        except (ExportGateError, CompressionFailed) as exc:
            row.update({"status": "failed", "reason": str(exc)})
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            write_ledger(ledger_path, ledger_doc, rows, "failed")
            if stage == "package":
                shutil.rmtree(out, ignore_errors=True)
            raise CompressionFailed(
                f"recipe {recipe.name}: stage {stage} failed: {exc} (ledger {ledger_path})"
            ) from exc
        rows.append(row)
        write_ledger(ledger_path, ledger_doc, rows, "running")
        prev = folder
    ledger_doc["seconds"] = time.perf_counter() - start
    write_ledger(ledger_path, ledger_doc, rows, "ok")
    return json.loads(ledger_path.read_text())


def stage_gate(gates: GateSpec, rows: list[dict[str, Any]], row: dict[str, Any]) -> str | None:
    """Why `row` fails the recipe (its masked SSIM, or its PSNR vs truth where the recipe gates
    it, fell too far below the previous finished stage's), or None."""
    before = next((r for r in reversed(rows) if r.get("status") == "ok"), None)
    if before is None:
        return None
    checks = [("masked SSIM", "masked_ssim", gates.max_ssim_drop, ".4f", "")]
    if gates.max_psnr_drop_db is not None:
        checks.append(("PSNR vs truth", "psnr_db", gates.max_psnr_drop_db, ".2f", " dB"))
    for label, key, limit, fmt, unit in checks:
        if row.get(key) is None or before.get(key) is None:
            continue
        drop = before[key] - row[key]
        if drop > limit:
            return (
                f"{label} {row[key]:{fmt}}{unit} is {drop:{fmt}}{unit} below "
                f"{before['stage']}'s {before[key]:{fmt}}{unit} (gate: at most {limit}{unit})"
            )
    return None
