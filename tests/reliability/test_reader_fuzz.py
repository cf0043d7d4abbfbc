"""Property-based fuzzing of the readers and the manifest parser (hypothesis).

Whatever happens to a DICOM, NIfTI or MHA file's bytes (bits flipped, bytes overwritten,
inserted or cut, header fields set to extremes), `read_image` either returns a finite 3-D
volume or raises `InputError` with one line: never another exception, never a hang, never
NaN voxels. The manifest parser gets arbitrary bytes and arbitrary JSON and answers a
`Manifest` or a `PackageError`, nothing else. Crashes found by the atheris run
(fuzz_readers.py) are replayed from fuzz_crashes/.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reader_targets import read_bytes, seed_bytes

from edge_runtime.errors import PackageError
from edge_runtime.package.manifest import parse_manifest

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KINDS = ("dicom", "nifti", "nifti_gz", "mha")
SEEDS = {k: seed_bytes(k) for k in KINDS}
CRASHES = Path(__file__).with_name("fuzz_crashes")


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    data = bytearray(SEEDS[kind])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "set", "insert", "cut", "extreme")))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:  # a 16- or 32-bit field set to an extreme value (sizes, lengths, dims)
            value = draw(st.sampled_from((0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)))
            fmt = draw(st.sampled_from(("<H", "<I")))
            value &= 0xFFFF if fmt == "<H" else 0xFFFFFFFF
            end = min(len(data), pos + struct.calcsize(fmt))
            data[pos:end] = struct.pack(fmt, value)[: end - pos]
        if not data:
            data = bytearray(b"\0")
    return bytes(data)


def test_the_seeds_read() -> None:
    for kind in KINDS:
        assert read_bytes(SEEDS[kind], kind) is not None, kind


@pytest.mark.parametrize("kind", KINDS)
def test_a_mutated_file_is_read_or_refused_cleanly(kind: str) -> None:
    @SETTINGS
    @given(data=mutated(kind))
    def check(data: bytes) -> None:
        read_bytes(data, kind)

    check()


@SETTINGS
@given(data=st.binary(max_size=2048), kind=st.sampled_from(KINDS))
def test_random_bytes_are_refused(data: bytes, kind: str) -> None:
    assume(data not in SEEDS.values())
    read_bytes(data, kind)


def test_crashes_found_by_atheris_stay_fixed() -> None:
    """Every input kept by the atheris run (named KIND-what-went-wrong.bin: an exception that
    was not an InputError, a hang in ITK, NaN in an accepted volume) is now refused cleanly."""
    kept = sorted(CRASHES.glob("*.bin"))
    assert len(kept) >= 10
    for path in kept:
        kind = path.name.split("-", 1)[0]
        assert read_bytes(path.read_bytes(), kind) is None, path.name


def test_unknown_value_representations_are_refused() -> None:
    """Found by fuzzing: a VR pydicom does not know, in the file meta group and in the data set
    (converted lazily by pydicom, so it used to fail wherever the element was first read)."""
    seed = SEEDS["dicom"]
    for vr in (b"UL", b"DA", b"CS"):
        assert read_bytes(seed.replace(vr, b"Q@", 1), "dicom") is None


def test_a_large_private_binary_value_reads_and_a_cut_one_is_refused() -> None:
    """A vendor's private header (OB, larger than the deferral size) is left on disk by the
    header scan and does not stop the read; the same file cut inside that value is refused."""
    ds = pydicom.dcmread(io.BytesIO(SEEDS["dicom"]))
    ds.add_new(0x00291010, "OB", bytes(range(256)) * 20)
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    assert read_bytes(data, "dicom") is not None
    cut = data.index(bytes(range(256))) + 1000
    assert read_bytes(data[:cut], "dicom") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@SETTINGS
@given(raw=st.binary(max_size=512))
def test_manifest_parser_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        parse_manifest(raw, source="fuzz")
    except PackageError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(doc=json_values, version=st.sampled_from((1, 0, 2, -1, "1", None, 1.5, True)))
def test_manifest_parser_on_arbitrary_json(doc, version) -> None:
    if isinstance(doc, dict):
        doc = {**doc, "format_version": version}
    try:
        parse_manifest(json.dumps(doc), source="fuzz")
    except PackageError as exc:
        assert "\n" not in str(exc)
