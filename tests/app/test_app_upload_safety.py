"""apps.upload: a malicious zip is refused before anything is written; non-images are skipped."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from apps.upload import UploadLimits, extract_zip, safe_member_path
from edge_runtime.errors import InputError

DICM = b"\0" * 128 + b"DICM" + b"\0" * 64  # preamble + magic: looks like DICOM by content


def make_zip(members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "name", ["../evil.dcm", "a/../../evil.dcm", "/tmp/evil.dcm", "C:/evil.dcm", "..\\evil.dcm"]
)
def test_traversal_refused_and_nothing_written(tmp_path: Path, name: str) -> None:
    data = make_zip([("ok/slice1.dcm", DICM), (name, DICM)])
    dest = tmp_path / "box" / "dest"
    with pytest.raises(InputError, match="outside the upload folder"):
        extract_zip(io.BytesIO(data), dest)
    assert files_under(tmp_path) == []  # checked before a byte is written: not even ok/


def test_symlink_refused(tmp_path: Path) -> None:
    data = make_zip([("s/1.dcm", DICM)], symlinks={"s/link.dcm": "/etc/passwd"})
    with pytest.raises(InputError, match="symbolic link"):
        extract_zip(io.BytesIO(data), tmp_path / "dest")
    assert files_under(tmp_path) == []


def test_zip_bomb_refused_by_ratio(tmp_path: Path) -> None:
    data = make_zip([("bomb.dcm", DICM + b"\0" * (40 << 20))])
    assert len(data) < 200_000  # 40 MB of zeros in well under 0.2 MB
    with pytest.raises(InputError, match="zip bomb"):
        extract_zip(io.BytesIO(data), tmp_path / "dest")
    assert files_under(tmp_path) == []


def test_total_size_and_file_count_limits(tmp_path: Path) -> None:
    data = make_zip([(f"s/{i}.dcm", DICM + bytes(range(256)) * 8) for i in range(5)])
    with pytest.raises(InputError, match="expands to"):
        extract_zip(io.BytesIO(data), tmp_path / "a", UploadLimits(max_total_bytes=4000))
    with pytest.raises(InputError, match="entries, more than the 3 allowed"):
        extract_zip(io.BytesIO(data), tmp_path / "b", UploadLimits(max_files=3))
    assert files_under(tmp_path) == []
    ok = extract_zip(io.BytesIO(data), tmp_path / "c")
    assert len(ok.files) == 5


def test_header_lying_about_size_is_caught(tmp_path: Path) -> None:
    """A member whose central directory understates its size (a classic bomb trick)."""
    payload = DICM + b"\0" * 300_000
    data = bytearray(make_zip([("x.dcm", payload)]))
    # Patch the uncompressed size in the central directory to 1000 bytes.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (1000).to_bytes(4, "little")
    with pytest.raises(InputError):
        extract_zip(io.BytesIO(bytes(data)), tmp_path / "dest")
    assert files_under(tmp_path) == []


def test_non_images_skipped_with_a_note(tmp_path: Path) -> None:
    data = make_zip(
        [
            ("CT/IM0001", DICM),
            ("CT/IM0002.dcm", DICM),
            ("report.pdf", b"%PDF-1.4 not an image"),
            ("viewer/run.exe", b"MZ..."),
            ("inner.zip", b"PK.."),
        ]
    )
    out = extract_zip(io.BytesIO(data), tmp_path / "dest")
    assert sorted(p.name for p in out.files) == ["IM0001", "IM0002.dcm"]
    assert len(out.skipped) == 3
    assert any("report.pdf" in s and "skipped" in s for s in out.skipped)
    assert any("inner.zip" in s and "nested" in s for s in out.skipped)
    assert sorted(p.name for p in files_under(tmp_path)) == ["IM0001", "IM0002.dcm"]


def test_no_image_at_all_and_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no DICOM"):
        extract_zip(io.BytesIO(make_zip([("notes.txt", b"hello")])), tmp_path / "a")
    with pytest.raises(InputError, match="not a readable zip"):
        extract_zip(io.BytesIO(b"this is not a zip"), tmp_path / "b")


def test_safe_member_path_keeps_ordinary_names() -> None:
    assert safe_member_path("CT/series 1/IM0001.dcm").parts == ("CT", "series 1", "IM0001.dcm")
