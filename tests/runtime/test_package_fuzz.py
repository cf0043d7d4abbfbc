"""Property tests: whatever happens to a package's bytes or manifest, loading either succeeds
or is a PackageError with a message, never a crash (KeyError, TypeError, ...) and never a
silent acceptance of changed bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from package_factory import PackageSpec, make_package

from edge_runtime.errors import PackageError
from edge_runtime.package import load_package

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_package(tmp_path_factory.mktemp("fuzz") / "pkg", PackageSpec(n_cases=2))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location (key/index path) inside a JSON document."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@SETTINGS
@given(data=st.data())
def test_any_flipped_byte_in_any_file_is_refused(pkg: Path, data: st.DataObject) -> None:
    files = sorted(p for p in pkg.rglob("*") if p.is_file() and p.name != "manifest.json")
    path = data.draw(st.sampled_from(files))
    original = path.read_bytes()
    pos = data.draw(st.integers(0, len(original) - 1))
    bit = data.draw(st.integers(0, 7))
    changed = bytearray(original)
    changed[pos] ^= 1 << bit
    path.write_bytes(bytes(changed))
    try:
        with pytest.raises(PackageError, match="fails its sha256 check"):
            load_package(pkg)
    finally:
        path.write_bytes(original)


@SETTINGS
@given(data=st.data())
def test_any_manifest_mutation_is_accepted_or_refused_cleanly(pkg: Path, data: st.DataObject):
    manifest_path = pkg / "manifest.json"
    original = manifest_path.read_text()
    doc = json.loads(original)
    where = data.draw(st.sampled_from(_paths(doc)))
    action = data.draw(st.sampled_from(["replace", "delete"]))
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(json_values)
    manifest_path.write_text(json.dumps(doc))
    try:
        load_package(pkg)  # some mutations are harmless (e.g. a description)
    except PackageError as exc:
        assert str(exc)  # refused, with a message
    finally:
        manifest_path.write_text(original)
