"""Datasets: one case interface (`CaseDataset`, `Case`) over the phantom cohort and the public
abdominal sets (CHAOS, AMOS, Learn2Reg AbdomenMRCT, SynthRAD2025 abdomen)."""

from models.datasets.amos import AMOS
from models.datasets.base import Case, CaseDataset, Geometry, ImageRef
from models.datasets.chaos import CHAOS
from models.datasets.learn2reg import Learn2RegAbdomenMRCT
from models.datasets.phantom import PhantomCohort
from models.datasets.registry import ADAPTERS, open_dataset
from models.datasets.synthrad import SynthRAD2025Abdomen

__all__ = [
    "ADAPTERS",
    "AMOS",
    "CHAOS",
    "Case",
    "CaseDataset",
    "Geometry",
    "ImageRef",
    "Learn2RegAbdomenMRCT",
    "PhantomCohort",
    "SynthRAD2025Abdomen",
    "open_dataset",
]
