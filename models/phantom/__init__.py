"""The procedural liver phantom: one synthetic patient as multi-phase CT and multi-sequence MRI.

READ FIRST (engineers working on this package): docs/phantom-contract.md fixes the case/cohort
file contract and the Python API other parts of the project are built against, and
docs/CONTRIBUTING.md has the house rules for working in this shared tree (commit only your
own paths, final commit by 10:00 UTC, etc.).
"""
