"""ANTs SyN (antspyx) as the alternative to Elastix: affine, then symmetric normalisation.

SyN is diffeomorphic by construction (the Jacobian stays positive), which is why the method we
build on used it for breathing. ANTs keeps its result as a chain of transform files; we compose
the chain into one dense displacement field on the CT grid so that QA, warping and the training
pairs treat both methods the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import SimpleITK as sitk

from edge_runtime.errors import MissingDependencyError
from models.preprocess.fields import as_displacement_field

if TYPE_CHECKING:
    from models.preprocess.registration import SynSettings


def _ants():
    try:
        import ants
    except ImportError as exc:  # antspyx is in the `models` extra
        raise MissingDependencyError(
            "--method syn needs antspyx: pip install 'hidiff-edge[models]'"
        ) from exc
    return ants


def syn_field(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None,
    settings: SynSettings,
) -> sitk.Image:
    """The composed affine + SyN displacement field on `fixed`'s grid (p -> p + u(p) in moving)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(settings.threads)
    ants = _ants()
    with tempfile.TemporaryDirectory(prefix="hidiff-syn-") as tmp:
        tmpdir = Path(tmp)

        def to_ants(image: sitk.Image, name: str):
            path = tmpdir / f"{name}.nii.gz"
            sitk.WriteImage(image, str(path))
            return ants.image_read(str(path))

        fx = to_ants(sitk.Cast(fixed, sitk.sitkFloat32), "fixed")
        mv = to_ants(sitk.Cast(moving, sitk.sitkFloat32), "moving")
        kwargs = {}
        if fixed_mask is not None:
            kwargs["mask"] = to_ants(sitk.Cast(fixed_mask > 0, sitk.sitkFloat32), "fmask")
        if moving_mask is not None:
            kwargs["moving_mask"] = to_ants(sitk.Cast(moving_mask > 0, sitk.sitkFloat32), "mmask")
        reg = ants.registration(
            fixed=fx,
            moving=mv,
            type_of_transform=settings.transform,
            aff_metric=settings.metric,
            syn_metric=settings.metric,
            grad_step=settings.grad_step,
            flow_sigma=settings.flow_sigma,
            total_sigma=settings.total_sigma,
            reg_iterations=settings.reg_iterations,
            aff_iterations=settings.aff_iterations,
            aff_shrink_factors=settings.aff_shrink_factors,
            aff_smoothing_sigmas=settings.aff_smoothing_sigmas,
            random_seed=settings.seed,
            outprefix=str(tmpdir / "syn_"),
            verbose=False,
            **kwargs,
        )
        composed = ants.apply_transforms(
            fixed=fx,
            moving=mv,
            transformlist=reg["fwdtransforms"],
            compose=str(tmpdir / "composed_"),
        )
        disp = sitk.ReadImage(composed)
    disp = as_displacement_field(disp)
    disp.CopyInformation(fixed)  # same grid; remove float round-off in the written header
    return disp
