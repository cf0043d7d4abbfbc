"""Atomic writes: complete or absent, never half-written."""

import json

import pytest

from edge_runtime.atomic import (
    atomic_directory,
    atomic_write_json,
    ensure_writable_dir,
    remove_partials,
)
from edge_runtime.errors import HidiffError


def test_directory_appears_only_when_complete(tmp_path) -> None:
    final = tmp_path / "case"
    with atomic_directory(final) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["case"]


def test_failed_directory_leaves_nothing(tmp_path) -> None:
    final = tmp_path / "case"
    with pytest.raises(RuntimeError), atomic_directory(final) as tmp:
        (tmp / "a.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_needs_overwrite(tmp_path) -> None:
    final = tmp_path / "case"
    final.mkdir()
    with pytest.raises(HidiffError, match="already exists"), atomic_directory(final):
        pass
    with atomic_directory(final, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("y")
    assert [p.name for p in final.iterdir()] == ["b.txt"]


def test_json_is_deterministic(tmp_path) -> None:
    a = atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    b = atomic_write_json(tmp_path / "b.json", {"a": [1, 2], "b": 1})
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(a.read_text()) == {"a": [1, 2], "b": 1}


def test_remove_partials(tmp_path) -> None:
    (tmp_path / ".case.partial-123-abcd").mkdir()
    (tmp_path / "done").mkdir()
    assert remove_partials(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["done"]


def test_unwritable_output_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(HidiffError, match="cannot create output folder"):
        ensure_writable_dir(blocker / "sub")
