"""Who measured what, where: the provenance every benchmark JSON carries.

DESIGN.md asks each result to record the command, git commit, machine (CPU model, cores, RAM,
GPU), library versions and date, so numbers from different machines are never confused.
"""

import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux: VmHWM from /proc/self/status, the high-water mark of this process's own address
    space. Not `getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries ru_maxrss across fork + exec,
    so a child started by a large parent (the `hidiff` process with onnxruntime loaded) would
    report the parent's footprint (measured here: 248 MiB instead of 129 MiB). Elsewhere
    ru_maxrss (macOS reports bytes, other systems KiB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import resource  # POSIX only
    except ImportError:  # Windows: the peak working set
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024.0)


_LIBRARIES = ("numpy", "onnxruntime", "SimpleITK", "pydicom", "scipy", "torch")


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where available."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The x86 vector extensions that choose onnxruntime's INT8 kernels (AVX2 without VNNI, VNNI,
# AMX): an INT8 graph's output differs slightly between them, so results name them.
_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_isa() -> list[str]:
    """Which of the INT8-relevant x86 extensions this CPU has (Linux /proc/cpuinfo); the
    architecture name where the flags cannot be read (macOS, Windows, ARM)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in _ISA_FLAGS if f in flags]
    except OSError:
        pass
    return [platform.machine()]


def total_ram_gib() -> float | None:
    """Physical memory in GiB, or None where it cannot be read."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[str]:
    """Names of NVIDIA GPUs reported by nvidia-smi; empty on a machine without one."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def git_commit(cwd: Path | None = None) -> str | None:
    """The checked-out commit (with `-dirty` when the tree has changes), or None outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide numerics and speed."""
    found = {}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, GPUs, OS and Python of this machine."""
    return {
        "cpu_model": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_count": os.cpu_count(),
        "ram_gib": total_ram_gib(),
        "gpus": gpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def provenance(command: Sequence[str] | None = None) -> dict[str, Any]:
    """The header of a benchmark record: command, commit, machine, libraries, UTC date."""
    argv = sys.argv if command is None else list(command)
    return {
        "command": " ".join(shlex.quote(a) for a in argv),
        "commit": git_commit(),
        "machine": machine_info(),
        "libraries": library_versions(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
