"""The soak test's worker: one process synthesizes a CT over and over through the runtime.

    python soak_child.py CT.nii.gz PACKAGE OUT_DIR SLICES

Each round reads the CT from disk, synthesizes it with the package on the CPU and writes the
MR as NIfTI (replacing the last round's), so the reader, the engine and the writer all run in
the same long-lived process a clinic's workstation would keep. After every round it records
its resident memory (VmRSS) and its open file descriptors, and at the end prints one JSON line:
{"rounds": [{"slices_done", "rss_kib", "fds"}, ...], "seconds": ...}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from edge_runtime.io import read_image
from edge_runtime.io.write import write_nifti
from edge_runtime.package.loader import load_package
from edge_runtime.synthesizer import Synthesizer


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main(ct_path: str, package: str, out_dir: str, total: int) -> None:
    synth = Synthesizer(load_package(Path(package)), provider="cpu", batch=8)
    out = Path(out_dir) / "synth_mr_t2.nii.gz"
    rounds = []
    done = 0
    start = time.perf_counter()
    while done < total:
        ct = read_image(ct_path)
        result = synth.run(ct, "t2", None, seed=done)
        write_nifti(result.image, out, overwrite=True)
        done += result.stats.slices
        rounds.append({"slices_done": done, "rss_kib": rss_kib(), "fds": open_fds()})
    print(json.dumps({"rounds": rounds, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
