"""Recipes are validated strictly: the shipped ones parse, a typo anywhere is an InputError
naming the file and the key, stages must run in the canonical order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from compress.recipe import RECIPES, load_recipe
from edge_runtime.errors import InputError


@pytest.mark.parametrize("name", ["edge-cpu", "hospital-gpu", "apple"])
def test_shipped_recipes_parse(name: str) -> None:
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    assert recipe.stages == ("prune", "distill-steps", "quantize", "export", "package")
    assert recipe.distill_steps is not None and recipe.distill_steps.steps <= 4


def test_edge_cpu_is_int8_and_apple_is_coreml() -> None:
    assert load_recipe("edge-cpu").quantize.precision == "int8"
    assert load_recipe("hospital-gpu").quantize.precision == "fp16"
    apple = load_recipe("apple")
    assert "coreml" in apple.export.formats and apple.export.coreml_palettize_bits == 6


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["stages"][0]["prune"].update(ratoi=0.5), "ratoi"),
        (lambda d: d.update(gatse={}), "gatse"),
        (lambda d: d["stages"].insert(0, {"distil-steps": {}}), "distil-steps"),
        (lambda d: d["stages"].reverse(), "order"),
        (lambda d: d["stages"][1]["distill-steps"].update(steps=8), "1..4"),
        (lambda d: d["stages"][2]["quantize"].update(precision="int4"), "int8 or fp16"),
    ],
)
def test_typos_and_bad_values_are_refused(tmp_path: Path, change, message: str) -> None:
    doc = yaml.safe_load((RECIPES / "edge-cpu.yaml").read_text())
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(InputError, match=message) as err:
        load_recipe(path)
    assert str(path) in str(err.value)
