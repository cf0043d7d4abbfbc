"""`hidiff prepare`: a cohort -> registered, normalised training pairs at the model's grids.

Per case: register the MR to the CT, warp every MR sequence and the MR labels, measure QA,
normalise (the model's HU window and MR body percentile, `normalise`), resample to each requested in-plane grid, and write
it all into one folder atomically. A case whose QA fails is still written, with `excluded: true`
and its reasons in `qa.json`, so training skips it knowingly. An interrupted run resumes: finished
case folders are kept, half-written ones are removed.
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from edge_runtime.atomic import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    remove_partials,
)
from edge_runtime.console import progress
from edge_runtime.errors import InputError
from edge_runtime.io.write import write_sitk_image
from models.preprocess import qa
from models.preprocess.cases import downsample, list_cases, read_case
from models.preprocess.fields import warp
from models.preprocess.normalise import NormalisationSpec, body_mask
from models.preprocess.registration import RegistrationConfig, register
from models.preprocess.report import qa_figure, qa_markdown

GRIDS = (128, 256, 512)


@dataclass
class PrepareConfig:
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    normalisation: NormalisationSpec = field(default_factory=NormalisationSpec)
    thresholds: qa.QAThresholds = field(default_factory=qa.QAThresholds)
    grids: tuple[int, ...] = GRIDS
    # Use the CT and MR liver segmentations (label maps): the metric is restricted to the CT
    # liver dilated by `mask_dilation_mm`, and Elastix also matches the two livers' distance maps.
    liver_mask: bool = False
    mask_dilation_mm: float = 5.0  # 20 mm let the still chest/back wall pull the sliding liver
    register_grid: int | None = None  # register on a coarser in-plane grid (tests); None = native


def _liver_mask(labels: sitk.Image, liver: int, dilation_mm: float) -> sitk.Image:
    mask = sitk.Cast(labels == liver, sitk.sitkUInt8)
    radius = [max(round(dilation_mm / s), 0) for s in labels.GetSpacing()]
    return sitk.BinaryDilate(mask, radius) if any(radius) else mask


def prepare_case(
    folder: Path, case_id: str, split: str | None, out: Path, cfg: PrepareConfig
) -> dict[str, Any]:
    """Register, check, normalise and write one case; returns its summary row."""
    case = read_case(folder, case_id, split)
    if cfg.register_grid:
        from models.preprocess.cases import downsample_case

        case = downsample_case(case, cfg.register_grid)
    fixed, moving = case.fixed(), case.moving()
    liver = None
    fmask = fixed_liver = moving_liver = None
    if case.labels is not None:
        liver = sitk.GetArrayFromImage(case.labels) == case.liver_label
        if not liver.any():
            liver = None
    if cfg.liver_mask:
        if case.labels is None or liver is None:
            raise InputError(f"{case_id}: --liver-mask needs a CT label map with a liver")
        if case.mr_labels is None or not np.any(
            sitk.GetArrayViewFromImage(case.mr_labels) == case.liver_label
        ):
            raise InputError(f"{case_id}: --liver-mask needs an MR label map with a liver")
        fmask = _liver_mask(case.labels, case.liver_label, cfg.mask_dilation_mm)
        fixed_liver = sitk.Cast(case.labels == case.liver_label, sitk.sitkUInt8)
        moving_liver = sitk.Cast(case.mr_labels == case.liver_label, sitk.sitkUInt8)
    res = register(
        fixed,
        moving,
        fixed_mask=fmask,
        fixed_liver=fixed_liver,
        moving_liver=moving_liver,
        config=cfg.registration,
        four_d_fields=case.four_d_arrays() if cfg.registration.method == "motion" else None,
    )
    rec = qa.QARecord(
        metric_before=res.metric_before,
        metric_after=res.metric_after,
        jacobian=qa.jacobian_stats(res.field, liver),
    )
    warped_labels = None
    if case.mr_labels is not None and liver is not None:
        mr_liver = sitk.GetArrayFromImage(case.mr_labels) == case.liver_label
        warped_labels = warp(case.mr_labels, res.field, interpolator="nearest")
        rec.dice_before = qa.dice(liver, mr_liver)
        rec.dice_after = qa.dice(liver, sitk.GetArrayFromImage(warped_labels) == case.liver_label)
    if case.landmarks is not None:
        p, q = case.landmarks
        rec.tre_before = qa.distance_stats(np.linalg.norm(q - p, axis=1))
        errors = qa.target_registration_error(res.field, p, q)
        rec.tre = qa.distance_stats(errors)
        rec.tre_landmarks_mm = [float(e) for e in errors]
    if case.true_field is not None and liver is not None:
        rec.field_error = qa.field_error(res.field, case.true_field, liver)
    qa.assess(rec, cfg.thresholds)

    norm = cfg.normalisation
    with atomic_directory(out / case_id) as tmp:
        ct_arr = sitk.GetArrayFromImage(fixed).astype(np.float32)
        before = sitk.GetArrayFromImage(
            sitk.Resample(moving, fixed, sitk.Transform(), sitk.sitkLinear, 0.0)
        )
        jac = qa.jacobian_determinant(res.field)
        y = int(np.argmax(liver.sum(axis=(0, 2)))) if liver is not None else ct_arr.shape[1] // 2
        sx, _, sz = fixed.GetSpacing()
        after = sitk.GetArrayFromImage(res.warped)
        qa_figure(tmp / "qa.png", ct_arr, before, after, jac, y, aspect=sz / sx)
        qa_markdown(tmp / "qa.md", case_id, res.method, res.seconds, rec)
        write_sitk_image(
            sitk.Cast(res.field, sitk.sitkVectorFloat32),
            tmp / "field_ct_to_mr.nii.gz",
            out / case_id / "field_ct_to_mr.nii.gz",
        )
        mr_scales = {}
        volumes: dict[str, tuple[sitk.Image, bool]] = {}
        for key, img in case.ct.items():
            volumes[key] = (_like(norm.ct(sitk.GetArrayFromImage(img)), img), False)
        body = body_mask(
            ct_arr, None if case.labels is None else sitk.GetArrayFromImage(case.labels)
        )
        for key, img in case.mr.items():
            w = sitk.GetArrayFromImage(warp(img, res.field, interpolator="bspline"))
            mr_scales[key] = norm.mr_scale(w, body)
            volumes[key] = (_like(norm.mr(w, mr_scales[key]), img), False)
        if case.labels is not None:
            volumes["labels"] = (case.labels, True)
        if warped_labels is not None:
            volumes["mr_labels_registered"] = (warped_labels, True)
        for n in cfg.grids:
            gdir = tmp / f"grid{n}"
            gdir.mkdir()
            for key, (img, is_label) in volumes.items():
                write_sitk_image(
                    downsample(img, n, label=is_label),
                    gdir / f"{key}.nii.gz",
                    out / case_id / gdir.name / f"{key}.nii.gz",
                )
        record = {
            "case": case_id,
            "split": split,
            "method": res.method,
            "seconds": res.seconds,
            "excluded": not rec.passed,
            "qa": rec.to_dict(),
            "mr_scales": mr_scales,
            "grids": list(cfg.grids),
        }
        atomic_write_json(tmp / "qa.json", record)
    return _row(record)


def _like(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(ref)
    return img


def _row(record: dict[str, Any]) -> dict[str, Any]:
    q = record["qa"]
    tre = q.get("tre") or {}
    return {
        "case": record["case"],
        "split": record["split"],
        "excluded": record["excluded"],
        "reasons": "; ".join(q["reasons"]),
        "tre_mean": tre.get("mean"),
        "tre_p95": tre.get("p95"),
        "dice_before": q.get("dice_before"),
        "dice_after": q.get("dice_after"),
        "jac_min": q["jacobian"]["min"],
        "folding_percent": q["jacobian"]["folding_percent"],
        "sdlogj": q["jacobian"]["sdlogj"],
        "seconds": record["seconds"],
    }


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def write_summary(out: Path, rows: list[dict[str, Any]]) -> None:
    """Cohort table as CSV and markdown, sorted by case id."""
    rows = sorted(rows, key=lambda r: r["case"])
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", buf.getvalue())
    head = list(rows[0])
    md = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    md += ["| " + " | ".join(_fmt(r[k]) for k in head) + " |" for r in rows]
    atomic_write_text(out / "summary.md", "# Registration summary\n\n" + "\n".join(md) + "\n")


def prepare_cohort(
    data: Path, out: Path, cfg: PrepareConfig, workers: int = 1
) -> list[dict[str, Any]]:
    """Prepare every case of `data` into `out`, resumable and in parallel across cases."""
    for n in cfg.grids:
        if n < 16:
            raise InputError(f"grid {n} is too small; use e.g. 128,256,512")
    cases = list_cases(data)
    ensure_writable_dir(out)
    remove_partials(out)
    atomic_write_json(out / "normalisation.json", cfg.normalisation.to_dict())
    import json

    rows = [
        _row(json.loads((out / cid / "qa.json").read_text()))
        for cid, _, _ in cases
        if (out / cid / "qa.json").is_file()
    ]
    todo = [c for c in cases if not (out / c[0] / "qa.json").is_file()]
    with progress() as bar:
        task = bar.add_task("prepare", total=len(cases), completed=len(cases) - len(todo))
        if workers <= 1:
            for cid, folder, split in todo:
                rows.append(prepare_case(folder, cid, split, out, cfg))
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = [pool.submit(prepare_case, f, cid, s, out, cfg) for cid, f, s in todo]
                for fut in as_completed(futs):
                    rows.append(fut.result())
                    bar.advance(task)
    write_summary(out, rows)
    return rows
