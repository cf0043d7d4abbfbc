"""Keep patient identity out of logs and error messages.

Our own messages never format identifying attributes. Messages that come from libraries
(pydicom, ITK) may quote header values, so they pass through `redact` before we show them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Patient-module attributes that identify a person (DICOM PS3.15 basic profile, patient part).
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "IssuerOfPatientID",
)


def identifying_values(datasets: Iterable[Any]) -> set[str]:
    """The non-empty identifying strings in these datasets (and their name components)."""
    found: set[str] = set()
    for ds in datasets:
        if ds is None:
            continue
        for keyword in IDENTIFYING_KEYWORDS:
            value = ds.get(keyword) if hasattr(ds, "get") else None
            if value in (None, ""):
                continue
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                text = str(v).strip()
                if len(text) >= 2:
                    found.add(text)
                    found.update(p for p in re.split(r"[\^= ]+", text) if len(p) >= 2)
    return found


def redact(text: str, datasets: Iterable[Any] = ()) -> str:
    """`text` with every identifying value of `datasets` replaced by <redacted>, on one line."""
    for value in sorted(identifying_values(datasets), key=len, reverse=True):
        text = re.sub(re.escape(value), "<redacted>", text, flags=re.IGNORECASE)
    return one_line(text)


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a library's multi-line message to one short line."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    joined = " | ".join(lines[-2:]) if lines else ""
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."
