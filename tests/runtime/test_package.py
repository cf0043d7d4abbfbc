"""The edge package: a valid one loads and runs; a damaged or mismatched one is refused with a
message naming what is wrong, before anything is loaded or written."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from package_factory import PackageSpec, TinyModel, make_package, rehash, rewrite_manifest

from edge_runtime.errors import InputError, PackageError
from edge_runtime.package import Engine, load_package, parse_manifest, verify_package
from edge_runtime.package.manifest import FORMAT_VERSION, manifest_schema
from edge_runtime.package.selfcheck import image_metric
from edge_runtime.providers import RuntimeOptions

NO_CACHE = RuntimeOptions(cache_dir=None)


def listed_files(pkg: Path) -> list[str]:
    return [f["path"] for f in json.loads((pkg / "manifest.json").read_text())["files"]]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


# -- a valid package -------------------------------------------------------------------------------


def test_valid_package_loads_with_its_manifest(tiny_package: Path) -> None:
    pkg = load_package(tiny_package)
    m = pkg.manifest
    assert m.format_version == FORMAT_VERSION
    assert m.precisions == ("fp32", "fp16")
    assert m.task.in_channels == 3 and m.task.out_channels == 1
    assert m.grid.shape == (16, 16)
    sampler = pkg.make_sampler()
    assert sampler.kind == "ddim" and sampler.num_inference_steps == 4
    assert pkg.unlisted_files() == []


def test_valid_package_reproduces_its_reference_on_this_cpu(tiny_package: Path) -> None:
    report = verify_package(load_package(tiny_package), "cpu", "fp32", NO_CACHE)
    assert report.passed, report
    assert report.provider == "CPUExecutionProvider"
    # ORT vs the independent numpy implementation of the same graphs: far above 40 dB
    assert min(c.psnr_db for c in report.cases) > 100
    fp16 = verify_package(load_package(tiny_package), "cpu", "fp16", NO_CACHE)
    assert fp16.passed and fp16.precision == "fp16"
    assert 40 <= min(c.psnr_db for c in fp16.cases) < 100


def _with_own_fp16_outputs(pkg: Path, shift: float = 0.0) -> None:
    """Give every case of an fp32 + fp16 package its fp16 output (as the engine makes it here,
    plus `shift`) and the fp16 metrics, the way `compress/` ships INT8 beside fp32."""
    package = load_package(pkg)
    engine = Engine(package, "cpu", "fp16", NO_CACHE)
    ref = package.manifest.reference
    entries, metrics = [], {k: [] for k in ref.metrics}
    for case in ref.cases:
        ct = package.load_array(case.input).astype(np.float32)
        noise = package.load_array(case.noise).astype(np.float32)
        out = engine.generate(ct, noise, case.seed, case.output_name) + np.float32(shift)
        target = package.load_array(case.target).astype(np.float32)
        for k in metrics:
            metrics[k].append(image_metric(k, out, target, ref.data_range))
        rel = f"reference/{case.name}_output_fp16.npy"
        np.save(pkg / rel, out)
        entries.append((case.name, rel))

    def change(m: dict) -> None:
        for case, (name, rel) in zip(m["reference"]["cases"], entries, strict=True):
            assert case["name"] == name
            case["outputs"] = {"fp16": rel}
            m["files"].append({"path": rel, "sha256": "0" * 64, "bytes": 0})
        m["reference"]["by_precision"] = {
            "fp16": {
                "metrics": {k: float(np.mean(v)) for k, v in metrics.items()},
                "metric_tolerance": m["reference"]["metric_tolerance"],
            }
        }

    rewrite_manifest(pkg, change)
    for _, rel in entries:
        rehash(pkg, rel)


def test_a_precision_with_its_own_outputs_is_compared_with_them(tmp_path: Path) -> None:
    """fp16 beside fp32, with fp16 outputs of its own: fp16 reproduces those to the bit here
    (not fp32's at 69 dB), fp32 still its own; a wrong fp16 output fails only fp16."""
    pkg = make_package(tmp_path / "own", precisions=("fp32", "fp16"))
    _with_own_fp16_outputs(pkg)
    package = load_package(pkg)
    assert package.manifest.reference.compared_with("fp16") == "fp16"
    fp16 = verify_package(package, "cpu", "fp16", NO_CACHE)
    assert fp16.passed and fp16.compared_with == "fp16"
    assert min(c.psnr_db for c in fp16.cases) > 100
    fp32 = verify_package(package, "cpu", "fp32", NO_CACHE)
    assert fp32.passed and fp32.compared_with == "fp32"

    off = make_package(tmp_path / "off", precisions=("fp32", "fp16"))
    _with_own_fp16_outputs(off, shift=0.05)
    package = load_package(off)
    assert not verify_package(package, "cpu", "fp16", NO_CACHE).passed
    assert verify_package(package, "cpu", "fp32", NO_CACHE).passed


def test_own_outputs_must_name_another_precision_that_is_built(tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "own", precisions=("fp32", "fp16"))
    _with_own_fp16_outputs(pkg)
    cases = lambda m: m["reference"]["cases"]  # noqa: E731
    for change, message in [
        (lambda m: cases(m)[0]["outputs"].update(int8=cases(m)[0]["output"]), "'int8' is not"),
        (lambda m: cases(m)[0]["outputs"].update(fp32=cases(m)[0]["output"]), "'fp32' is not"),
        (lambda m: cases(m)[0].pop("outputs"), "by_precision.fp16: the cases have no fp16"),
        (
            lambda m: m["reference"].pop("by_precision"),
            r"by_precision has no metrics for \['fp16'\]",
        ),
    ]:
        broken = tmp_path / f"broken-{len(list(tmp_path.iterdir()))}"
        broken.mkdir()
        for f in pkg.rglob("*"):
            if f.is_file():
                dest = broken / f.relative_to(pkg)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(f.read_bytes())
        rewrite_manifest(broken, change)
        with pytest.raises(PackageError, match=message):
            load_package(broken)


@pytest.mark.parametrize("kind", ["ddpm", "dpm_solver++", "consistency"])
def test_every_sampler_kind_round_trips_through_a_package(tmp_path: Path, kind: str) -> None:
    pkg = make_package(tmp_path / kind, sampler_kind=kind, sampler_config={}, steps=3, n_cases=2)
    report = verify_package(load_package(pkg), "cpu", options=NO_CACHE)
    assert report.passed and len(report.cases) == 2


def test_manifest_validates_against_the_json_schema(tiny_package: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads((tiny_package / "manifest.json").read_text())
    jsonschema.Draft202012Validator(manifest_schema()).validate(data)


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(6))
def test_a_flipped_byte_in_any_file_is_refused_naming_it(fresh_package: Path, index: int) -> None:
    rel = listed_files(fresh_package)[index]
    path = fresh_package / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(PackageError, match=f"{rel} fails its sha256 check"):
        load_package(fresh_package)


def test_a_truncated_file_is_refused(fresh_package: Path) -> None:
    rel = "graphs/fp32/denoiser.onnx"
    path = fresh_package / rel
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PackageError, match=f"{rel} has .* bytes"):
        load_package(fresh_package)


def test_a_missing_file_is_refused_naming_it(fresh_package: Path) -> None:
    (fresh_package / "graphs/fp32/encoder.onnx").unlink()
    with pytest.raises(PackageError, match=r"graphs/fp32/encoder.onnx is missing"):
        load_package(fresh_package)


def test_missing_manifest_and_not_a_folder(tmp_path: Path, fresh_package: Path) -> None:
    with pytest.raises(PackageError, match="not a package folder"):
        load_package(tmp_path / "nowhere")
    (fresh_package / "manifest.json").unlink()
    with pytest.raises(PackageError, match=r"no manifest.json"):
        load_package(fresh_package)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (2, "format_version 2 is newer than this runtime supports"),
        (99, "format_version 99 is newer"),
        (0, "format_version 0 is unknown"),
        ("1", "format_version '1' is unknown"),
        (None, "format_version None is unknown"),
    ],
)
def test_unknown_format_version_is_refused(fresh_package: Path, version, message) -> None:
    rewrite_manifest(fresh_package, lambda m: m.update(format_version=version))
    with pytest.raises(PackageError, match=message):
        load_package(fresh_package)


def test_unparsable_manifest_is_refused(fresh_package: Path) -> None:
    path = fresh_package / "manifest.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(PackageError, match=r"not valid JSON .unparsable manifest"):
        load_package(fresh_package)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PackageError, match="unparsable manifest"):
        load_package(fresh_package)


@pytest.mark.parametrize(
    "bad_path", ["/etc/passwd", "../outside.onnx", "graphs/../../outside.onnx", "C:/x.onnx"]
)
def test_paths_outside_the_package_are_refused(fresh_package: Path, bad_path: str) -> None:
    def change(m: dict) -> None:
        m["graphs"]["fp32"]["encoder"] = bad_path
        m["files"][0]["path"] = bad_path

    rewrite_manifest(fresh_package, change)
    with pytest.raises(PackageError, match="points outside the package folder"):
        load_package(fresh_package)


def test_a_symlink_out_of_the_package_is_refused(tmp_path: Path, fresh_package: Path) -> None:
    rel = "graphs/fp32/encoder.onnx"
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes((fresh_package / rel).read_bytes())  # same bytes: the hash would pass
    (fresh_package / rel).unlink()
    os.symlink(outside, fresh_package / rel)
    with pytest.raises(PackageError, match=f"{rel} points outside the package folder"):
        load_package(fresh_package)


def test_a_used_file_without_a_hash_is_refused(fresh_package: Path) -> None:
    rewrite_manifest(
        fresh_package,
        lambda m: m.update(files=[f for f in m["files"] if "target" not in f["path"]]),
    )
    with pytest.raises(
        PackageError, match=r"case000_target.npy is used by the manifest but not listed"
    ):
        load_package(fresh_package)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["grid"].update(shape=[16, -1]), "grid"),
        (lambda m: m["task"].update(context_slices=-1), "context_slices"),
        (lambda m: m.update(surprise=1), "unknown field"),
        (lambda m: m["sampler"].update(kind="euler"), "sampler.kind 'euler' is unknown"),
        (lambda m: m["sampler"]["config"].update(eta=-1), "eta must be >= 0"),
        (lambda m: m["normalisation"].update(ct_hu_window=[300, -100]), "low to high"),
        (lambda m: m["reference"].update(cases=[]), "reference.cases is empty"),
        (lambda m: m["files"][0].update(sha256="abc"), "sha256 is not 64"),
        (lambda m: m["graphs"].update(fp8=m["graphs"]["fp32"]), "unknown precision 'fp8'"),
        (lambda m: m["task"]["outputs"][0].update(sequence="flair"), "unknown 'flair'"),
        (lambda m: m.pop("task"), "task is missing"),
    ],
)
@pytest.mark.parametrize("with_jsonschema", [True, False])
def test_malformed_manifests_are_refused_naming_the_field(
    fresh_package: Path, change, message, with_jsonschema, monkeypatch
) -> None:
    """The runtime's own checks give these messages with or without `jsonschema` installed."""
    if not with_jsonschema:
        monkeypatch.setitem(sys.modules, "jsonschema", None)  # import fails
    rewrite_manifest(fresh_package, change)
    with pytest.raises(PackageError, match=message):
        load_package(fresh_package)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["grid"].update(shape=[16, -1]),
        lambda m: m.update(surprise=1),
        lambda m: m["files"][0].update(sha256="abc"),
        lambda m: m["files"][0].update(path="../x"),
        lambda m: m["sampler"].update(kind="euler"),
    ],
)
def test_json_schema_rejects_the_same_manifests(tiny_package: Path, change) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads((tiny_package / "manifest.json").read_text())
    change(data)
    assert not jsonschema.Draft202012Validator(manifest_schema()).is_valid(data)


def test_pickled_reference_arrays_are_refused(fresh_package: Path) -> None:
    rel = "reference/case000_noise.npy"
    (fresh_package / rel).write_bytes(npy_bytes_with_objects())
    rehash(fresh_package, rel)
    pkg = load_package(fresh_package)  # the hash is right: the content is what is refused
    with pytest.raises(PackageError, match=f"{rel} is not a plain .npy array"):
        pkg.load_array(rel)


def npy_bytes_with_objects() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    assert pickle.PROTO in buf.getvalue()  # it really holds a pickle
    return buf.getvalue()


def test_a_file_swapped_after_verification_is_caught(fresh_package: Path) -> None:
    pkg = load_package(fresh_package)
    rel = "graphs/fp32/denoiser.onnx"
    (fresh_package / rel).write_bytes(b"swapped")
    with pytest.raises(PackageError, match=f"{rel} changed after it was verified"):
        Engine(pkg, "cpu", options=NO_CACHE)


def test_refused_package_loads_no_graph_and_writes_nothing(
    tmp_path: Path, fresh_package: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from edge_runtime.cli import build_app

    made = []
    real = ort.InferenceSession

    def spy(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    cache = tmp_path / "cache"
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(cache))
    rel = "reference/case000_output.npy"
    data = bytearray((fresh_package / rel).read_bytes())
    data[-1] ^= 0xFF
    (fresh_package / rel).write_bytes(bytes(data))
    before = snapshot(fresh_package)
    result = CliRunner().invoke(build_app(), ["verify", str(fresh_package)])
    assert isinstance(result.exception, PackageError)
    assert rel in str(result.exception)
    assert made == []
    assert not cache.exists()
    assert snapshot(fresh_package) == before


# -- the input contract ----------------------------------------------------------------------------


def test_an_input_of_the_wrong_modality_or_phase_is_refused(tiny_package: Path) -> None:
    m = load_package(tiny_package).manifest
    m.check_input("CT", "portal_venous")
    m.check_input("ct")
    with pytest.raises(InputError, match="expects CT input, got modality 'MR'"):
        m.check_input("MR")
    with pytest.raises(InputError, match="got modality None"):
        m.check_input(None)
    with pytest.raises(InputError, match="trained on portal_venous CT, got phase 'arterial'"):
        m.check_input("CT", "arterial")


def test_a_model_input_of_the_wrong_shape_is_refused(tiny_package: Path) -> None:
    engine = Engine(load_package(tiny_package), "cpu", options=NO_CACHE)
    with pytest.raises(InputError, match=r"shape \(N, 3, 16, 16\).*got \(2, 1, 16, 16\)"):
        engine.encode(np.zeros((2, 1, 16, 16), np.float32))
    with pytest.raises(InputError, match=r"got \(2, 3, 32, 32\)"):
        engine.encode(np.zeros((2, 3, 32, 32), np.float32))
    bad = np.zeros((1, 3, 16, 16), np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        engine.encode(bad)


def test_graphs_that_disagree_with_the_manifest_are_refused(fresh_package: Path) -> None:
    rewrite_manifest(fresh_package, lambda m: m["grid"].update(shape=[32, 32]))
    with pytest.raises(PackageError, match=r"encoder.onnx: input ct has size 16 on axis 2"):
        Engine(load_package(fresh_package), "cpu", options=NO_CACHE)
    rewrite_manifest(fresh_package, lambda m: m["grid"].update(shape=[16, 16]))
    rewrite_manifest(fresh_package, lambda m: m["task"].update(context_slices=2))
    with pytest.raises(PackageError, match=r"input ct has size 3 on axis 1.*say 5"):
        Engine(load_package(fresh_package), "cpu", options=NO_CACHE)


def test_swapped_graph_roles_are_refused(fresh_package: Path) -> None:
    def swap(m: dict) -> None:
        g = m["graphs"]["fp32"]
        g["encoder"], g["denoiser"] = g["denoiser"], g["encoder"]

    rewrite_manifest(fresh_package, swap)
    with pytest.raises(PackageError, match=r"encoder graph .* must read 'ct'"):
        Engine(load_package(fresh_package), "cpu", options=NO_CACHE)


def test_verify_detects_a_model_that_no_longer_matches(tmp_path: Path) -> None:
    """Shipped outputs from different weights (a stale or swapped graph): PSNR drops, FAIL."""
    pkg = make_package(tmp_path / "a")
    other = make_package(tmp_path / "b", PackageSpec(model=TinyModel(seed=5)))
    rel = "graphs/fp32/denoiser.onnx"
    (pkg / rel).write_bytes((other / rel).read_bytes())
    rehash(pkg, rel)
    report = verify_package(load_package(pkg), "cpu", options=NO_CACHE)
    assert not report.passed
    assert report.cases[0].psnr_db < 40


def test_parse_manifest_names_its_source() -> None:
    with pytest.raises(PackageError, match=r"^/x/manifest.json is not valid JSON"):
        parse_manifest("{", source="/x/manifest.json")


# -- normalisation ---------------------------------------------------------------------------------


def test_normalisation_maps_the_hu_window_and_mr_range(tiny_package: Path) -> None:
    m = load_package(tiny_package).manifest
    norm, out = m.normalisation, m.task.outputs[0]
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    np.testing.assert_allclose(norm.ct_to_model(hu), [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-6)
    assert norm.ct_to_model(hu).dtype == np.float32
    np.testing.assert_allclose(
        norm.model_to_mr(np.array([-1.0, 0.0, 1.0]), out.mr_range), [0.0, 500.0, 1000.0]
    )


def test_normalisation_agrees_with_training(tiny_package: Path) -> None:
    """models/ normalises training data with its own helpers: the package's maps must be the
    same functions, or the clinic feeds the model intensities it never saw."""
    normalise = pytest.importorskip("models.data.normalise")
    config = pytest.importorskip("models.aphidiff.config")
    from edge_runtime.package.manifest import Normalisation

    cfg = config.DataConfig()
    norm = Normalisation(ct_hu_window=(cfg.hu_min, cfg.hu_max))
    hu = np.linspace(-1200, 1500, 301).astype(np.float32)
    np.testing.assert_allclose(norm.ct_to_model(hu), normalise.ct_to_unit(hu, cfg), atol=1e-6)
    x = np.linspace(-1, 1, 21).astype(np.float32)
    np.testing.assert_allclose(
        norm.model_to_mr(x, (0.0, 812.5)), normalise.mr_from_unit(x, 812.5), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["task"]["outputs"][0].update(mr_range=[5, 1]), "mr_range must go from low"),
        (lambda m: m["normalisation"].update(mr_percentile=120), "mr_percentile must be in"),
        (lambda m: m["normalisation"].update(mr_method="zscore"), "unknown 'zscore'"),
    ],
)
def test_bad_normalisation_is_refused(fresh_package: Path, change, message) -> None:
    rewrite_manifest(fresh_package, change)
    with pytest.raises(PackageError, match=message):
        load_package(fresh_package)


# -- one network, several sequences; static batches ------------------------------------------------


def test_sequence_conditioned_graphs_make_each_output(tmp_path: Path) -> None:
    """Graphs with a `sequence` input (as models/aphidiff exports them): each reference case
    makes the output it names, through encoder and denoiser."""
    spec = PackageSpec(model=TinyModel(sequences=3), n_cases=3)
    pkg = load_package(make_package(tmp_path / "seq", spec))
    assert [o.sequence_index for o in pkg.manifest.task.outputs] == [0, 1, 2]
    report = verify_package(pkg, "cpu", options=NO_CACHE)
    assert report.passed and min(c.psnr_db for c in report.cases) > 100
    engine = Engine(pkg, "cpu", options=NO_CACHE)
    assert engine.uses_sequence and engine.sample_channels == 1
    case = pkg.manifest.reference.cases[0]
    ct, noise = pkg.load_array(case.input), pkg.load_array(case.noise)
    t2 = engine.generate(ct, noise, 0, "t2")
    t1 = engine.generate(ct, noise, 0, "t1")
    assert np.abs(t2 - t1).max() > 1e-2  # the sequence input really changes the result
    with pytest.raises(PackageError, match="no output 'flair'"):
        engine.generate(ct, noise, 0, "flair")


def test_sequence_graphs_need_sequence_indices(tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "seq", PackageSpec(model=TinyModel(sequences=2)))
    rewrite_manifest(pkg, lambda m: m["task"]["outputs"][1].update(sequence_index=None))
    with pytest.raises(PackageError, match=r"outputs \['t1'\] have no sequence_index"):
        Engine(load_package(pkg), "cpu", options=NO_CACHE)
    rewrite_manifest(pkg, lambda m: m["reference"]["cases"][0].update(output_name="t9"))
    with pytest.raises(PackageError, match="no output 't9'"):
        load_package(pkg)


def test_graphs_with_a_fixed_batch_take_exactly_that_batch(tmp_path: Path) -> None:
    pkg = load_package(make_package(tmp_path / "b2", PackageSpec(model=TinyModel(fixed_batch=2))))
    engine = Engine(pkg, "cpu", options=NO_CACHE)
    assert engine.batch == 2
    assert verify_package(pkg, "cpu", engine=engine).passed
    with pytest.raises(InputError, match="fixed to batches of 2, got 3 slices"):
        engine.encode(np.zeros((3, 3, 16, 16), np.float32))


@pytest.mark.parametrize("sequences", [0, 3])
def test_engine_io_binding_path_gives_the_same_images(tmp_path: Path, sequences: int) -> None:
    """The cuda profile's path (conditions kept as OrtValues between steps), run on the CPU
    device: identical to plain numpy feeds."""
    pkg = load_package(
        make_package(tmp_path / "p", PackageSpec(model=TinyModel(sequences=sequences)))
    )
    case = pkg.manifest.reference.cases[0]
    ct, noise = pkg.load_array(case.input), pkg.load_array(case.noise)
    bound = Engine(pkg, "cpu", options=NO_CACHE, io_binding=True)
    plain = Engine(pkg, "cpu", options=NO_CACHE, io_binding=False)
    cond = bound.encode(ct, case.output_name)
    assert all(isinstance(cond[n], ort.OrtValue) for n in bound.cond_names)
    a = bound.generate(ct, noise, case.seed, case.output_name)
    b = plain.generate(ct, noise, case.seed, case.output_name)
    np.testing.assert_array_equal(a, b)
    assert verify_package(pkg, engine=bound).passed
