"""Execution-provider selection: real CPU sessions, and the logic for providers this Linux CPU
machine cannot run (CUDA, TensorRT, OpenVINO, QNN, CoreML, DirectML), proven by letting
onnxruntime really fall back to the CPU and catching it. Those providers are untested on real
hardware here (docs/runtime.md)."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest
from package_factory import TinyModel, denoiser_graph, encoder_graph, numpy_encoder

from edge_runtime.errors import HidiffError
from edge_runtime.providers import (
    PROFILES,
    RuntimeOptions,
    SessionRunner,
    choose_precision,
    create_session,
    machine_threads,
    parse_provider,
    provider_list,
    resolve_profile,
)

CPU = "CPUExecutionProvider"
SPEC = TinyModel()


@pytest.fixture(scope="module")
def encoder_bytes() -> bytes:
    return encoder_graph(SPEC).SerializeToString()


def ct_batch(n: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, SPEC.in_channels, SPEC.height, SPEC.width)).astype(np.float32)


# -- choosing a profile ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        ([CPU], "cpu"),
        (["CUDAExecutionProvider", CPU], "cuda"),
        (["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU], "cuda"),
        (["OpenVINOExecutionProvider", CPU], "openvino"),
        (["QNNExecutionProvider", CPU], "qnn"),
        (["CoreMLExecutionProvider", CPU], "coreml"),
        (["DmlExecutionProvider", CPU], "directml"),
        (["AzureExecutionProvider", CPU], "cpu"),
        (["DmlExecutionProvider", "CUDAExecutionProvider", CPU], "cuda"),
    ],
)
def test_auto_picks_the_best_available_profile(available, expected) -> None:
    assert resolve_profile("auto", available).name == expected


@pytest.mark.parametrize("name", ["cuda", "openvino", "qnn", "coreml", "directml"])
def test_named_provider_not_in_this_onnxruntime_is_refused_with_what_is_missing(name) -> None:
    with pytest.raises(HidiffError) as exc:
        resolve_profile(name, [CPU, "AzureExecutionProvider"])
    msg = str(exc.value)
    assert f"provider {name!r} asked for" in msg
    assert PROFILES[name].needs in msg


def test_cuda_profile_puts_tensorrt_first_with_fp16_and_an_engine_cache(tmp_path) -> None:
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
    got = provider_list(PROFILES["cuda"], RuntimeOptions(cache_dir=tmp_path), avail)
    assert [ep for ep, _ in got] == avail
    trt = got[0][1]
    assert trt["trt_fp16_enable"] is True
    assert trt["trt_engine_cache_path"] == str(tmp_path / "trt")
    # without TensorRT the CUDA provider leads; the CPU always closes the list
    got = provider_list(PROFILES["cuda"], RuntimeOptions(), ["CUDAExecutionProvider", CPU])
    assert [ep for ep, _ in got] == ["CUDAExecutionProvider", CPU]
    assert PROFILES["cuda"].io_binding and PROFILES["cuda"].device == "cuda"


def test_openvino_device_suffix_reaches_the_provider_options() -> None:
    assert parse_provider("openvino:NPU") == ("openvino", "NPU")
    got = provider_list(
        PROFILES["openvino"], RuntimeOptions(), ["OpenVINOExecutionProvider", CPU], "NPU"
    )
    assert got[0] == ("OpenVINOExecutionProvider", {"device_type": "NPU"})
    with pytest.raises(HidiffError, match="no device suffix"):
        parse_provider("cuda:1")
    with pytest.raises(HidiffError, match="unknown provider 'tpu'"):
        parse_provider("tpu")


def test_precision_follows_the_profile_unless_asked() -> None:
    assert choose_precision(PROFILES["cuda"], ("fp32", "fp16")) == "fp16"
    assert choose_precision(PROFILES["cpu"], ("fp32", "fp16")) == "fp32"
    assert choose_precision(PROFILES["qnn"], ("fp32", "int8")) == "int8"
    assert choose_precision(PROFILES["cuda"], ("fp32",)) == "fp32"
    assert choose_precision(PROFILES["cpu"], ("fp32", "fp16"), "fp16") == "fp16"
    with pytest.raises(HidiffError, match="ships only"):
        choose_precision(PROFILES["cpu"], ("fp32",), "int8")


# -- real sessions on this CPU -------------------------------------------------------------------


def test_cpu_session_threads_optimisation_and_result(tmp_path, encoder_bytes) -> None:
    h = create_session(encoder_bytes, "cpu", RuntimeOptions(cache_dir=tmp_path))
    assert h.provider == CPU and h.profile.name == "cpu"
    so = h.session.get_session_options()
    assert so.intra_op_num_threads == machine_threads()
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    ct = ct_batch()
    out = SessionRunner(h).run({"ct": ct})["cond"]
    np.testing.assert_allclose(out, numpy_encoder(SPEC, ct), atol=1e-5)


def test_cpu_optimised_model_is_cached_and_reused(tmp_path, encoder_bytes) -> None:
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", intra_op_threads=1)
    first = create_session(encoder_bytes, "cpu", opts)
    assert not first.from_cache
    assert first.cache_path is not None and first.cache_path.is_file()
    assert not [p for p in first.cache_path.parent.iterdir() if ".partial-" in p.name]
    second = create_session(encoder_bytes, "cpu", opts)
    assert second.from_cache
    ct = ct_batch()
    a = SessionRunner(first).run({"ct": ct})["cond"]
    b = SessionRunner(second).run({"ct": ct})["cond"]
    np.testing.assert_array_equal(a, b)
    # a corrupted cache file is not trusted: it is rebuilt
    first.cache_path.write_bytes(b"garbage")
    third = create_session(encoder_bytes, "cpu", opts)
    assert not third.from_cache
    np.testing.assert_array_equal(SessionRunner(third).run({"ct": ct})["cond"], a)


def test_no_cache_dir_writes_nothing(tmp_path, encoder_bytes, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    h = create_session(encoder_bytes, "cpu", RuntimeOptions(cache_dir=None))
    assert h.cache_path is None and list(tmp_path.iterdir()) == []


def test_auto_on_this_machine_runs_on_cpu_and_logs_it(encoder_bytes, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="hidiff"):
        h = create_session(encoder_bytes, "auto", RuntimeOptions(cache_dir=None), name="enc")
    assert h.provider == CPU
    assert "enc runs on CPUExecutionProvider" in caplog.text


@pytest.mark.parametrize(
    ("name", "ep"),
    [
        ("cuda", "CUDAExecutionProvider"),
        ("openvino", "OpenVINOExecutionProvider"),
        ("qnn", "QNNExecutionProvider"),
        ("coreml", "CoreMLExecutionProvider"),
        ("directml", "DmlExecutionProvider"),
    ],
)
@pytest.mark.filterwarnings("ignore:Specified provider")
def test_named_provider_that_silently_fell_back_is_an_error(
    name, ep, encoder_bytes, monkeypatch
) -> None:
    """The provider is claimed available, onnxruntime (CPU build) really falls back to the CPU
    when making the session, and get_providers() exposes it: a named profile refuses."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [ep, CPU])
    with pytest.raises(HidiffError) as exc:
        create_session(encoder_bytes, name, RuntimeOptions(cache_dir=None))
    msg = str(exc.value)
    assert f"onnxruntime loaded {CPU} instead of" in msg and ep in msg
    assert PROFILES[name].needs in msg


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_auto_that_fell_back_warns_and_runs(encoder_bytes, monkeypatch, caplog) -> None:
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU],
    )
    with caplog.at_level(logging.INFO, logger="hidiff"):
        h = create_session(encoder_bytes, "auto", RuntimeOptions(cache_dir=None), name="enc")
    assert h.profile.name == "cuda" and h.provider == CPU
    assert "asked onnxruntime for TensorrtExecutionProvider, it runs on CPUExecutionProvider" in (
        caplog.text
    )
    # and it still computes the right thing
    ct = ct_batch()
    np.testing.assert_allclose(
        SessionRunner(h).run({"ct": ct})["cond"], numpy_encoder(SPEC, ct), atol=1e-5
    )


def test_unloadable_graph_is_a_clear_error() -> None:
    with pytest.raises(HidiffError, match="onnxruntime could not load broken on cpu"):
        create_session(b"not an onnx graph", "cpu", RuntimeOptions(cache_dir=None), name="broken")


# -- IO binding --------------------------------------------------------------------------------


def test_io_binding_matches_plain_run_and_keeps_values_on_device(encoder_bytes) -> None:
    """The cuda profile's IO-binding path, run for real on the CPU device: same numbers, and
    outputs can stay OrtValues that are fed to the next graph without a numpy round trip."""
    opts = RuntimeOptions(cache_dir=None)
    enc = create_session(encoder_bytes, "cpu", opts)
    den = create_session(denoiser_graph(SPEC).SerializeToString(), "cpu", opts)
    ct = ct_batch()
    plain = SessionRunner(enc, io_binding=False).run({"ct": ct})["cond"]
    bound = SessionRunner(enc, io_binding=True)
    kept = bound.run({"ct": ct}, keep_on_device=True)["cond"]
    assert isinstance(kept, ort.OrtValue) and kept.device_name() == "cpu"
    np.testing.assert_array_equal(kept.numpy(), plain)

    sample = np.zeros((2, 1, SPEC.height, SPEC.width), np.float32)
    feeds = {"x_t": sample, "t": np.array([10, 10]), "cond": kept}
    via_binding = SessionRunner(den, io_binding=True).run(feeds)["prediction"]
    via_numpy = SessionRunner(den, io_binding=False).run({**feeds, "cond": plain})["prediction"]
    np.testing.assert_array_equal(via_binding, via_numpy)


def test_runner_casts_feeds_to_the_graph_types() -> None:
    h = create_session(
        encoder_graph(SPEC, "fp16").SerializeToString(), "cpu", RuntimeOptions(cache_dir=None)
    )
    r = SessionRunner(h)
    out = r.run({"ct": ct_batch().astype(np.float64)})["cond"]
    assert out.dtype == np.float16
    with pytest.raises(HidiffError, match="not fed"):
        r.run({})


def test_an_unusable_cache_folder_costs_the_cache_not_the_run(
    tmp_path, encoder_bytes, caplog
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="hidiff"):
        h = create_session(encoder_bytes, "cpu", RuntimeOptions(cache_dir=blocker / "cache"))
    assert not h.from_cache and "running without it" in caplog.text
    ct = ct_batch()
    np.testing.assert_allclose(
        SessionRunner(h).run({"ct": ct})["cond"], numpy_encoder(SPEC, ct), atol=1e-5
    )
