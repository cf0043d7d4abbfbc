"""The procedural liver phantom: one synthetic patient as multi-phase CT and multi-sequence MRI.

Public API (docs/phantom-contract.md, docs/phantom.md): `PhantomConfig`, `render_case`,
`PhantomCase`, `write_case`, `write_cohort`, and the label tables `LABELS`, `VESSEL_LABELS`.

READ FIRST (engineers working on this package): docs/phantom-contract.md fixes the case/cohort
file contract and the Python API other parts of the project are built against, and
docs/CONTRIBUTING.md has the house rules for working in this shared tree.
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
