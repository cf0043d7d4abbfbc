"""The comparison driver (models/training/compare.py) and its table: same settings for every run,
every ablation present, mixed run folders refused, and the verdict read the right way round."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from edge_runtime.errors import InputError
from models.aphidiff.config import Ablation
from models.training.compare import VARIANTS, Plan, _check_run
from models.training.comparison_table import comparison_markdown, verdict


def _plan(tmp_path: Path) -> Plan:
    return Plan(
        "tiny", tmp_path / "train", "", tmp_path / "test", "", tmp_path / "work",
        tmp_path / "out", 30, 4, 0, ("t2",), 1, None,
    )  # fmt: skip


def test_variants_cover_baselines_and_every_ablation() -> None:
    names = [v.name for v in VARIANTS]
    assert names[0] == "ap-hidiff"  # the reference of the paired tests
    assert len(set(names)) == len(names)
    assert {v.model for v in VARIANTS} == {"ap-hidiff", "ddpm", "pix2pix"}
    parts = {v.ablate for v in VARIANTS if v.ablate}
    assert parts == {f.name for f in dataclasses.fields(Ablation)}


def test_every_run_shares_steps_batch_seed_and_data(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    shared = []
    for v in VARIANTS:
        args = plan.train_args(v)
        for flag in ("--model", "--out", "--ablate"):
            if flag in args:
                i = args.index(flag)
                del args[i : i + 2]
        shared.append(args)
    assert all(a == shared[0] for a in shared)
    bench = plan.bench_args()
    assert bench.index(f"ap-hidiff={plan.pred_dir(VARIANTS[0])}") < bench.index(
        f"ddpm={plan.pred_dir(VARIANTS[1])}"
    )


def test_a_run_with_other_settings_is_refused(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    run = plan.run_dir(VARIANTS[0])
    assert _check_run(plan, VARIANTS[0]) == "new"
    run.mkdir(parents=True)
    train = {"steps": 30, "batch_size": 4, "seed": 0, "sequences": ["t2"]}
    (run / "config.json").write_text(json.dumps({"train": train}))
    assert _check_run(plan, VARIANTS[0]) == "new"
    (run / "latest.json").write_text("{}")
    assert _check_run(plan, VARIANTS[0]) == "resume"
    (run / "summary.json").write_text("{}")
    assert _check_run(plan, VARIANTS[0]) == "done"
    (run / "config.json").write_text(json.dumps({"train": {**train, "steps": 31}}))
    with pytest.raises(InputError, match="trained with"):
        _check_run(plan, VARIANTS[0])


def _comparison(b: str, metric: str, mean_a: float, mean_b: float, p: float, higher: bool):
    return {
        "metric": metric, "a": "ap-hidiff", "b": b, "n": 6, "mean_a": mean_a, "mean_b": mean_b,
        "mean_diff": mean_b - mean_a, "t_p": p, "wilcoxon_p": p, "higher_is_better": higher,
        "status": "ok",
    }  # fmt: skip


def _summary() -> dict:
    detection = {"<3mm": {"visible_in_truth": 4, "detected": 2, "miss_rate": 0.5}}
    result = {
        "by_sequence": {"t2": {"ssim": {"mean": 0.5, "sd": 0.1}}},
        "lesion_detection": detection,
        "hallucination": {"shunts": {"regions": 1, "hallucinated": 0}},
        "ffbd_pooled": {"t2": 1.0},
    }
    worse = {**result, "lesion_detection": {"<3mm": {**detection["<3mm"], "miss_rate": 0.75}}}
    return {
        "truth": "cohort",
        "cases": [f"case-{i}" for i in range(6)],
        "sequences": ["t2"],
        "reference_method": "ap-hidiff",
        "results": {"ap-hidiff": result, "ddpm": worse, "pix2pix": result},
        "comparisons": [
            _comparison("ddpm", "ssim", 0.5, 0.4, 0.01, True),  # ours higher, significant
            _comparison("ddpm", "vessel_cldice", 0.5, 0.6, 0.01, True),  # ours lower
            _comparison("pix2pix", "ssim", 0.5, 0.45, 0.2, True),  # higher, not significant
            _comparison("pix2pix", "vessel_cldice", 0.5, 0.4, 0.03, True),
        ],
    }


def test_verdict_reads_direction_and_significance() -> None:
    lines = verdict(_summary())
    ssim_ddpm, cl_ddpm, miss_ddpm, ssim_p2p, cl_p2p, miss_p2p = lines
    assert "BEATS ddpm" in ssim_ddpm
    assert "does NOT beat ddpm" in cl_ddpm
    assert "is lower" in miss_ddpm and "NOT" not in miss_ddpm
    assert "does NOT beat pix2pix" in ssim_p2p
    assert "BEATS pix2pix" in cl_p2p
    assert "is NOT lower" in miss_p2p  # equal miss rates are not a win


def test_markdown_lists_every_method_and_run() -> None:
    record = {
        "plan": {"preset": "tiny", "steps": 30, "batch_size": 4, "seed": 0, "train_data": "c",
                 "predict_steps": None},
        "training": {"ap-hidiff": {"steps": 30, "wall_s": 1.0, "images_per_s": 2.0,
                                   "peak_memory_mib": 3.0, "final_loss": 0.1}},
    }  # fmt: skip
    md = comparison_markdown(_summary(), record)
    for method in ("ap-hidiff", "ddpm", "pix2pix"):
        assert f"| {method} |" in md
    assert "2/4" in md  # < 3 mm lesions missed / visible
    assert "6 patients" in md
    assert "Not run" not in md
    assert "Not run (out of time on the shared CPU): no-gate." in comparison_markdown(
        _summary(), {**record, "not_run": ["no-gate"]}
    )
