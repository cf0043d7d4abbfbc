"""Every kind of the malformed-input corpus is refused by every entry point, the same way.

`hidiff info` and `hidiff synthesize` (as real subprocesses for info, in-process through the
real `hidiff` root for synthesize, plus a few real subprocesses): exit 2, one stderr line that
starts with "error:", names the input and says the problem, no traceback, nothing on stdout,
nothing written to --out, no patient identity, and a bounded peak memory (a header that claims
gigabytes must not get them). The app: `open_upload` (the file, or the folder zipped) and
`open_path` raise `InputError` with the message, and leave nothing in the upload folder.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import KINDS, SECRETS, Kind, upload_of, write_corpus

from apps.scan import open_path, open_upload
from apps.upload import UploadLimits
from edge_runtime.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
HIDIFF = str(Path(sys.executable).parent / "hidiff")
PACKAGE = ROOT / "compress" / "packages" / "aphidiff-tiny-t2-fp32"
# `hidiff info` on a 24x20x8 series peaks near 150 MB (numpy, pydicom, SimpleITK); a header
# whose claim were honoured would need 2 GiB and more.
CHILD_PEAK_MB = 600
IN_PROCESS_GROWTH_MB = 300
SUBPROCESS_SYNTH = ("half-copied slice", "NIfTI claims 2 GiB", "zip bomb", "DICOM SEG")


def test_the_corpus_has_at_least_30_kinds_and_unique_names() -> None:
    names = [k.name for k in KINDS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    assert sum(k.hostile for k in KINDS) >= 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {k.name: p for k, p in write_corpus(tmp_path_factory.mktemp("corpus"))}


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path_factory.mktemp("hidiff-cache")))


def check_refusal(kind: Kind, target: Path, code: int, out: str, err: str) -> str:
    assert code == 2, (kind.name, code, out, err)
    assert out == "", f"{kind.name}: partial output on stdout: {out!r}"
    line = " ".join(err.split())  # rich may wrap a long line at the terminal width
    assert "Traceback" not in err, err
    assert line.startswith("error: "), err
    assert line.count("error: ") == 1, f"{kind.name}: more than one message: {err!r}"
    assert target.name in line, (kind.name, line)
    for word in kind.message:
        assert word.lower() in line.lower(), (kind.name, word, line)
    for secret in SECRETS:
        assert secret not in err, (kind.name, secret)
    return line


# Linux keeps a process's peak RSS across exec, so a child forked from this (large) pytest
# process would report pytest's size: a small launcher forks `hidiff` and reports its peak.
_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
os.write(int(os.environ["HIDIFF_PEAK_FD"]), str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(*args: str) -> tuple[int, str, str, float]:
    """A real `hidiff` process: exit code, stdout, stderr and its peak resident memory (MB).

    Its output (a line or two) fits the pipe buffers.
    """
    peak_r, peak_w = os.pipe()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400", "HIDIFF_PEAK_FD": str(peak_w)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCH, HIDIFF, *args],
            capture_output=True, text=True, env=env, pass_fds=(peak_w,), timeout=300,
        )  # fmt: skip
    finally:
        os.close(peak_w)
    with os.fdopen(peak_r, "rb") as fh:
        peak_kb = int(fh.read() or b"0")
    assert peak_kb > 0, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr, peak_kb / 1024


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_hidiff_info_refuses(kind: Kind, corpus: dict[str, Path]) -> None:
    target = corpus[kind.name]
    code, out, err, peak = run_child("info", str(target))
    check_refusal(kind, target, code, out, err)
    assert peak < CHILD_PEAK_MB, peak


def test_hidiff_info_keeps_its_memory_on_big_claims(corpus: dict[str, Path]) -> None:
    """Each claim of gigabytes is refused by a child whose peak stays far below the claim."""
    for name in (
        "NIfTI claims 2 GiB",
        "gzipped NIfTI claims 256 MiB",
        "enhanced CT claims 320 GiB",
    ):
        kind = next(k for k in KINDS if k.name == name)
        code, out, err, peak = run_child("info", str(corpus[name]))
        check_refusal(kind, corpus[name], code, out, err)
        assert peak < CHILD_PEAK_MB, (name, peak)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_hidiff_synthesize_refuses_and_writes_nothing(
    kind: Kind, corpus: dict[str, Path], tmp_path: Path, hidiff
) -> None:
    target = corpus[kind.name]
    for fmt, out in (("nifti", tmp_path / "mr.nii.gz"), ("dicom", tmp_path / "mr-dicom")):
        args = ("synthesize", target, "--package", PACKAGE, "--out", out, "-p", "cpu")
        run = hidiff(*args, "--format", fmt)
        check_refusal(kind, target, run.code, run.out, run.err)
    assert list(tmp_path.iterdir()) == [], "a refused synthesis wrote something"


@pytest.mark.parametrize("name", SUBPROCESS_SYNTH)
def test_hidiff_synthesize_refuses_as_a_real_process(
    name: str, corpus: dict[str, Path], tmp_path: Path
) -> None:
    kind = next(k for k in KINDS if k.name == name)
    target = corpus[name]
    out = tmp_path / "out"
    code, stdout, stderr, peak = run_child(
        "synthesize", str(target), "--package", str(PACKAGE), "--out", str(out), "-p", "cpu"
    )
    check_refusal(kind, target, code, stdout, stderr)
    assert list(tmp_path.iterdir()) == []
    assert peak < CHILD_PEAK_MB, peak


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_app_refuses_every_kind_and_keeps_its_memory(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    """The app's two ways in: an upload (the file, or the folder zipped) and a local path."""
    workdir = tmp_path / "uploads"
    workdir.mkdir()
    limits = UploadLimits()
    rss_before = _rss_mb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for kind in KINDS:
        target = corpus[kind.name]
        with pytest.raises(InputError) as refused:
            open_path(target)
        text = str(refused.value)
        assert "\n" not in text and target.name in text, (kind.name, text)
        for word in kind.message:
            assert word.lower() in text.lower(), (kind.name, word, text)
        if not target.exists() and not target.is_symlink():
            continue  # nothing to upload
        name, data = upload_of(target)
        with pytest.raises(InputError) as refused:
            open_upload(name, data, workdir, limits)
        text = str(refused.value)
        assert "\n" not in text, (kind.name, text)
        for word in kind.app_message:
            assert word.lower() in text.lower(), (kind.name, word, text)
        for secret in SECRETS:
            assert secret not in text, (kind.name, secret)
        assert list(workdir.iterdir()) == [], f"{kind.name}: the refused upload left files"
    growth = _rss_mb() - rss_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert growth < IN_PROCESS_GROWTH_MB, growth
    # ru_maxrss is the process's peak so far: equal to the peak before means no new peak.
    assert peak <= max(peak_before, rss_before + IN_PROCESS_GROWTH_MB), (peak, peak_before)


def test_readme_lists_every_refused_kind_with_its_message() -> None:
    """The README's "What it refuses and why" table is the corpus: one row per kind, in order,
    whose message holds every word the refusal tests require (regenerate it with
    `corpus.py --table` when a kind or a message changes)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## What it refuses and why", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and " --- " not in ln][1:]
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows] == [k.name for k in KINDS]
    for kind, row in zip(KINDS, rows, strict=True):
        _, why, says = row.removeprefix("| ").removesuffix(" |").split(" | ", 2)
        assert why == kind.why, kind.name
        for word in kind.message + (kind.upload_message or ()):
            assert word.lower() in says.lower(), (kind.name, word, says)
