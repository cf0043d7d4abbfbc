"""The procedural liver phantom: one synthetic patient as multi-phase CT and multi-sequence MRI.

Public API (docs/phantom-contract.md, docs/phantom.md): `PhantomConfig`, `render_case`,
`PhantomCase`, `write_case`, `write_cohort`, and the label tables `LABELS`, `VESSEL_LABELS`.
docs/phantom-contract.md is the file contract the rest of the project is built against: change
it only together with its readers.
"""

from models.phantom.case import PhantomCase, render_case
from models.phantom.cohort import write_cohort
from models.phantom.config import LESION_TYPES, PhantomConfig
from models.phantom.io import write_case
from models.phantom.render import LABELS, VESSEL_LABELS

__all__ = [
    "LABELS",
    "LESION_TYPES",
    "VESSEL_LABELS",
    "PhantomCase",
    "PhantomConfig",
    "render_case",
    "write_case",
    "write_cohort",
]
