"""Read a NIfTI file's own header and bytes, for the two things ITK's NIfTI reader hides.

1. The NIfTI C library inside ITK silently replaces NaN and Inf by 0 when it loads float data,
   so a reader built on SimpleITK alone would hand a corrupted volume on as if it were fine.
2. It also fills voxels missing from a short file with zeros: a 360-byte file whose header
   claims 1024^3 voxels becomes a 2 GiB volume of zeros, and a `.nii.gz` cut by an interrupted
   download reads "fine". `payload_bytes` counts what the file really holds before ITK
   allocates anything.

We read the header ourselves (NIfTI-1 or NIfTI-2, either byte order, gzipped or not) and
stream the voxels in chunks, so each check costs no more memory than one chunk.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import InputError

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of real-valued floats
_CHUNK = 1 << 24  # bytes per read (NaN/Inf count)
_COUNT_CHUNK = 1 << 16  # bytes per read when counting a payload (a break loses < one)


@dataclass(frozen=True)
class NiftiHeader:
    endian: str
    datatype: int
    bitpix: int
    dims: tuple[int, ...]  # the used dimensions, dims[0] of the header dropped
    vox_offset: int

    @property
    def n_values(self) -> int:
        return int(np.prod([max(d, 1) for d in self.dims], dtype=np.float64))

    @property
    def payload(self) -> int:
        """Bytes the header says follow the offset."""
        return self.n_values * max(self.bitpix, 0) // 8


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _parse(head: bytes) -> NiftiHeader | None:
    if len(head) < 348:
        return None
    for endian in ("<", ">"):
        (sizeof_hdr,) = struct.unpack_from(endian + "i", head, 0)
        if sizeof_hdr == 348:
            dims = struct.unpack_from(endian + "8h", head, 40)
            datatype, bitpix = struct.unpack_from(endian + "2h", head, 70)
            (offset,) = struct.unpack_from(endian + "f", head, 108)
            break
        if sizeof_hdr == 540 and len(head) >= 540:
            datatype, bitpix = struct.unpack_from(endian + "2h", head, 12)
            dims = struct.unpack_from(endian + "8q", head, 16)
            (offset,) = struct.unpack_from(endian + "q", head, 168)
            break
    else:
        return None
    ndim = max(0, min(int(dims[0]), 7))
    if not np.isfinite(offset) or offset < 0:
        return None
    return NiftiHeader(
        endian, int(datatype), int(bitpix), tuple(int(d) for d in dims[1 : ndim + 1]), int(offset)
    )


def read_nifti_header(path: Path) -> NiftiHeader | None:
    """The header of a NIfTI file, or None when it is not one we can parse."""
    try:
        with _open(path) as fh:
            return _parse(fh.read(540))
    except (OSError, EOFError, zlib.error):
        return None


def payload_bytes(path: Path, header: NiftiHeader) -> int:
    """How many of the header's payload bytes the file really holds (at most `payload`).

    Uncompressed: from the file size. Gzipped: inflated and counted in chunks (a cut stream
    counts up to where it breaks), nothing kept; a stream that breaks only after the voxels (no
    end-of-stream marker, a bad checksum) is an `InputError`: the copy is damaged.
    """
    want = header.payload
    if not path.name.lower().endswith(".gz"):
        return max(0, min(want, path.stat().st_size - header.vox_offset))
    got = 0
    try:
        with gzip.open(path, "rb") as fh:
            fh.seek(header.vox_offset)
            while got < want:
                block = fh.read(min(_COUNT_CHUNK, want - got))
                if not block:
                    break
                got += len(block)
            while got >= want and fh.read(_COUNT_CHUNK):
                pass  # to the end: gzip checks its end marker and checksum only there
    except (OSError, EOFError, zlib.error, ValueError, OverflowError) as exc:
        if got >= want:
            raise _broken_stream(path, exc) from exc
        # else a broken stream holds what was inflated before the break
    return got


def _broken_stream(path: Path, exc: Exception) -> InputError:
    return InputError(
        f"{path}: damaged gzip stream ({type(exc).__name__}: cut or corrupt after the header); "
        "copy the file again"
    )


def nonfinite_count(path: Path) -> tuple[int, int] | None:
    """(NaN count, Inf count) of a float NIfTI file, or None when it is not float or not parsable."""
    header = read_nifti_header(path)
    if header is None or header.datatype not in _FLOAT_TYPES:
        return None
    dtype = np.dtype(header.endian + _FLOAT_TYPES[header.datatype])
    nan = inf = 0
    try:
        with _open(path) as fh:
            fh.seek(header.vox_offset)
            remaining = header.n_values * dtype.itemsize
            carry = b""
            while remaining > 0:
                block = fh.read(min(_CHUNK, remaining))
                if not block:
                    break
                remaining -= len(block)
                block = carry + block
                usable = len(block) - len(block) % dtype.itemsize
                carry = block[usable:]
                values = np.frombuffer(block[:usable], dtype=dtype)
                nan += int(np.isnan(values).sum())
                inf += int(np.isinf(values).sum())
    except (OSError, EOFError, zlib.error, ValueError, OverflowError) as exc:
        raise _broken_stream(path, exc) from exc
    return nan, inf
