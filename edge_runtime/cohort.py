"""Cohort synthesis: a folder of cases in, one atomic output folder per case out, resumable.

A cohort is a folder whose entries are cases: sub-folders (a DICOM series, a phantom-style case
folder holding `ct_<phase>.nii.gz`, or a folder with a single image file) or image files
(.nii/.nii.gz/.mha/.mhd/.nrrd) directly inside it. Each case's output is written into a hidden
temporary folder and renamed to `OUT/<case>/` only when complete (`edge_runtime.atomic`), so a
case folder that exists is finished: a rerun skips it, and leftovers of a killed run (hidden
`.partial-` folders) are removed first. A case that cannot be read or is refused is recorded
with its reason and the run goes on; the summary lists every failure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_runtime.atomic import atomic_directory, atomic_write_json, remove_partials
from edge_runtime.errors import DiskFullError, HidiffError, InputError
from edge_runtime.io.image import MedicalImage
from edge_runtime.io.read import read_image
from edge_runtime.io.write import write_nifti
from edge_runtime.machine import provenance
from edge_runtime.synthesizer import SynthesisResult, Synthesizer

SYNTHESIS_FORMAT = "hidiff-synthesis/1"
RECORD_NAME = "synthesis.json"
SUMMARY_NAME = "synthesis_summary.json"
IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
FORMATS: tuple[str, ...] = ("nifti", "dicom")
# The manifest's phase names -> the phantom's file names (ct_<name>.nii.gz).
PHANTOM_PHASE_FILES: dict[str, str] = {
    "portal_venous": "portal",
    "arterial": "arterial",
    "plain": "plain",
}


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def case_name(path: Path) -> str:
    """A case's name: the folder's name, or the file's name without its image suffix."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def phantom_ct(case: Path, phase: str) -> Path:
    """Where a phantom-style case folder keeps the CT of `phase`."""
    return case / f"ct_{PHANTOM_PHASE_FILES.get(phase, phase)}.nii.gz"


def is_cohort(path: Path, phase: str) -> bool:
    """A folder of cases, rather than one case: it holds sub-folders or image files, and is
    neither a DICOM series folder (DICOM files only) nor a phantom case (`ct_<phase>.nii.gz`).
    Symbolic links do not make a cohort: a DICOM export with a stray link (even a loop) is
    one scan, and its reader refuses the link by name."""
    path = Path(path)
    if not path.is_dir() or phantom_ct(path, phase).is_file():
        return False
    entries = [e for e in path.iterdir() if not e.name.startswith(".") and not e.is_symlink()]
    return any(e.is_dir() for e in entries) or any(is_image_file(e) for e in entries)


def cohort_cases(path: Path) -> list[Path]:
    """The cases of a cohort folder, sorted by name (hidden entries and side files ignored)."""
    cases = [
        e
        for e in sorted(Path(path).iterdir())
        if not e.name.startswith(".") and (e.is_dir() or is_image_file(e))
    ]
    if not cases:
        raise InputError(f"{path}: no cases (sub-folders or image files)")
    return cases


def read_case_input(case: Path, phase: str) -> MedicalImage:
    """The CT of one case: an image file, a phantom case's `ct_<phase>.nii.gz`, a folder's only
    image file, or the DICOM series in the folder."""
    if case.is_file():
        return read_image(case)
    phantom = phantom_ct(case, phase)
    if phantom.is_file():
        image = read_image(phantom)
        image.metadata.phase_hint = PHANTOM_PHASE_FILES.get(phase, phase)
        return image
    images = [e for e in sorted(case.iterdir()) if is_image_file(e)]
    if len(images) == 1:
        return read_image(images[0])
    if len(images) > 1:
        raise InputError(
            f"{case}: {len(images)} image files and none named ct_{PHANTOM_PHASE_FILES.get(phase, phase)}"
            ".nii.gz: which one is the CT?"
        )
    return read_image(case)


def output_name(sequence: str, fmt: str) -> str:
    return f"synth_mr_{sequence}" + (".nii.gz" if fmt == "nifti" else "")


def write_result(
    image: MedicalImage, source: MedicalImage, dest: Path, fmt: str, synth: Synthesizer
) -> Path:
    """Write the synthetic MR (atomically) as NIfTI or a derived DICOM series of `source`."""
    if fmt == "nifti":
        return write_nifti(image, dest)
    if fmt == "dicom":
        from edge_runtime.io.dicom_write import write_dicom_series

        write_dicom_series(
            image,
            source if source.metadata.source_format.startswith("dicom") else None,
            dest,
            package_name=synth.manifest.name,
            package_sha256=synth.package.manifest_sha256,
            series_description=image.metadata.series_description[:64],
        )
        return dest
    raise InputError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")


def record(
    result: SynthesisResult, source: Path, synth: Synthesizer, sequence: str, seed: int
) -> dict[str, Any]:
    """What was made, from what, by which package, how fast (the case's synthesis.json)."""
    return {
        "format": SYNTHESIS_FORMAT,
        "input": str(source),
        "package": synth.manifest.name,
        "package_manifest_sha256": synth.package.manifest_sha256,
        "sequence": sequence,
        "seed": seed,
        "stats": asdict(result.stats) | {"seconds_per_slice": result.stats.seconds_per_slice},
        "provenance": provenance(),
    }


@dataclass(frozen=True)
class CaseOutcome:
    case: str
    status: str  # "done", "skipped" (already finished), "failed"
    reason: str = ""
    seconds_per_slice: float | None = None


def run_cohort(
    synth: Synthesizer,
    cohort: Path,
    out: Path,
    sequence: str,
    fmt: str = "nifti",
    steps: int | None = None,
    seed: int = 0,
    on_case: Callable[[str, int, int], None] | None = None,
) -> list[CaseOutcome]:
    """Synthesize every case of `cohort` into `out/<case>/`; finished cases are skipped, a bad
    case is recorded and skipped. `on_case(name, index, total)` is called before each case."""
    synth.output_for(sequence)  # refuse a sequence the package lacks before touching anything
    cases = cohort_cases(cohort)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    phase = synth.manifest.task.inputs[0].phase
    outcomes: list[CaseOutcome] = []
    for i, case in enumerate(cases):
        name = case_name(case)
        if on_case:
            on_case(name, i, len(cases))
        target = out / name
        if (target / RECORD_NAME).is_file():
            outcomes.append(CaseOutcome(name, "skipped"))
            continue
        try:
            ct = read_case_input(case, phase)
            result = synth.run(ct, sequence, steps, _case_seed(seed, name))
            with atomic_directory(target, overwrite=True) as tmp:
                write_result(result.image, ct, tmp / output_name(sequence, fmt), fmt, synth)
                atomic_write_json(
                    tmp / RECORD_NAME,
                    record(result, case, synth, sequence, _case_seed(seed, name)),
                )
            outcomes.append(
                CaseOutcome(name, "done", seconds_per_slice=result.stats.seconds_per_slice)
            )
        except DiskFullError:
            raise  # not this case's fault: every later case would fail the same way
        except (HidiffError, OSError, RuntimeError, ValueError) as exc:
            # SimpleITK raises RuntimeError on unreadable files; each is this case's problem.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            outcomes.append(CaseOutcome(name, "failed", reason))
    atomic_write_json(
        out / SUMMARY_NAME,
        {
            "format": SYNTHESIS_FORMAT,
            "package": synth.manifest.name,
            "sequence": sequence,
            "cases": [asdict(o) for o in outcomes],
            "failed": sum(o.status == "failed" for o in outcomes),
            "provenance": provenance(),
        },
    )
    return outcomes


def _case_seed(seed: int, name: str) -> int:
    """A case's seed from the run's seed and its name: independent of order and of resuming."""
    digest = hashlib.sha256(json.dumps([seed, name]).encode()).digest()
    return int.from_bytes(digest[:4], "little")
