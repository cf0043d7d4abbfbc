"""Deformable MR -> CT registration: Elastix (rigid, then cubic B-spline) or ANTs SyN.

The CT grid is the model's input grid, so the CT is always the fixed image and the MR is
resampled into it. Both methods return the same thing: the warped MR, a dense displacement field
on the CT grid in the phantom's convention (see `fields`), and the similarity before and after.
The Elastix parameter maps are text files under `params/` so that they can be read, diffed and
tuned without touching code.

With liver segmentations of both images (`fixed_liver`, `moving_liver`: `hidiff prepare
--liver-mask` takes them from the CT and MR label maps) Elastix registers three image pairs at
once (`params/bspline_liver.txt`): the intensities by mutual information, the signed distance
maps to the two livers by mean squares, and a bending-energy penalty, with the metric sampled in
the CT liver dilated by a few millimetres. Mutual information alone is biased on the phantom (it
prefers a field ~1-2 mm away from the true one, docs/preprocess.md); the distance maps pin the
liver surface and the tight mask keeps the sliding chest and back wall out of the metric.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from edge_runtime.errors import InputError
from models.preprocess.fields import (
    check_volume,
    field_from_array,
    overlap_fraction,
    same_grid,
    warp,
)

PARAMS_DIR = Path(__file__).resolve().parent / "params"
METHODS = ("elastix", "syn", "motion")


@dataclass
class InputLimits:
    """What counts as a usable pair; beyond these the inputs are refused, not guessed at."""

    min_overlap: float = 0.5  # share of the CT's box the MR must cover: less is another body part
    max_spacing_ratio: float = 4.0  # per axis; beyond this one image is far coarser than the other
    pad_mm: float = 40.0  # moving image padded (edge replicated) by this much: see `pad_moving`


@dataclass
class ElastixSettings:
    """Which parameter-map files run, in order, and with how many threads."""

    stages: tuple[str, ...] = ("rigid", "bspline")  # files params/<stage>.txt, image only
    # With both liver segmentations. `rigid_liver` may precede it for scans with a patient-
    # position change; on the phantom (none) it changed nothing (0.95 -> 0.95 mm) for +70% time.
    liver_stages: tuple[str, ...] = ("bspline_liver",)
    params_dir: Path = PARAMS_DIR
    threads: int = 2  # two cores are shared on CI; elastix scales well beyond that elsewhere
    # What the metric sees (the outputs are warped from the original images): the CT in a soft-
    # tissue window, so that liver, vessels, muscle and fat get their own histogram bins instead
    # of sharing two bins of a -1000..1000 HU range, and the MR clipped at this percentile of
    # its body signal (bright fluid and fat outliers would squeeze the tissue the same way).
    ct_window_hu: tuple[float, float] = (-200.0, 300.0)
    mr_percentile: float = 99.0
    distance_clip_mm: float = 30.0  # liver distance maps saturate beyond this (mm)


@dataclass
class SynSettings:
    """ANTs SyN: affine then symmetric normalisation, Mattes MI at every level."""

    transform: str = "SyNOnly"  # no affine stage: MI slid the phantom's MR 50 mm in z with one
    metric: str = "mattes"
    grad_step: float = 0.2
    flow_sigma: float = (
        3.0  # smoothing of the update field (voxels): regularises like bending energy
    )
    total_sigma: float = 0.0
    reg_iterations: tuple[int, ...] = (60, 40, 20)
    aff_iterations: tuple[int, ...] = (200, 100, 50)
    aff_shrink_factors: tuple[int, ...] = (4, 2, 1)
    aff_smoothing_sigmas: tuple[int, ...] = (2, 1, 0)
    threads: int = 2
    seed: int = 20251125


@dataclass
class RegistrationConfig:
    """Method choice plus each method's settings; the CLI's `--method` picks `method`."""

    method: str = "elastix"
    limits: InputLimits = field(default_factory=InputLimits)
    elastix: ElastixSettings = field(default_factory=ElastixSettings)
    syn: SynSettings = field(default_factory=SynSettings)
    metric_bins: int = 32  # histogram bins of the independent MI measured before/after
    motion_components: int = 1  # PCA components of the 4D-CT motion model searched by `motion`


@dataclass
class RegistrationResult:
    """Everything a caller needs to warp other images and to judge the registration."""

    warped: sitk.Image  # the moving image resampled onto the fixed grid
    field: sitk.Image  # displacement (mm, LPS) on the fixed grid, p -> p + u(p) in the moving
    method: str
    seconds: float
    metric_before: float  # Mattes MI (negated, lower is better) of the pair before registration
    metric_after: float


def check_pair(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    limits: InputLimits | None = None,
) -> None:
    """Refuse pairs that no registration can or should align, with a message saying why."""
    limits = limits or InputLimits()
    check_volume(fixed, "fixed image (CT)")
    check_volume(moving, "moving image (MR)")
    if fixed.GetNumberOfComponentsPerPixel() != 1 or moving.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("registration needs scalar images, not vector or RGB images")
    ratio = np.asarray(fixed.GetSpacing()) / np.asarray(moving.GetSpacing())
    if np.any(ratio > limits.max_spacing_ratio) or np.any(ratio < 1 / limits.max_spacing_ratio):
        raise InputError(
            f"voxel spacings differ too much: CT {tuple(round(s, 3) for s in fixed.GetSpacing())} mm "
            f"vs MR {tuple(round(s, 3) for s in moving.GetSpacing())} mm "
            f"(limit: a factor {limits.max_spacing_ratio} per axis); resample one of them first"
        )
    share = overlap_fraction(fixed, moving)
    if share < limits.min_overlap:
        raise InputError(
            f"the images do not overlap: the MR covers {100 * share:.0f}% of the CT's extent "
            f"(at least {100 * limits.min_overlap:.0f}% needed); check origins and orientation"
        )
    for mask, image, name in ((fixed_mask, fixed, "fixed"), (moving_mask, moving, "moving")):
        if mask is None:
            continue
        if not same_grid(mask, image):
            raise InputError(f"the {name} mask is not on the {name} image's grid")
        if not np.any(sitk.GetArrayViewFromImage(mask)):
            raise InputError(f"the {name} mask is empty: no voxel is set")


def mutual_information(
    fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image | None = None, bins: int = 32
) -> float:
    """Mattes MI of two images on one grid, negated as ITK reports it (lower is better).

    Measured by SimpleITK on every voxel, independently of the method that registered, so the
    before/after numbers of Elastix and SyN are comparable.
    """
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetInitialTransform(sitk.Transform(fixed.GetDimension(), sitk.sitkIdentity))
    if mask is not None:
        reg.SetMetricFixedMask(sitk.Cast(mask > 0, sitk.sitkUInt8))
    return float(
        reg.MetricEvaluate(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32))
    )


def pad_moving(moving: sitk.Image, pad_mm: float) -> sitk.Image:
    """The moving image extended by replicating its edge voxels, `pad_mm` on every side.

    Mutual information in ITK, Elastix and ANTs drops the samples that map outside the moving
    image, so a transform that pushes part of the fixed image out of a truncated field of view
    (the z ends of an abdominal scan) raises MI by discarding the hard regions. On the phantom
    both libraries slid the MR ~50 mm in z that way; with replicated edges no sample falls
    outside and the attractor disappears.
    """
    if pad_mm <= 0:
        return moving
    pad = [int(np.ceil(pad_mm / s)) for s in moving.GetSpacing()]
    return sitk.ZeroFluxNeumannPad(moving, pad, pad)


def metric_inputs(
    fixed: sitk.Image, moving: sitk.Image, settings: ElastixSettings
) -> tuple[sitk.Image, sitk.Image]:
    """The CT windowed and the MR clipped as the Elastix metric sees them (float32)."""
    lo, hi = settings.ct_window_hu
    ct = sitk.Clamp(sitk.Cast(fixed, sitk.sitkFloat32), sitk.sitkFloat32, lo, hi)
    mr = sitk.Cast(moving, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(mr)
    body = arr[arr > 0.05 * float(arr.max())] if float(arr.max()) > 0 else arr.ravel()
    top = float(np.percentile(body, settings.mr_percentile)) if body.size else float(arr.max())
    if top > float(arr.min()):
        mr = sitk.Clamp(mr, sitk.sitkFloat32, float(arr.min()), top)
    return ct, mr


def distance_map(mask: sitk.Image, clip_mm: float) -> sitk.Image:
    """Signed distance (mm) to a binary mask's surface, negative inside, clipped to +-clip_mm."""
    binary = sitk.Cast(mask > 0, sitk.sitkUInt8)
    dist = sitk.SignedMaurerDistanceMap(
        binary, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.Clamp(sitk.Cast(dist, sitk.sitkFloat32), sitk.sitkFloat32, -clip_mm, clip_mm)


def _to_itk(image: sitk.Image, pixel: type = np.float32):
    import itk

    out = itk.image_from_array(np.ascontiguousarray(sitk.GetArrayFromImage(image).astype(pixel)))
    out.SetOrigin(image.GetOrigin())
    out.SetSpacing(image.GetSpacing())
    out.SetDirection(np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3))
    return out


def load_parameter_maps(settings: ElastixSettings, stages: tuple[str, ...] | None = None):
    """An itk ParameterObject holding the stage files (default `settings.stages`), in order."""
    import itk

    params = itk.ParameterObject.New()
    for stage in settings.stages if stages is None else stages:
        path = Path(settings.params_dir) / f"{stage}.txt"
        if not path.is_file():
            raise InputError(f"elastix parameter map {path} does not exist")
        params.AddParameterFile(str(path))
    return params


def _elastix_field(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None,
    settings: ElastixSettings,
    distance_maps: tuple[sitk.Image, sitk.Image] | None = None,
) -> sitk.Image:
    """The Elastix field on `fixed`'s grid; `distance_maps` (fixed, moving) add the liver term."""
    import itk

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(settings.threads)
    fixed_in, moving_in = metric_inputs(fixed, moving, settings)
    moving_itk = _to_itk(moving_in)
    if distance_maps is None:
        kwargs = {}
        if fixed_mask is not None:
            kwargs["fixed_mask"] = _to_itk(fixed_mask, np.uint8)
        if moving_mask is not None:
            kwargs["moving_mask"] = _to_itk(moving_mask, np.uint8)
        _, transform = itk.elastix_registration_method(
            _to_itk(fixed_in),
            moving_itk,
            parameter_object=load_parameter_maps(settings),
            log_to_console=False,
            number_of_threads=settings.threads,
            **kwargs,
        )
    else:
        # Multi-image registration: pair k of images feeds metric k of the parameter map; the
        # third pair is a placeholder for the bending-energy penalty (see bspline_liver.txt).
        image = itk.Image[itk.F, 3]
        method = itk.ElastixRegistrationMethod[image, image].New()
        pairs = [(fixed_in, moving_itk), (distance_maps[0], _to_itk(distance_maps[1]))]
        pairs.append((fixed_in, moving_itk))
        for k, (f, m) in enumerate(pairs):
            f_itk = f if not isinstance(f, sitk.Image) else _to_itk(f)
            if k == 0:
                method.SetFixedImage(f_itk)
                method.SetMovingImage(m)
            else:
                method.AddFixedImage(f_itk)
                method.AddMovingImage(m)
        if fixed_mask is not None:
            method.SetFixedMask(_to_itk(fixed_mask, np.uint8))
        if moving_mask is not None:
            method.SetMovingMask(_to_itk(moving_mask, np.uint8))
        method.SetParameterObject(load_parameter_maps(settings, settings.liver_stages))
        method.SetLogToConsole(False)
        method.SetNumberOfThreads(settings.threads)
        method.Update()
        transform = method.GetTransformParameterObject()
    # transformix writes deformationField.nii.gz into its output directory (the working
    # directory by default): keep it in a private temporary folder.
    with tempfile.TemporaryDirectory(prefix="hidiff-transformix-") as scratch:
        dense = itk.transformix_deformation_field(
            moving_itk, transform, output_directory=scratch, log_to_console=False
        )
        arr = np.asarray(itk.array_from_image(dense), dtype=np.float64)
    return field_from_array(arr, fixed)


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    fixed_liver: sitk.Image | None = None,
    moving_liver: sitk.Image | None = None,
    config: RegistrationConfig | None = None,
    four_d_fields: list[np.ndarray] | None = None,
) -> RegistrationResult:
    """Align `moving` (MR) to `fixed` (CT); the masks, if given, restrict where similarity counts.

    `fixed_liver` and `moving_liver` (binary liver segmentations on the CT and the MR grid, both
    or neither) make Elastix match their signed distance maps as well (`bspline_liver.txt`);
    SyN and `motion` use the fixed mask only.

    `method="motion"` needs `four_d_fields`: the displacement fields (z, y, x, 3) from this CT to
    each phase of the patient's 4D-CT. The CT -> MR field is then searched only within their PCA
    motion model (one breathing score, MI against the CT), see `motion.estimate_scores`.
    """
    config = config or RegistrationConfig()
    if config.method not in METHODS:
        raise InputError(f"unknown registration method {config.method!r}; choose one of {METHODS}")
    check_pair(fixed, moving, fixed_mask, moving_mask, config.limits)
    if (fixed_liver is None) != (moving_liver is None):
        raise InputError("liver segmentations are needed for both images (CT and MR) or neither")
    if fixed_liver is not None:
        check_pair(fixed, moving, fixed_liver, moving_liver, config.limits)
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    start = time.perf_counter()
    padded = pad_moving(moving, config.limits.pad_mm)
    if moving_mask is not None:
        moving_mask = pad_moving(moving_mask, config.limits.pad_mm)
    if config.method == "motion":
        from models.preprocess.motion import MotionModel, estimate_scores

        if not four_d_fields:
            raise InputError(
                "--method motion needs the patient's 4D-CT fields (motion_ct4d_phaseKK); "
                "this case has none: use elastix or syn"
            )
        model = MotionModel.fit(four_d_fields, config.motion_components)
        mask = None if fixed_mask is None else sitk.GetArrayFromImage(fixed_mask) > 0
        scores = estimate_scores(model, moving, fixed, mask=mask, metric="mi")
        disp = field_from_array(model.field(scores), fixed)
    elif config.method == "elastix":
        maps = None
        if fixed_liver is not None and moving_liver is not None:
            clip = config.elastix.distance_clip_mm
            maps = (
                distance_map(fixed_liver, clip),
                pad_moving(distance_map(moving_liver, clip), config.limits.pad_mm),
            )
        disp = _elastix_field(fixed, padded, fixed_mask, moving_mask, config.elastix, maps)
    else:
        from models.preprocess.syn import syn_field

        disp = syn_field(fixed, padded, fixed_mask, moving_mask, config.syn)
    seconds = time.perf_counter() - start
    warped = warp(moving, disp, interpolator="bspline")
    on_grid = sitk.Resample(moving, fixed, sitk.Transform(), sitk.sitkLinear, 0.0)
    return RegistrationResult(
        warped=warped,
        field=disp,
        method=config.method,
        seconds=seconds,
        metric_before=mutual_information(fixed, on_grid, fixed_mask, config.metric_bins),
        metric_after=mutual_information(fixed, warped, fixed_mask, config.metric_bins),
    )
