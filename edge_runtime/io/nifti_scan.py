"""Count NaN/Inf in a NIfTI file's own bytes.

The NIfTI C library inside ITK silently replaces NaN and Inf by 0 when it loads float data, so
a reader built on SimpleITK alone would hand a corrupted volume on as if it were fine. We read
the header ourselves (NIfTI-1 or NIfTI-2, either byte order, gzipped or not) and stream the
float voxels in chunks, so the check costs no more memory than one chunk.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of real-valued floats
_CHUNK = 1 << 24  # bytes per read


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def nonfinite_count(path: Path) -> tuple[int, int] | None:
    """(NaN count, Inf count) of a float NIfTI file, or None when it is not float or not parsable."""
    with _open(path) as fh:
        head = fh.read(540)
        if len(head) < 348:
            return None
        for endian in ("<", ">"):
            (sizeof_hdr,) = struct.unpack_from(endian + "i", head, 0)
            if sizeof_hdr == 348:
                dims = struct.unpack_from(endian + "8h", head, 40)
                (datatype,) = struct.unpack_from(endian + "h", head, 70)
                (offset,) = struct.unpack_from(endian + "f", head, 108)
                break
            if sizeof_hdr == 540:
                (datatype,) = struct.unpack_from(endian + "h", head, 12)
                dims = struct.unpack_from(endian + "8q", head, 16)
                (offset,) = struct.unpack_from(endian + "q", head, 168)
                break
        else:
            return None
        if datatype not in _FLOAT_TYPES:
            return None
        ndim = max(0, min(int(dims[0]), 7))
        n_values = int(np.prod([max(int(d), 1) for d in dims[1 : ndim + 1]], dtype=np.int64))
        dtype = np.dtype(endian + _FLOAT_TYPES[datatype])
        fh.seek(int(offset))
        nan = inf = 0
        remaining = n_values * dtype.itemsize
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
        return nan, inf
