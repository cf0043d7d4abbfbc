"""Anatomy facts: Murray's law, vessel radii, liver volume, lesion sizes, seeds."""

from __future__ import annotations

import numpy as np
from phantom_helpers import equivalent_diameter

from models.phantom import render_case
from models.phantom.render import LABELS


def _bifurcations(segments: list[dict]) -> list[tuple[float, list[float]]]:
    kids: dict[int, list[float]] = {}
    for s in segments:
        if s["parent"] is not None:
            kids.setdefault(s["parent"], []).append(s["radius_mm"])
    return [(segments[p]["radius_mm"], r) for p, r in kids.items()]


def test_murray_law_at_every_bifurcation(case256, clean_rich) -> None:
    for case in (case256, *clean_rich):
        bif = _bifurcations(case.vessel_segments)
        assert len(bif) >= 10
        for r0, children in bif:
            assert len(children) == 2
            assert abs(r0**3 - sum(r**3 for r in children)) <= 0.05 * r0**3


def test_vessel_radii_span_7mm_to_below_1mm(case256, clean_rich) -> None:
    for case in (case256, *clean_rich):
        for tree in ("portal", "hepatic"):
            radii = [s["radius_mm"] for s in case.vessel_segments if s["tree"] == tree]
            gens = {s["generation"] for s in case.vessel_segments if s["tree"] == tree}
            assert 6.0 <= max(radii) <= 8.0, (tree, max(radii))
            assert min(radii) < 1.0, (tree, min(radii))
            assert 3 <= max(gens) <= 5


def test_vessels_are_rendered_inside_the_liver(case256) -> None:
    c = case256
    for value in (1, 2):
        mask = c.vessels == value
        assert mask.sum() > 200
    # hepatic veins never leave the liver; the portal trunk enters it from the hilum
    hep = c.vessels == 2
    assert np.mean(c.labels[hep] == LABELS["liver"]) > 0.97


def test_liver_volume_in_range(case256, clean_rich, noisy_case) -> None:
    for case in (case256, noisy_case, *clean_rich):
        ml = np.count_nonzero(case.labels == LABELS["liver"]) * case.grid.voxel_volume / 1000
        assert 1200 <= ml <= 2000, ml
        assert abs(ml - case.meta["liver_volume_ml"]) < 1e-6


def test_lesion_diameters_match_table(case256, clean_rich) -> None:
    checked = 0
    for case in (case256, *clean_rich):
        vox = case.grid.voxel_volume
        one_voxel = equivalent_diameter(1, vox)
        for row in case.lesion_table:
            n = int(np.count_nonzero(case.lesions == row["id"]))
            assert n >= 1, f"lesion {row['id']} ({row['type']}) missing from the instance map"
            rendered = equivalent_diameter(n, vox)
            tol = max(0.10 * row["diameter_mm"], one_voxel)
            assert abs(rendered - row["diameter_mm"]) <= tol, (row, rendered, tol)
            checked += 1
    assert checked >= 10


def test_lesion_table_fields(clean_rich) -> None:
    case = clean_rich[0]
    ids = {r["id"] for r in case.lesion_table}
    assert ids == set(np.unique(case.lesions)) - {0}
    for r in case.lesion_table:
        assert r["pseudo"] == (r["type"] == "ap_shunt")
        assert (r["parent"] is not None) == (r["type"] == "satellite")
        if r["parent"] is not None:
            assert next(p for p in case.lesion_table if p["id"] == r["parent"])["type"] == "hcc"
        assert r["visible_in"]
        # the centroid (CT phase) lies inside the lesion's voxels' bounding box
        zyx = np.argwhere(case.lesions == r["id"])
        xyz = zyx[:, ::-1] * np.array(case.grid.spacing) + np.array(case.grid.origin)
        lo, hi = xyz.min(0) - np.array(case.grid.spacing), xyz.max(0) + np.array(case.grid.spacing)
        assert np.all(np.array(r["centroid_mm"]) >= lo) and np.all(np.array(r["centroid_mm"]) <= hi)


def test_two_seeds_give_different_patients() -> None:
    a = render_case(101, grid=64, slices=8, ssim=False)
    b = render_case(102, grid=64, slices=8, ssim=False)
    assert not np.array_equal(a.labels, b.labels)
    assert a.meta["liver_volume_ml"] != b.meta["liver_volume_ml"]
    assert a.vessel_segments != b.vessel_segments


def test_realisation_changes_only_the_acquisition() -> None:
    r0 = render_case(101, grid=64, slices=8, ssim=False, realisation=0)
    r1 = render_case(101, grid=64, slices=8, ssim=False, realisation=1)
    for name in ("labels", "mr_labels", "vessels", "lesions", "motion_ct_to_mr"):
        assert np.array_equal(getattr(r0, name), getattr(r1, name)), name
    assert r0.lesion_table == r1.lesion_table
    for key in ("mr_t2", "mr_t2_ctphase", "ct_portal"):
        assert not np.array_equal(r0.images[key], r1.images[key]), key
    for key in ("ct_clean_portal", "mr_clean_t2_ctphase"):
        assert np.array_equal(r0.extras[key], r1.extras[key]), key
