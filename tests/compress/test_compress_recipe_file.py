"""Recipes are validated strictly: the shipped ones parse, a typo anywhere is an InputError
naming the file and the key, stages must run in the canonical order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from compress.recipe import RECIPES, load_recipe
from edge_runtime.errors import InputError


@pytest.mark.parametrize("name", ["edge-cpu", "edge-cpu-steps", "hospital-gpu", "apple"])
def test_shipped_recipes_parse(name: str) -> None:
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    assert recipe.stages[-3:] == ("quantize", "export", "package")
    # the package's sampler: distill-steps' when there is one, else the sampler stage's
    sampler = recipe.distill_steps or recipe.sampler
    assert sampler is not None and sampler.steps <= 4


def test_edge_cpu_runs_the_teachers_own_sampler_at_one_step() -> None:
    recipe = load_recipe("edge-cpu")
    assert recipe.stages == ("sampler", "prune", "quantize", "export", "package")
    assert recipe.sampler.steps == 1 and recipe.prune.timesteps == "sampler"


def test_edge_cpu_is_int8_and_apple_is_coreml() -> None:
    assert load_recipe("edge-cpu").quantize.precision == "int8"
    assert load_recipe("hospital-gpu").quantize.precision == "fp16"
    apple = load_recipe("apple")
    assert "coreml" in apple.export.formats and apple.export.coreml_palettize_bits == 6


def _stage(doc: dict, name: str) -> dict:
    return next(st for st in doc["stages"] if name in st)[name]


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: _stage(d, "prune").update(ratoi=0.5), "ratoi"),
        (lambda d: d.update(gatse={}), "gatse"),
        (lambda d: d["stages"].insert(0, {"distil-steps": {}}), "distil-steps"),
        (lambda d: d["stages"].reverse(), "order"),
        (lambda d: _stage(d, "sampler").update(steps=8), "1..4"),
        (lambda d: _stage(d, "sampler").update(kind="euler"), "ddim or dpm_solver"),
        (lambda d: d["stages"].insert(2, {"distill-steps": {"steps": 8}}), "1..4"),
        (lambda d: _stage(d, "prune").update(timesteps="some"), "uniform or sampler"),
        (lambda d: _stage(d, "prune").update(full_res_ratio=1.5), "full_res_ratio"),
        (lambda d: d["stages"].pop(0), "needs a sampler stage"),
        (lambda d: _stage(d, "quantize").update(precision="int4"), "int8 or fp16"),
        (lambda d: _stage(d, "package").update(precisions=["fp32", "fp16"]), "precisions"),
        (lambda d: _stage(d, "package").update(precisions=["int8", "int8"]), "each once"),
    ],
)
def test_typos_and_bad_values_are_refused(tmp_path: Path, change, message: str) -> None:
    doc = yaml.safe_load((RECIPES / "edge-cpu.yaml").read_text())
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(InputError, match=message) as err:
        load_recipe(path)
    assert str(path) in str(err.value)
