"""One prediction against its truth: every metric of the harness, as rows for the report.

The truth side of a case and sequence (masks, vessel segmentation, lesion probes, region
surfaces, features) is prepared once in `prepare_truth` and reused for every method, so all
methods are judged against exactly the same reference and the work is not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.accuracy.cohort import CohortConfig, TruthCase
from benchmarks.accuracy.distribution import (
    FeatureConfig,
    frechet_distance,
    intensity_scale,
    volume_features,
)
from benchmarks.accuracy.geometry import (
    GeometryConfig,
    RegionReference,
    boundary_error,
    region_parts,
    region_reference,
)
from benchmarks.accuracy.lesion_typing import TypingConfig, lesion_features
from benchmarks.accuracy.lesions import (
    LesionConfig,
    Probe,
    bin_names,
    control_probes,
    judge_probe,
    lesion_probes,
)
from benchmarks.accuracy.vessels import (
    VesselConfig,
    VesselReference,
    betti0_error,
    cldice,
    component_count,
    segment_vessels,
    vessel_reference,
)
from benchmarks.stats import StatsConfig
from edge_runtime import metrics as M


@dataclass(frozen=True)
class AccuracyConfig:
    """Every number of the accuracy harness; the summary JSON records it."""

    ssim: M.SSIMConfig = field(default_factory=M.SSIMConfig)
    msssim: M.MSSSIMConfig = field(default_factory=M.MSSSIMConfig)
    vessels: VesselConfig = field(default_factory=VesselConfig)
    lesions: LesionConfig = field(default_factory=LesionConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    typing: TypingConfig = field(default_factory=TypingConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    cohort: CohortConfig = field(default_factory=CohortConfig)


@dataclass
class TruthPrep:
    """The truth of one case and sequence, prepared once for all methods."""

    case_id: str
    seq: str
    truth: np.ndarray
    spacing: tuple[float, ...]
    data_range: float
    value_range: tuple[float, float]
    body: np.ndarray
    liver: np.ndarray
    liver_slices: np.ndarray
    tumour: np.ndarray
    background: np.ndarray
    ssim_ceiling: float | None
    vessel_ref: VesselReference | None
    vessel_truth: np.ndarray | None
    probes: list[Probe]
    skipped: list[dict[str, Any]]
    regions: dict[str, RegionReference]
    scale: tuple[float, float]
    features: np.ndarray
    typing_truth: dict[str, np.ndarray]
    lesion_types: dict[str, str]


def _typing_vector(
    image: np.ndarray, probe: Probe, liver: np.ndarray, spacing: tuple[float, ...]
) -> np.ndarray:
    """Per-sequence typing features plus log volume (mm^3, from the true mask)."""
    volume = float(probe.region.sum()) * float(np.prod(spacing))
    return np.append(lesion_features(image, probe.region, probe.ring, liver), np.log(volume))


def _pseudo_ids(case: TruthCase) -> set[int]:
    return {int(r["id"]) for r in case.lesion_records if r.get("pseudo")}


def prepare_truth(case: TruthCase, seq: str, cfg: AccuracyConfig = AccuracyConfig()) -> TruthPrep:
    """Masks, reference segmentations, probes and features of the truth of (case, seq)."""
    truth = case.truth(seq)
    spacing = case.spacing
    lesions = case.lesions
    vessels = case.vessels
    liver = case.liver
    body = case.body
    pseudo = _pseudo_ids(case)
    real_lesions = (lesions > 0) & ~np.isin(lesions, list(pseudo))
    lo, hi = float(truth.min()), float(truth.max())

    vref = vtruth = None
    if (vessels[liver] > 0).any():
        vref = vessel_reference(truth, liver, vessels, cfg.vessels)
        vtruth = segment_vessels(None, vref, cfg.vessels)

    probes, skipped = lesion_probes(
        lesions, case.lesion_records, liver, vessels, spacing, cfg.lesions
    )
    probes += control_probes(liver, lesions, vessels, spacing, cfg.lesions)

    regions = {}
    for name, parts in region_parts(
        case.labels, case.label_table, vessels, lesions, pseudo
    ).items():
        ref = region_reference(name, parts, truth, spacing, cfg.geometry)
        if ref is not None:
            regions[name] = ref

    scale = intensity_scale(truth, body)
    feats = volume_features(truth, body, liver, scale, cfg.features)
    typing_truth = {
        p.ident: _typing_vector(truth, p, liver, spacing) for p in probes if p.kind == "lesion"
    }
    return TruthPrep(
        case_id=case.case_id,
        seq=seq,
        truth=truth,
        spacing=spacing,
        data_range=hi - lo if hi > lo else 1.0,
        value_range=(lo, hi if hi > lo else lo + 1.0),
        body=body,
        liver=liver,
        liver_slices=liver.any(axis=(1, 2)),
        tumour=real_lesions,
        background=liver & ~(lesions > 0) & ~(vessels > 0),
        ssim_ceiling=case.ssim_ceiling(seq),
        vessel_ref=vref,
        vessel_truth=vtruth,
        probes=probes,
        skipped=skipped,
        regions=regions,
        scale=scale,
        features=feats,
        typing_truth=typing_truth,
        lesion_types={p.ident: p.lesion_type for p in probes if p.kind == "lesion"},
    )


@dataclass
class PredictionResult:
    """Everything measured on one prediction of one case and sequence."""

    row: dict[str, Any]
    lesion_rows: list[dict[str, Any]]
    region_rows: list[dict[str, Any]]
    features: np.ndarray
    typing_pred: dict[str, np.ndarray]


def evaluate_prediction(
    pred: np.ndarray, tp: TruthPrep, cfg: AccuracyConfig = AccuracyConfig()
) -> PredictionResult:
    """All metrics of one predicted volume against the prepared truth."""
    truth = tp.truth
    row: dict[str, Any] = {"case": tp.case_id, "sequence": tp.seq}
    row["mae"] = M.mae(pred, truth, tp.body)
    row["psnr"] = M.psnr(pred, truth, tp.data_range, tp.body)
    row["ssim"] = float(
        np.mean(M.slice_ssim(pred, truth, tp.data_range, tp.liver_slices, cfg.ssim))
    )
    row["ssim_ceiling"] = tp.ssim_ceiling if tp.ssim_ceiling is not None else float("nan")
    row["ssim_3d"] = M.ssim(pred, truth, tp.data_range, cfg.ssim)
    row["ssim_liver_masked"] = M.masked_ssim(pred, truth, tp.liver, tp.data_range, cfg.ssim)
    row["ssim_liver_masked_2d"] = M.masked_slice_ssim(
        pred, truth, tp.liver, tp.data_range, cfg.ssim
    )
    smap = M.ssim_map(pred, truth, tp.data_range, cfg.ssim)
    row["roi_ssim_tumour"] = float(smap[tp.tumour].mean()) if tp.tumour.any() else float("nan")
    row["roi_ssim_background"] = float(smap[tp.background].mean())
    ms_whole, ms_body = M.ms_ssim_3d(pred, truth, tp.value_range, tp.body, cfg.msssim)
    row["ms_ssim"] = ms_whole
    row["ms_ssim_body"] = ms_body

    pred_feats = volume_features(pred, tp.body, tp.liver, tp.scale, cfg.features)
    row["ffbd"] = frechet_distance(pred_feats, tp.features)

    if tp.vessel_ref is not None and tp.vessel_truth is not None:
        vpred = segment_vessels(pred, tp.vessel_ref, cfg.vessels)
        row["vessel_cldice"] = cldice(vpred, tp.vessel_truth)
        row["betti0_pred"] = component_count(vpred)
        row["betti0_truth"] = component_count(tp.vessel_truth)
        row["betti0_error"] = betti0_error(vpred, tp.vessel_truth)
    else:
        row.update(
            vessel_cldice=float("nan"),
            betti0_pred=float("nan"),
            betti0_truth=float("nan"),
            betti0_error=float("nan"),
        )

    lesion_rows = []
    for probe in tp.probes:
        r = judge_probe(probe, pred, truth, cfg.lesions)
        lesion_rows.append({"case": tp.case_id, "sequence": tp.seq, **r})
    for s in tp.skipped:
        lesion_rows.append({"case": tp.case_id, "sequence": tp.seq, **s, "evaluated": False})
    real = [r for r in lesion_rows if r.get("kind") == "lesion" and r.get("evaluated", True)]
    for b in bin_names(cfg.lesions):
        vis = [r for r in real if r["size_bin"] == b and r["visible_in_truth"]]
        det = [r for r in vis if r["detected"]]
        row[f"lesions_visible_{b}"] = len(vis)
        row[f"lesions_detected_{b}"] = len(det)
        row[f"sensitivity_{b}"] = len(det) / len(vis) if vis else float("nan")
    row["lesion_cnr_truth"] = (
        float(np.mean([abs(r["cnr_truth"]) for r in real])) if real else float("nan")
    )
    row["lesion_cnr_pred"] = (
        float(np.mean([abs(r["cnr_pred"]) for r in real])) if real else float("nan")
    )
    for kind in ("shunt", "control"):
        rows = [r for r in lesion_rows if r.get("kind") == kind and r.get("evaluated", True)]
        row[f"{kind}s"] = len(rows)
        row[f"{kind}_hallucinations"] = sum(bool(r["hallucinated"]) for r in rows)

    region_rows = []
    for name, ref in tp.regions.items():
        err = boundary_error(ref, pred, tp.spacing, cfg.geometry)
        region_rows.append({"case": tp.case_id, "sequence": tp.seq, "region": name, **err})
        row[f"hd95_{name}_mm"] = err["hd95_mm"]

    typing_pred = {
        p.ident: _typing_vector(pred, p, tp.liver, tp.spacing)
        for p in tp.probes
        if p.kind == "lesion"
    }
    return PredictionResult(row, lesion_rows, region_rows, pred_feats, typing_pred)
