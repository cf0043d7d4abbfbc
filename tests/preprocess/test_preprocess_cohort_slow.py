"""The issue's acceptance test: a >= 10-case held-out phantom cohort, Elastix and SyN side by side.

Writes benchmarks/results/registration-<date>.json with provenance. Slow (minutes per case).
"""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.atomic import atomic_write_json
from edge_runtime.machine import provenance
from models.phantom import write_cohort
from models.preprocess.prepare import PrepareConfig, prepare_cohort
from models.preprocess.registration import RegistrationConfig

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@pytest.mark.slow
def test_cohort_registration_accuracy(tmp_path):
    data = tmp_path / "cohort"
    write_cohort(10, 4242, data, grid=256, slices=48)
    table = {}
    for method in ("elastix", "syn"):
        cfg = PrepareConfig(registration=RegistrationConfig(method=method), grids=(128,))
        rows = prepare_cohort(data, tmp_path / method, cfg, workers=2)
        recs = [json.loads((tmp_path / method / r["case"] / "qa.json").read_text()) for r in rows]
        table[method] = {
            "tre_mean_mm": float(np.mean([r["qa"]["tre"]["mean"] for r in recs])),
            "tre_p95_mm": float(np.mean([r["qa"]["tre"]["p95"] for r in recs])),
            "dice_liver": float(np.mean([r["qa"]["dice_after"] for r in recs])),
            "jacobian_min": float(min(r["qa"]["jacobian"]["min"] for r in recs)),
            "sdlogj": float(np.mean([r["qa"]["jacobian"]["sdlogj"] for r in recs])),
            "excluded": int(sum(r["excluded"] for r in recs)),
            "cases": len(recs),
        }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    atomic_write_json(RESULTS / f"registration-{stamp}.json", provenance() | {"results": table})
    e = table["elastix"]
    assert e["tre_mean_mm"] <= 1.0 and e["tre_p95_mm"] <= 2.0
    assert e["dice_liver"] >= 0.95 and e["jacobian_min"] > 0
