"""Device page: providers, self-check of each package, quick benchmark and its history."""

from __future__ import annotations

import json

import onnxruntime as ort
from apphelpers import open_page

from apps import device_bench

PAGE = "pages/3_Device.py"


def test_device_page(app_env, edge_package) -> None:
    at = open_page(PAGE)
    providers = at.dataframe[0].value.set_index("profile")["available"].to_dict()
    assert providers["cpu"] == "yes"
    assert providers["cuda"] == (
        "yes" if "CUDAExecutionProvider" in ort.get_available_providers() else "no"
    )
    assert "No benchmark yet" in " ".join(c.value for c in at.caption)

    at.button(key=f"verify_{edge_package.name}").click().run()
    assert not at.exception and not at.error
    assert "self-check PASSED" in at.success[0].value
    cases = at.dataframe[1].value
    assert (cases["PSNR vs shipped output (dB)"] >= cases["needed (dB)"]).all()
    checks = at.dataframe[2].value
    assert set(checks["metric vs true MRI"]) >= {"psnr_db", "ssim"} and checks["passed"].all()

    for _ in range(2):
        at.button(key="dev_bench_run").click().run()
        assert not at.exception and not at.error
    latency = float(next(m.value for m in at.metric if m.label == "Latency per slice").split()[0])
    assert latency > 0
    history = json.loads(device_bench.results_path().read_text())
    assert str(device_bench.results_path()).startswith(str(app_env))
    assert len(history["results"]) == 2 and history["machine"]["cpu_count"]
    assert (
        history["results"][-1]["ms_per_slice"] == round(latency, 1)
        or abs(history["results"][-1]["ms_per_slice"] - latency) < 0.06
    )
    assert len(at.dataframe[-1].value) == 2  # the history table
    assert len(at.get("plotly_chart")) == 1
