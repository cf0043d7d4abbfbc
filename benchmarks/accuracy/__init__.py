"""Accuracy of synthetic MRI against the phantom's truth: image, structure, distribution, typing.

Modules by what they judge: `vessels` (clDice, Betti-0), `lesions` (detection per size bin,
CNR, hallucination at shunts), `geometry` (boundary error in mm per region), `distribution`
(Frechet distance in a fixed filter-bank feature space), `lesion_typing` (5-fold CV classifier),
`cohort` (reading truth and prediction folders), `evaluate` (one row per method x case x
sequence), `figures`, and `run` (the `hidiff bench accuracy` pipeline). Image metrics
themselves live in `edge_runtime.metrics` so a device computes them the same way.
"""
