"""Coverage-guided fuzzing of the readers with atheris (libFuzzer for Python).

    .venv/bin/python tests/reliability/fuzz_readers.py KIND WORKDIR -max_total_time=60

KIND is dicom, nifti, nifti_gz or mha. The seed (a valid file from the project's writers) is put
in WORKDIR/corpus; libFuzzer mutates it, guided by the coverage of edge_runtime.io, pydicom's
reader and our checks. An input that makes `read_bytes` do anything but return a volume or
refuse with one-line `InputError` (another exception, a failed assertion, non-finite voxels)
is a crash: libFuzzer writes it to WORKDIR/crash-*, and test_fuzz_slow.py keeps it in
fuzz_crashes/ as a regression that test_reader_fuzz.py replays.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["edge_runtime", "pydicom"]):
    from reader_targets import read_bytes, seed_bytes


def main(argv: list[str]) -> None:
    kind, work = argv[1], Path(argv[2])
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / f"seed-{kind}").write_bytes(seed_bytes(kind))

    def one_input(data: bytes) -> None:
        read_bytes(data, kind)

    atheris.Setup(
        [argv[0], *argv[3:], f"-artifact_prefix={work}/", str(corpus)],
        one_input,
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
