"""2.5D training examples: CT slice + neighbours -> the aligned MR slice, with masks.

All cases are held in memory (int16 CT, float32 MR: a 256^2 x 48 phantom case is ~40 MB), and
an example is cut out on demand. Which slice, sequence and crop an example uses is decided by a
`torch.Generator` passed in (`sample_batch`), so a training step's batch is a function of the
step's seed: resuming a run reproduces the exact batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from edge_runtime.errors import InputError
from models.aphidiff.config import SEQUENCES, DataConfig
from models.data.cases import CaseArrays, read_case
from models.data.normalise import ct_to_unit, mr_scale, mr_to_unit


def ct_stack(case: CaseArrays, z: int, cfg: DataConfig) -> np.ndarray:
    """(phases * (2 context + 1), H, W) normalised CT around slice z (edges repeated)."""
    depth = next(iter(case.ct.values())).shape[0]
    zs = np.clip(np.arange(z - cfg.context, z + cfg.context + 1), 0, depth - 1)
    return np.concatenate([ct_to_unit(case.ct[p][zs], cfg) for p in cfg.ct_phases], axis=0)


class SliceDataset(Dataset):
    """Examples (case, slice, sequence) over liver-containing slices of the given cases."""

    def __init__(
        self,
        case_dirs: Sequence[Path],
        cfg: DataConfig,
        sequences: Sequence[str] = SEQUENCES,
        liver_only: bool = True,
    ) -> None:
        self.cfg = cfg
        self.sequences = tuple(sequences)
        bad = [s for s in self.sequences if s not in SEQUENCES]
        if bad:
            raise InputError(f"unknown MR sequence(s) {bad}; choose from {SEQUENCES}")
        self.cases = [read_case(d, cfg.ct_phases, self.sequences) for d in case_dirs]
        self.index: list[tuple[int, int]] = []
        self.scales: list[dict[str, float]] = []
        for ci, case in enumerate(self.cases):
            h, w = case.labels.shape[1:]
            if (h, w) != (cfg.grid, cfg.grid):
                raise InputError(
                    f"case {case.case_id} is {h}x{w} in-plane, the model's grid is "
                    f"{cfg.grid}x{cfg.grid}: render or prepare the data at that grid"
                )
            body = case.labels > 0
            self.scales.append(
                {s: mr_scale(case.mr[s], body, cfg.mr_percentile) for s in self.sequences}
            )
            liver_id = case.label_table.get("liver")
            if liver_only and liver_id is not None:
                zs = np.flatnonzero((case.labels == liver_id).any(axis=(1, 2)))
            else:
                zs = np.arange(case.labels.shape[0])
            self.index += [(ci, int(z)) for z in zs]
        if not self.index:
            raise InputError("no slices with liver in the given cases")
        if cfg.crop > cfg.grid:
            raise InputError(f"crop {cfg.crop} is larger than the grid {cfg.grid}")

    def reference_scales(self) -> dict[str, float]:
        """Median MR scale per sequence over the cases: de-normalises predictions."""
        return {s: float(np.median([sc[s] for sc in self.scales])) for s in self.sequences}

    def __len__(self) -> int:
        return len(self.index) * len(self.sequences)

    def example(self, i: int, top: int = 0, left: int = 0) -> dict[str, torch.Tensor]:
        """Example i (slice-major, then sequence) cropped at (top, left)."""
        ci, z = self.index[i // len(self.sequences)]
        seq = self.sequences[i % len(self.sequences)]
        case, c = self.cases[ci], self.cfg.crop
        win = (slice(top, top + c), slice(left, left + c))
        ct = ct_stack(case, z, self.cfg)[(slice(None), *win)]
        mr = mr_to_unit(case.mr[seq][z][win], self.scales[ci][seq])
        lesions = case.lesions[z][win] > 0
        return {
            "ct": torch.from_numpy(np.ascontiguousarray(ct)),
            "mr": torch.from_numpy(np.ascontiguousarray(mr))[None],
            "sequence": torch.tensor(SEQUENCES.index(seq), dtype=torch.int64),
            "vessels": torch.from_numpy((case.vessels[z][win] > 0).astype(np.float32))[None],
            "lesions": torch.from_numpy(lesions.astype(np.int64)),
        }

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.example(i)

    def sample_batch(
        self, batch_size: int, generator: torch.Generator, indices: Sequence[int] | None = None
    ) -> dict[str, torch.Tensor]:
        """A random batch: examples and crop offsets drawn from `generator` only.

        `indices` restricts the draw (a DDP rank's shard); default: the whole dataset.
        """
        pool = list(range(len(self))) if indices is None else list(indices)
        pick = torch.randint(0, len(pool), (batch_size,), generator=generator).tolist()
        span = self.cfg.grid - self.cfg.crop + 1
        offs = torch.randint(0, span, (batch_size, 2), generator=generator).tolist()
        items = [self.example(pool[p], *o) for p, o in zip(pick, offs, strict=True)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}
