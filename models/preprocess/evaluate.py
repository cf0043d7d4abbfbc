"""Cohort evaluation against the phantom's truth: registration methods side by side, and the
respiratory motion model (phase ICC, compensation error, B-spline fidelity).

Used by the `slow` acceptance test and to write `benchmarks/results/registration-*.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from edge_runtime.atomic import atomic_write_json, atomic_write_text, ensure_writable_dir
from models.preprocess import qa
from models.preprocess.cases import list_cases, read_case
from models.preprocess.motion import BSplineField, MotionModel, estimate_scores, si_amplitude
from models.preprocess.prepare import PrepareConfig, prepare_cohort
from models.preprocess.registration import ElastixSettings, RegistrationConfig, SynSettings

HELD_OUT_SEED = 5000  # the held-out cohort is seeds 5000..5009; tuning uses others (`tune`)
LIVER_SUFFIX = "+liver"  # `--methods elastix+liver`: with the CT and MR liver segmentations


def write_4dct_cohort(
    n: int,
    seed: int,
    out: Path,
    grid: int = 128,
    slices: int = 48,
    four_dct: bool = True,
    split: str = "test",
) -> Path:
    """n phantom cases with their 4D-CT, seeds seed..seed+n-1, all in `split`.

    `four_dct=False` (tuning cohorts, `models.preprocess.tune`) leaves the 4D-CT out.
    """
    from models.phantom import render_case, write_case

    out = ensure_writable_dir(Path(out))
    cases = []
    for i in range(n):
        cid = f"case-{i:04d}"
        if not (out / cid / "case.json").is_file():
            write_case(
                render_case(seed + i, grid=grid, slices=slices, four_dct=four_dct, ssim=False),
                out / cid,
            )
        cases.append({"id": cid, "seed": seed + i, "split": split})
    atomic_write_json(
        out / "cohort.json",
        {
            "format": "hidiff-phantom-cohort/1",
            "seed": seed,
            "grid": grid,
            "slices": slices,
            "cases": cases,
        },
    )
    return out


def registration_table(
    data: Path,
    out: Path,
    method: str,
    workers: int = 1,
    threads: int = 2,
    params_dir: Path | None = None,
) -> dict[str, Any]:
    """Run `prepare` with one method and summarise its QA records over the cohort.

    `method` may end in "+liver": `prepare --liver-mask`, i.e. the CT and MR liver label maps
    are inputs of the registration (and liver Dice is then no longer an independent check).
    """
    base = method.removesuffix(LIVER_SUFFIX)
    elastix = ElastixSettings(threads=threads)
    if params_dir is not None:
        elastix.params_dir = Path(params_dir)
    reg = RegistrationConfig(method=base, elastix=elastix, syn=SynSettings(threads=threads))
    cfg = PrepareConfig(registration=reg, grids=(64,), liver_mask=method.endswith(LIVER_SUFFIX))
    rows = prepare_cohort(data, out / method, cfg, workers=workers)
    recs = [json.loads((out / method / r["case"] / "qa.json").read_text()) for r in rows]
    recs.sort(key=lambda r: r["case"])
    q = [r["qa"] for r in recs]
    folders = {cid: folder for cid, folder, _ in list_cases(data)}
    per_landmark = [landmark_errors(r, folders[r["case"]], out / method) for r in recs]
    pooled = np.concatenate(per_landmark)
    return {
        "cases": len(q),
        "inputs": "CT, MR and both liver label maps" if cfg.liver_mask else "CT and MR images",
        "tre_before_mean_mm": float(np.mean([x["tre_before"]["mean"] for x in q])),
        "tre_mean_mm": float(np.mean([x["tre"]["mean"] for x in q])),
        "tre_p95_mm_mean_over_cases": float(np.mean([x["tre"]["p95"] for x in q])),
        "tre_p95_mm_worst_case": float(np.max([x["tre"]["p95"] for x in q])),
        # every landmark of every case together (cases weigh by their number of landmarks)
        "tre_p95_mm_pooled": float(np.percentile(pooled, 95)),
        "landmarks": int(pooled.size),
        "tre_max_mm": float(np.max([x["tre"]["max"] for x in q])),
        "field_error_mean_mm": float(np.mean([x["field_error"]["mean"] for x in q])),
        "dice_liver_before": float(np.mean([x["dice_before"] for x in q])),
        "dice_liver_after": float(np.mean([x["dice_after"] for x in q])),
        "jacobian_min": float(np.min([x["jacobian"]["min"] for x in q])),
        "jacobian_max": float(np.max([x["jacobian"]["max"] for x in q])),
        "folding_percent_max": float(np.max([x["jacobian"]["folding_percent"] for x in q])),
        "sdlogj_mean": float(np.mean([x["jacobian"]["sdlogj"] for x in q])),
        "excluded": int(sum(r["excluded"] for r in recs)),
        "seconds_mean": float(np.mean([r["seconds"] for r in recs])),
        "per_case": [
            {
                "case": r["case"],
                "tre_mean": r["qa"]["tre"]["mean"],
                "tre_p95": r["qa"]["tre"]["p95"],
                "landmarks": r["qa"]["tre"]["n"],
                "dice": r["qa"]["dice_after"],
                "excluded": r["excluded"],
                "reasons": r["qa"]["reasons"],
            }
            for r in recs
        ],
    }


def landmark_errors(record: dict[str, Any], folder: Path, out: Path) -> np.ndarray:
    """The TRE (mm) of each landmark of one prepared case.

    `qa.json` carries them (`tre_landmarks_mm`); a record written before it did is measured
    again from the case's saved field and its landmarks, so an old work folder still pools.
    """
    errors = record["qa"].get("tre_landmarks_mm")
    if errors is None:
        p, q = read_case(folder, record["case"]).landmarks
        disp = sitk.ReadImage(str(out / record["case"] / "field_ct_to_mr.nii.gz"))
        errors = qa.target_registration_error(sitk.Cast(disp, sitk.sitkVectorFloat64), p, q)
    return np.asarray(errors, dtype=np.float64)


COLUMNS = (
    ("TRE mean (mm)", "tre_mean_mm"),
    ("p95 mean over cases", "tre_p95_mm_mean_over_cases"),
    ("p95 pooled", "tre_p95_mm_pooled"),
    ("p95 worst case", "tre_p95_mm_worst_case"),
    ("TRE max", "tre_max_mm"),
    ("liver Dice", "dice_liver_after"),
    ("min J", "jacobian_min"),
    ("SDlogJ", "sdlogj_mean"),
    ("excluded", "excluded"),
    ("s/case", "seconds_mean"),
)


def summary_table(registration: dict[str, dict[str, Any]]) -> str:
    """The methods side by side as a markdown table (the docs' "Measured" table)."""
    lines = [
        "| method | " + " | ".join(h for h, _ in COLUMNS) + " |",
        "| --- |" + " --- |" * len(COLUMNS),
    ]
    for method, r in registration.items():
        cells = []
        for _, key in COLUMNS:
            v = r.get(key)
            cells.append("" if v is None else f"{v:.0f}" if key == "seconds_mean" else f"{v:.3g}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def motion_table(data: Path, bspline_mm: float = 10.0) -> dict[str, Any]:
    """Leave-one-phase-out phase estimate and compensation error per case, pooled ICC."""
    true_si, est_si, max_err, bs_err = [], [], [], []
    for _, folder, _ in list_cases(data):
        ref = sitk.ReadImage(str(folder / "ct_portal.nii.gz"))
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
        liver = labels == json.loads((folder / "case.json").read_text())["labels"]["liver"]
        fields = [
            sitk.GetArrayFromImage(
                sitk.ReadImage(str(folder / f"motion_ct4d_phase{k:02d}.nii.gz"))
            ).astype(np.float64)
            for k in range(10)
        ]
        for k in range(10):
            model = MotionModel.fit([f for j, f in enumerate(fields) if j != k])
            scan = sitk.ReadImage(str(folder / f"ct4d_phase{k:02d}.nii.gz"))
            s = estimate_scores(model, scan, ref)
            pc = np.where(liver, np.abs(model.components[0][..., 2]), -1.0)
            idx = np.unravel_index(int(np.argmax(pc)), pc.shape)
            true_si.append(float(fields[k][idx][2]))
            est_si.append(si_amplitude(model, s, liver))
            max_err.append(float(np.linalg.norm(model.field(s) - fields[k], axis=-1)[liver].max()))
            dense = BSplineField.fit(fields[k], ref, bspline_mm).dense(ref)
            bs_err.append(float(np.linalg.norm(dense - fields[k], axis=-1)[liver].max()))
    return {
        "phases": len(true_si),
        "phase_icc_a1_si_mm": qa.icc_a1(np.array(true_si), np.array(est_si)),
        "si_abs_error_mean_mm": float(np.mean(np.abs(np.array(true_si) - np.array(est_si)))),
        "compensation_max_error_mm": float(np.max(max_err)),
        "compensation_max_error_mean_over_phases_mm": float(np.mean(max_err)),
        "bspline_spacing_mm": bspline_mm,
        "bspline_vs_dense_max_error_mm": float(np.max(bs_err)),
    }


def _cached(path: Path, compute) -> dict[str, Any]:
    """`compute()`'s result, kept in `path` so that an interrupted evaluation resumes."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    atomic_write_json(path, value)
    return value


def main(argv: list[str] | None = None) -> Path:
    """`python -m models.preprocess.evaluate --grid 128 --methods motion,syn,elastix --work DIR`."""
    import argparse
    import datetime as dt
    import sys

    from edge_runtime.machine import provenance

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid", type=int, default=128)
    ap.add_argument("--slices", type=int, default=48)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED)  # never used while tuning
    ap.add_argument(
        "--methods",
        default="motion,syn,elastix",
        help="comma-separated; a method ending in +liver also uses the CT and MR liver labels",
    )
    ap.add_argument("--workers", type=int, default=1, help="cases registered in parallel")
    ap.add_argument("--threads", type=int, default=2, help="threads per Elastix/ANTs run")
    ap.add_argument(
        "--params-dir", type=Path, default=None, help="Elastix maps (default: the package's)"
    )
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    data = write_4dct_cohort(args.n, args.seed, args.work / "cohort", args.grid, args.slices)
    res: dict[str, Any] = {
        "cohort": {
            "n": args.n,
            "seeds": f"{args.seed}..{args.seed + args.n - 1}",
            "grid": args.grid,
            "slices": args.slices,
            "split": "test (held out: never used while tuning)",
        },
        "motion_model": _cached(args.work / "motion_model.json", lambda: motion_table(data)),
        "registration": {},
    }
    for method in args.methods.split(","):
        res["registration"][method] = registration_table(
            data,
            args.work / "out",
            method,
            workers=args.workers,
            threads=args.threads,
            params_dir=args.params_dir,
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = args.results / f"registration-{args.grid}-{stamp}.json"
    argv_used = [
        "python",
        "-m",
        "models.preprocess.evaluate",
        *(sys.argv[1:] if argv is None else argv),
    ]
    atomic_write_json(out, provenance(argv_used) | res)
    table = summary_table(res["registration"])
    atomic_write_text(args.work / "summary.md", table)
    print(table)
    print(out)
    return out


if __name__ == "__main__":
    main()
