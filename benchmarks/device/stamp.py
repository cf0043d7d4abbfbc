"""`python -m benchmarks.device.stamp`: the `<date>-<machine>` stem of this machine's result
files, e.g. `20261125-amd-epyc-2c` (UTC date, CPU model, cores, first GPU), so that `make bench`
names its outputs `benchmarks/results/<date>-<machine>-device.json` and results from different
machines never overwrite each other."""

from __future__ import annotations

import datetime as dt
import re

from edge_runtime.machine import cpu_model, gpus
from edge_runtime.providers import machine_threads


def slug(text: str) -> str:
    """Lower-case words joined by dashes; trademarks and vendor noise dropped."""
    text = re.sub(r"\((r|tm|R|TM)\)|\bcpu\b|\bprocessor\b|\bwith\b.*", " ", text, flags=re.I)
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:40].strip("-")


def machine_stem(date: dt.date | None = None) -> str:
    """`<YYYYMMDD>-<cpu>-<cores>c[-<gpu>]` for this machine."""
    day = (date or dt.datetime.now(dt.UTC).date()).strftime("%Y%m%d")
    stem = f"{day}-{slug(cpu_model())}-{machine_threads()}c"
    found = gpus()
    if found:
        stem += "-" + slug(found[0].split(",")[0].replace("NVIDIA", ""))
    return stem


if __name__ == "__main__":
    print(machine_stem())
