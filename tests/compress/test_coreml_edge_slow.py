"""The edge architecture converts to CoreML (mlprogram, fp16, 6-bit palettised weights), as the
`apple` recipe's export does. The network is the committed small teacher pruned the way the
`edge-cpu` recipe prunes it (magnitude, the recipe's ratios), so its layers and channel counts
are the shipped package's; the repair that follows pruning changes weights, not structure, and is left
out to keep the test minutes long. Core ML itself runs only on macOS, so numbers are checked
there (`checked`); here the conversion, the palettisation and the saved mlpackages are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compress.prune import prune_model
from compress.recipe import load_recipe
from compress.stage_io import teacher_student
from compress.student import count_params

TEACHER = Path(__file__).resolve().parents[2] / "models" / "teachers" / "aphidiff-small-t2"


@pytest.mark.slow
def test_edge_architecture_converts_to_coreml(tmp_path: Path) -> None:
    pytest.importorskip("coremltools")
    from compress.export_formats import to_coreml

    student, _ = teacher_student(TEACHER)
    full = count_params(student.model)
    prune = load_recipe("edge-cpu").prune
    assert prune is not None and prune.flops is None
    prune_model(student.model, prune.ratio, full_res_ratio=prune.full_res_ratio)
    # Half the channels or fewer: a quarter of the weights or fewer (plus fixed layers).
    assert count_params(student.model) < full / 3
    grid = student.mc.data.grid
    ct = np.zeros((1, student.mc.data.ct_channels, grid, grid), np.float32)
    info = to_coreml(student.model, student.mc, ct, tmp_path / "coreml", palettize_bits=6)
    for role in ("encoder", "denoiser"):
        package = tmp_path / "coreml" / f"{role}.mlpackage"
        assert (package / "Manifest.json").is_file()
        assert any(package.rglob("weight.bin")), role
    fp32_bytes = 4 * count_params(student.model)
    # fp16 weights would be 0.5 of fp32; 6-bit palettes are 0.19 of the tensors palettised, plus
    # the small ones coremltools leaves in fp16 and the mlpackage's metadata (measured 0.28)
    assert 0 < info["bytes"] < 0.35 * fp32_bytes
