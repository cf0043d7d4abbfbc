"""`--grid G`: the size of the CT slices fed to a package, resampled by the runtime to its grid.

A format-1 package runs on one grid (`manifest.grid`: H x W pixels of spacing s mm). A scan
arrives at whatever matrix it was reconstructed at, and the runtime resamples it onto the
package's grid before the encoder and the result back onto the scan's grid after the sampler
(`edge_runtime.resample.ModelGrid`, what the Synthesizer does). `--grid G` measures a call as a
clinic's scan of G x G slices would cost it: the batch's slices are G x G pixels covering the
package's field of view (H x s mm, so pixels of H x s / G mm), and one timed call is

    resample the batch onto the package grid (linear, SimpleITK) -> HU window -> the 2.5D
    neighbour stacks (`edge_runtime.synthesizer.neighbour_stack`) -> Engine.encode ->
    the sampler -> de-normalise -> resample the output back onto the G x G grid.

So G = H still pays the (near-identity) resampling; without `--grid` a call is the engine alone
on the package grid. The slices are the package's own reference CT slices (HU from the model
window, so values outside the window are clipped), put on the G x G grid once, untimed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.errors import InputError
from edge_runtime.io.image import MedicalImage
from edge_runtime.normalise import from_model_space
from edge_runtime.package.loader import EdgePackage
from edge_runtime.resample import ModelGrid
from edge_runtime.synthesizer import neighbour_stack

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class InputGrid:
    """A batch of G x G CT slices and the runtime's way onto the package grid and back."""

    package: EdgePackage
    image: MedicalImage  # the batch as (N, G, G) HU at the package's field of view
    grid: ModelGrid  # the package's grid over that image

    @classmethod
    def build(cls, package: EdgePackage, ct_model: np.ndarray, size: int) -> InputGrid:
        """`ct_model`: (N, C, H, W) model-space CT, the centre channel of each is a slice."""
        m = package.manifest
        c = m.task.context_slices
        if m.task.in_channels != 2 * c + 1:
            raise InputError(
                f"--grid needs a one-phase package; {m.name!r} reads {m.task.in_channels} "
                "channels (several CT phases)"
            )
        if size < 1:
            raise InputError(f"--grid values must be >= 1, got {size}")
        (h, w), (sy, sx) = m.grid.shape, m.grid.spacing_mm
        norm = m.normalisation
        hu = from_model_space(ct_model[:, c], norm.ct_hu_window, norm.model_range)
        thick = m.grid.slice_thickness_mm or 1.0
        on_package = MedicalImage(hu, (0.0, 0.0, 0.0), (sx, sy, thick), IDENTITY)
        to_input = ModelGrid.for_image(on_package, (h * sy / size, w * sx / size))
        ref = to_input.reference
        image = MedicalImage(
            to_input.to_model(on_package), ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection()
        )
        grid = ModelGrid.for_image(image, (sy, sx))
        if grid.shape[1:] != (h, w):  # pragma: no cover - the field of view is the package's
            raise RuntimeError(f"{size}^2 input resamples to {grid.shape[1:]}, not {(h, w)}")
        return cls(package, image, grid)

    def to_model(self) -> np.ndarray:
        """The batch on the package grid, as the encoder reads it: (N, 2c+1, H, W)."""
        m = self.package.manifest
        hu = self.grid.to_model(self.image)
        c = m.task.context_slices
        # The batch's slices are consecutive at the package's slice thickness.
        offsets = np.arange(-c, c + 1, dtype=np.float64)
        whole = (slice(None), slice(None))
        stacks = np.stack([neighbour_stack(hu, z, offsets, whole) for z in range(hu.shape[0])])
        return m.normalisation.ct_to_model(stacks)

    def to_input(self, x: np.ndarray) -> np.ndarray:
        """The model's output (N, C, H, W) as MR on the G x G input grid: (N, G, G)."""
        m = self.package.manifest
        mr = m.normalisation.model_to_mr(x[:, 0], m.task.outputs[0].mr_range)
        return self.grid.to_image(mr, self.image)
