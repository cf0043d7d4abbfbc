"""Result file names: `<date>-<machine>` from the CPU (and GPU) names."""

from __future__ import annotations

import datetime as dt
import re

from benchmarks.device.stamp import machine_stem, slug


def test_slug_drops_trademarks_and_keeps_the_model() -> None:
    assert slug("Intel(R) Core(TM) i7-1165G7 @ 2.80GHz") == "intel-core-i7-1165g7-2-80ghz"
    assert slug("AMD EPYC 7B13 64-Core Processor") == "amd-epyc-7b13-64-core"
    assert slug("Apple M2 Pro") == "apple-m2-pro"


def test_machine_stem_has_date_cpu_and_cores() -> None:
    stem = machine_stem(dt.date(2026, 11, 25))
    assert re.fullmatch(r"20261125-[a-z0-9-]+-\d+c(-[a-z0-9-]+)?", stem), stem
