"""The malformed-input corpus: every kind of bad scan a clinic can hand the runtime, generated.

Odd exports from old scanners, half-copied folders, zips from e-mail and outright hostile files,
each built from a small clean CT (written by the project's own writer, with an identifiable fake
patient) and damaged in exactly one way. Nothing here is a stored binary blob: a kind is a
function that writes its input under a folder and says which words the refusal must contain.

`KINDS` drives tests/reliability/test_refusals.py (through `hidiff info`, `hidiff synthesize` and
the app's upload) and the README's "What it refuses and why" table. As a script it writes the
whole corpus, or prints that table (each kind through a real `hidiff info`):

    .venv/bin/python tests/reliability/corpus.py OUT_FOLDER
    .venv/bin/python tests/reliability/corpus.py --table
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from iohelpers import PATIENT, SECRETS, ct_image, edit_file, files_of

from edge_runtime.io import write_ct_series

__all__ = ["KINDS", "SECRETS", "Kind", "upload_of", "write_corpus"]


@dataclass(frozen=True)
class Kind:
    """One kind of bad input: how to build it and what every refusal of it must say."""

    name: str
    why: str  # one line for the docs: what it is, where it comes from
    build: Callable[[Path], Path]  # writes the input under the folder given, returns its path
    message: tuple[str, ...]  # words of the one-line refusal (`hidiff info`, `synthesize`)
    upload_message: tuple[str, ...] | None = None  # the app's, where it differs
    hostile: bool = False

    @property
    def app_message(self) -> tuple[str, ...]:
        return self.upload_message or self.message


# ---------------------------------------------------------------- building blocks


def _series(root: Path, name: str = "series", **kw) -> Path:
    """A clean 8-slice CT series (24x20 pixels) of the fake patient."""
    folder = root / name
    image = kw.pop("image", None) or ct_image()
    write_ct_series(image, folder, patient=PATIENT, **kw)
    return folder


def _each(folder: Path, change: Callable[[pydicom.Dataset], None]) -> Path:
    for f in files_of(folder):
        edit_file(f, change)
    return folder


def _nifti(path: Path, vol: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(path))
    return path


def _nifti_claiming(path: Path, dims: tuple[int, int, int], datatype: int, bitpix: int) -> Path:
    """An uncompressed NIfTI-1 file whose header claims `dims` but which holds 8 voxels."""
    small = path.with_name(f".small-{path.name}")
    _nifti(small, np.zeros((2, 2, 2), np.int16))
    header = bytearray(small.read_bytes())
    small.unlink()
    struct.pack_into("<8h", header, 40, 3, *dims, 1, 1, 1, 1)
    struct.pack_into("<2h", header, 70, datatype, bitpix)
    path.write_bytes(bytes(header))
    return path


def _mha(path: Path, spacing: str = "1 1 1", matrix: str = "1 0 0 0 1 0 0 0 1") -> Path:
    data = np.zeros((3, 4, 5), np.float32).tobytes()
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"CompressedData = False\nTransformMatrix = {matrix}\nOffset = 0 0 0\n"
        f"ElementSpacing = {spacing}\nDimSize = 5 4 3\nElementType = MET_FLOAT\n"
        "ElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + data)
    return path


def _zip(path: Path, members: list[tuple[str, bytes]], links: dict[str, str] | None = None) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    path.write_bytes(buf.getvalue())
    return path


def _copy_test_file(root: Path, name: str, target: str | None = None) -> Path:
    src = get_testdata_file(name)
    assert src is not None, f"pydicom's test file {name} is missing"
    dest = root / (target or name)
    shutil.copy(src, dest)
    return dest


# ---------------------------------------------------------------- the kinds: files and folders


def missing_path(root: Path) -> Path:
    return root / "nowhere"


def empty_folder(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


def folder_without_dicom(root: Path) -> Path:
    folder = root / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("exported by PACS\n")
    (folder / "thumb.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    return folder


def half_copied_slice(root: Path) -> Path:
    folder = _series(root)
    victim = files_of(folder)[3]
    victim.write_bytes(victim.read_bytes()[:-300])
    return folder


def truncated_header(root: Path) -> Path:
    folder = _series(root)
    victim = files_of(folder)[2]
    victim.write_bytes(victim.read_bytes()[:400])
    return folder


def rt_plan_file(root: Path) -> Path:
    return _copy_test_file(root, "rtplan.dcm")


def rt_structure_set(root: Path) -> Path:
    return _copy_test_file(root, "rtstruct.dcm")


def dicom_seg(root: Path) -> Path:
    """A DICOM SEG (highdicom, binary, 8 frames) referencing a clean CT series."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source = [pydicom.dcmread(f) for f in files_of(_series(root, "ct-for-seg"))]
    mask = np.zeros((len(source), source[0].Rows, source[0].Columns), dtype=bool)
    mask[2:6, 5:15, 5:15] = True
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="liver",
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="HiDiff-Edge tests",
        manufacturer_model_name="corpus",
        software_versions="1",
        device_serial_number="1",
    )
    shutil.rmtree(root / "ct-for-seg")
    target = root / "liver_seg.dcm"
    seg.save_as(target)
    return target


def two_series_mixed(root: Path) -> Path:
    mixed = root / "mixed"
    mixed.mkdir()
    for tag, seed, desc in (("a", 0, "CT arterial"), ("b", 3, "CT portal")):
        src = _series(root, f"src-{tag}", image=ct_image(seed=seed), series_description=desc)
        for f in files_of(src):
            shutil.move(f, mixed / f"{tag}{f.name}")
        shutil.rmtree(src)
    return mixed


def duplicate_positions(root: Path) -> Path:
    folder = _series(root)
    files = files_of(folder)
    pos = pydicom.dcmread(files[2]).ImagePositionPatient
    edit_file(files[5], lambda ds: setattr(ds, "ImagePositionPatient", pos))
    return folder


def missing_slice(root: Path) -> Path:
    folder = _series(root)
    files_of(folder)[4].unlink()
    return folder


def gantry_tilt(root: Path) -> Path:
    tilt = np.tan(np.radians(15.0))

    def shear(ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + (z - 40.0) * tilt, z]

    return _each(_series(root), shear)


def mixed_orientations(root: Path) -> Path:
    folder = _series(root)
    edit_file(
        files_of(folder)[3], lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1])
    )
    return folder


def rows_columns_differ(root: Path) -> Path:
    folder = _series(root)

    def shrink(ds: pydicom.Dataset) -> None:
        ds.PixelData = ds.pixel_array[:12].tobytes()
        ds.Rows = 12

    edit_file(files_of(folder)[2], shrink)
    return folder


def single_slice(root: Path) -> Path:
    return _copy_test_file(root, "CT_small.dcm")


def non_uniform_spacing(root: Path) -> Path:
    folder = _series(root)

    def move(ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 1.1]

    edit_file(files_of(folder)[4], move)
    return folder


def negative_pixel_spacing(root: Path) -> Path:
    return _each(_series(root), lambda ds: setattr(ds, "PixelSpacing", [-0.7, 0.8]))


def non_orthonormal_dicom(root: Path) -> Path:
    return _each(
        _series(root), lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0.3, 1, 0])
    )


def garbage_in_rescale(root: Path) -> Path:
    folder = _series(root)
    victim = files_of(folder)[1]
    edit_file(victim, lambda ds: setattr(ds, "RescaleSlope", "7.25"))
    victim.write_bytes(victim.read_bytes().replace(b"7.25", b"x.25"))
    return folder


def slope_zero(root: Path) -> Path:
    return _each(_series(root), lambda ds: setattr(ds, "RescaleSlope", "0"))


def rgb_photometric_ct(root: Path) -> Path:
    """CT files whose pixels are RGB (a screenshot saved under the CT SOP class)."""

    def colour(ds: pydicom.Dataset) -> None:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = bytes(ds.Rows * ds.Columns * 3)

    return _each(_series(root), colour)


def pixel_data_too_long(root: Path) -> Path:
    folder = _series(root)
    victim = files_of(folder)[4]
    edit_file(victim, lambda ds: setattr(ds, "PixelData", ds.PixelData + bytes(4096)))
    return folder


def pixel_data_too_short(root: Path) -> Path:
    """A complete file whose PixelData element is short (a writer bug, not a cut copy)."""
    folder = _series(root)
    victim = files_of(folder)[4]
    edit_file(victim, lambda ds: setattr(ds, "PixelData", ds.PixelData[:200]))
    return folder


def pixel_length_claims_2gb(root: Path) -> Path:
    """A slice whose PixelData element claims 2 GB in a file of a few kB."""
    folder = _series(root)
    victim = files_of(folder)[3]
    data = bytearray(victim.read_bytes())
    tag = data.rfind(b"\xe0\x7f\x10\x00OW\x00\x00")  # (7FE0,0010) OW, explicit VR LE
    assert tag > 0, "PixelData element not found"
    struct.pack_into("<I", data, tag + 8, 0x7FFFFFFE)
    victim.write_bytes(bytes(data))
    return folder


def huge_multiframe_claim(root: Path) -> Path:
    """An enhanced CT whose header claims 65535x65535x20 frames (320 GiB)."""
    src = files_of(_series(root, "src", image=ct_image(shape=(2, 4, 4))))[0]
    ds = pydicom.dcmread(src)
    shutil.rmtree(src.parent)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 20
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.2"
    shared = pydicom.Dataset()
    for seq, attrs in (
        ("PixelMeasuresSequence", {"PixelSpacing": [1, 1], "SliceThickness": 1}),
        ("PlaneOrientationSequence", {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}),
    ):
        item = pydicom.Dataset()
        for k, v in attrs.items():
            setattr(item, k, v)
        setattr(shared, seq, [item])
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for i in range(20):
        pos = pydicom.Dataset()
        pos.ImagePositionPatient = [0, 0, i]
        item = pydicom.Dataset()
        item.PlanePositionSequence = [pos]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    target = root / "huge.dcm"
    ds.save_as(target, enforce_file_format=True)
    return target


def unsupported_transfer_syntax(root: Path) -> Path:
    folder = _series(root)
    for f in files_of(folder):
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
        ds.PixelData = pydicom.encaps.encapsulate([b"\0" * 64])
        ds.save_as(f, enforce_file_format=True)
    return folder


def png_renamed_dcm(root: Path) -> Path:
    target = root / "slice.dcm"
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buf, format="PNG")
    target.write_bytes(buf.getvalue())
    return target


def pdf_report(root: Path) -> Path:
    target = root / "report.pdf"
    target.write_bytes(b"%PDF-1.4\n" + b"x" * 500)
    return target


def symlink_loops(root: Path) -> Path:
    """A DICOM folder that also holds a directory loop and two file links pointing at each
    other (an export copied with `cp -a` from a NAS)."""
    folder = _series(root)
    os.symlink("..", folder / "parent-loop")
    os.symlink("b.dcm", folder / "a.dcm")
    os.symlink("a.dcm", folder / "b.dcm")
    return folder


def nifti_nan_inf(root: Path) -> Path:
    vol = np.zeros((5, 6, 7), np.float32)
    vol[2, 3, 4] = np.nan
    vol[1, 1, 1] = np.inf
    return _nifti(root / "nan.nii.gz", vol)


def nifti_4d(root: Path) -> Path:
    target = root / "fmri.nii.gz"
    vol = sitk.GetImageFromArray(np.zeros((5, 6, 7), np.float32))
    sitk.WriteImage(sitk.JoinSeries([vol, vol, vol]), str(target))
    return target


def nifti_claims_2gb(root: Path) -> Path:
    """1024^3 int16 voxels (2 GiB) claimed by a 360-byte file: must not allocate them."""
    return _nifti_claiming(root / "claims2gb.nii", (1024, 1024, 1024), datatype=4, bitpix=16)


def nifti_claims_absurd(root: Path) -> Path:
    return _nifti_claiming(root / "huge.nii", (30000, 30000, 30000), datatype=4, bitpix=16)


def nifti_gz_claims_256mb(root: Path) -> Path:
    """512^3 int16 voxels (256 MiB, within any machine's memory) claimed by a gzipped file of
    a few hundred bytes: the payload is unknown until inflated."""
    raw = _nifti_claiming(root / "claims.nii", (512, 512, 512), datatype=4, bitpix=16)
    target = root / "claims256mb.nii.gz"
    target.write_bytes(gzip.compress(raw.read_bytes()))
    raw.unlink()
    return target


def nifti_sheared_sform(root: Path) -> Path:
    target = _nifti(root / "sheared.nii", np.zeros((4, 5, 6), np.float32))
    header = bytearray(target.read_bytes())
    struct.pack_into("<2h", header, 252, 0, 1)
    for offset, row in ((280, (1, 0.5, 0, 0)), (296, (0, 1, 0, 0)), (312, (0, 0, 1, 0))):
        struct.pack_into("<4f", header, offset, *row)
    target.write_bytes(bytes(header))
    return target


def corrupt_nifti_gz(root: Path) -> Path:
    target = root / "broken.nii.gz"
    target.write_bytes(gzip.compress(b"this is not a nifti header" * 10))
    return target


def truncated_nifti_gz(root: Path) -> Path:
    """A gzipped NIfTI cut in the middle of its voxels (an interrupted download)."""
    target = _nifti(root / "cut.nii.gz", ct_image(shape=(20, 64, 64)).voxels)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def mha_zero_spacing(root: Path) -> Path:
    return _mha(root / "flat.mha", spacing="1 0 1")


def mha_non_orthonormal(root: Path) -> Path:
    return _mha(root / "sheared.mha", matrix="1 0 0 0.5 1 0 0 0 1")


def mha_without_element_type(root: Path) -> Path:
    """A MetaImage header missing ElementType (its C library prints four lines of its own)."""
    target = root / "noetype.mha"
    header = "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementDataFile = LOCAL\n"
    target.write_bytes(header.encode() + bytes(240))
    return target


def nifti_bad_dim0(root: Path) -> Path:
    """A NIfTI whose dim[0] (the number of dimensions) is 9 (the NIfTI library prints)."""
    target = _nifti(root / "dim9.nii", np.zeros((4, 5, 6), np.float32))
    header = bytearray(target.read_bytes())
    struct.pack_into("<h", header, 40, 9)
    target.write_bytes(bytes(header))
    return target


# ---------------------------------------------------------------- the kinds: archives


def zip_path_traversal(root: Path) -> Path:
    dcm = files_of(_series(root, "src"))[0].read_bytes()
    shutil.rmtree(root / "src")
    return _zip(root / "traversal.zip", [("ok/1.dcm", dcm), ("../../evil.dcm", dcm)])


def zip_bomb(root: Path) -> Path:
    dicm = b"\0" * 128 + b"DICM" + b"\0" * 64
    return _zip(root / "bomb.zip", [("bomb.dcm", dicm + b"\0" * (64 << 20))])


def zip_symlink(root: Path) -> Path:
    dcm = files_of(_series(root, "src"))[0].read_bytes()
    shutil.rmtree(root / "src")
    return _zip(root / "link.zip", [("s/1.dcm", dcm)], links={"s/2.dcm": "/etc/passwd"})


CLI_ZIP = ("zip archive", "unpack it")

KINDS: tuple[Kind, ...] = (
    Kind("missing path", "a path that does not exist", missing_path, ("no such file",)),
    Kind(
        "empty folder",
        "an export that copied nothing",
        empty_folder,
        ("empty",),
        ("holds no DICOM",),
    ),
    Kind(
        "folder without DICOM",
        "a folder of notes and thumbnails",
        folder_without_dicom,
        ("no DICOM files",),
        ("holds no DICOM",),
    ),
    Kind(
        "half-copied slice",
        "a series folder whose one file was cut short (copy interrupted)",
        half_copied_slice,
        ("truncated",),
    ),
    Kind(
        "truncated header",
        "a file cut inside its header",
        truncated_header,
        ("truncated",),
    ),
    Kind("RT plan", "a DICOM object without pixel data", rt_plan_file, ("without pixel data",)),
    Kind(
        "RT structure set",
        "contours given where an image is expected",
        rt_structure_set,
        ("RT Structure Set", "not an image"),
        hostile=True,
    ),
    Kind(
        "DICOM SEG",
        "a segmentation given where an image is expected",
        dicom_seg,
        ("Segmentation", "not an image"),
        hostile=True,
    ),
    Kind(
        "two series mixed",
        "two series in one folder",
        two_series_mixed,
        ("2 DICOM series", "--series"),
    ),
    Kind(
        "duplicate positions",
        "two slices at one position",
        duplicate_positions,
        ("duplicate slice positions",),
    ),
    Kind("missing slice", "a gap in the stack", missing_slice, ("missing slice",)),
    Kind("gantry tilt", "a tilted acquisition", gantry_tilt, ("gantry tilt",)),
    Kind(
        "mixed orientations",
        "slices of different planes",
        mixed_orientations,
        ("mixed orientations",),
    ),
    Kind(
        "rows/columns differ",
        "slices of different sizes",
        rows_columns_differ,
        ("rows/columns differ",),
    ),
    Kind("single slice", "one image where a volume is needed", single_slice, ("single slice",)),
    Kind(
        "non-uniform spacing",
        "irregular slice gaps",
        non_uniform_spacing,
        ("non-uniform slice spacing",),
    ),
    Kind(
        "negative pixel spacing",
        "PixelSpacing below zero",
        negative_pixel_spacing,
        ("zero or negative pixel spacing",),
    ),
    Kind(
        "non-orthonormal DICOM orientation",
        "sheared ImageOrientationPatient",
        non_orthonormal_dicom,
        ("non-orthonormal direction",),
    ),
    Kind(
        "garbage in a rescale attribute",
        "a RescaleSlope that is not a number",
        garbage_in_rescale,
        ("unreadable",),
    ),
    Kind(
        "rescale slope 0",
        "every pixel would collapse to the intercept",
        slope_zero,
        ("RescaleSlope", "0"),
        hostile=True,
    ),
    Kind(
        "RGB photometric CT",
        "colour pixels under the CT SOP class",
        rgb_photometric_ct,
        ("colour",),
        hostile=True,
    ),
    Kind(
        "pixel data too long",
        "more pixel bytes than rows x columns",
        pixel_data_too_long,
        ("pixel data", "longer"),
        hostile=True,
    ),
    Kind(
        "pixel data too short",
        "fewer pixel bytes than rows x columns in a complete file",
        pixel_data_too_short,
        ("truncated",),
        hostile=True,
    ),
    Kind(
        "pixel data length claims 2 GB",
        "an element length of 2 GB in a file of a few kB",
        pixel_length_claims_2gb,
        ("truncated",),
        hostile=True,
    ),
    Kind(
        "enhanced CT claims 320 GiB",
        "a multi-frame header far beyond memory",
        huge_multiframe_claim,
        ("refused before allocating",),
        hostile=True,
    ),
    Kind(
        "unsupported transfer syntax",
        "MPEG-2 video pixel data",
        unsupported_transfer_syntax,
        ("unsupported transfer syntax",),
    ),
    Kind(
        "PNG renamed .dcm",
        "a picture with a DICOM file name",
        png_renamed_dcm,
        ("PNG",),
        hostile=True,
    ),
    Kind("PDF report", "not an image at all", pdf_report, ("not an image",), ("not a NIfTI",)),
    Kind(
        "symlink loops in a DICOM folder",
        "a directory loop and two links pointing at each other",
        symlink_loops,
        ("symbolic link",),
        hostile=True,
    ),
    Kind("NIfTI with NaN/Inf", "non-finite voxels", nifti_nan_inf, ("NaN", "infinite")),
    Kind("4D NIfTI", "a time series", nifti_4d, ("4D image",)),
    Kind(
        "NIfTI claims 2 GiB",
        "a 368-byte file whose header claims 1024^3 voxels (refused as truncated, or before "
        "allocating where 8 GiB are not free)",
        nifti_claims_2gb,
        ("header claims", "1024x1024x1024"),
        hostile=True,
    ),
    Kind(
        "gzipped NIfTI claims 256 MiB",
        "a .nii.gz of a few hundred bytes whose header claims 512^3 voxels",
        nifti_gz_claims_256mb,
        ("truncated", "holds only"),
        hostile=True,
    ),
    Kind(
        "NIfTI claims 50 PiB",
        "a header far beyond memory",
        nifti_claims_absurd,
        ("refused before allocating",),
        hostile=True,
    ),
    Kind(
        "sheared NIfTI sform",
        "a non-rigid affine",
        nifti_sheared_sform,
        ("non-orthonormal direction",),
    ),
    Kind("corrupt NIfTI", "gzip of text", corrupt_nifti_gz, ("cannot read image header",)),
    Kind(
        "truncated NIfTI",
        "a .nii.gz cut in its voxels (interrupted download)",
        truncated_nifti_gz,
        ("truncated",),
    ),
    Kind("MHA zero spacing", "a flat voxel", mha_zero_spacing, ("spacing",)),
    Kind(
        "MHA sheared direction",
        "a non-rigid TransformMatrix",
        mha_non_orthonormal,
        ("non-orthonormal direction",),
    ),
    Kind(
        "MHA without ElementType",
        "a MetaImage header missing its voxel type",
        mha_without_element_type,
        ("cannot read image header",),
    ),
    Kind(
        "NIfTI with dim[0] = 9",
        "an impossible number of dimensions",
        nifti_bad_dim0,
        ("cannot read image header",),
    ),
    Kind(
        "zip path traversal",
        "a member named ../../evil.dcm",
        zip_path_traversal,
        CLI_ZIP,
        ("outside the upload folder",),
        hostile=True,
    ),
    Kind(
        "zip bomb",
        "64 MB of zeros in a few kB",
        zip_bomb,
        CLI_ZIP,
        ("zip bomb",),
        hostile=True,
    ),
    Kind(
        "zip symlink",
        "a member that is a link to /etc/passwd",
        zip_symlink,
        CLI_ZIP,
        ("symbolic link",),
        hostile=True,
    ),
)


def upload_of(path: Path) -> tuple[str, bytes]:
    """What a user would upload for this input: the file itself, or a folder zipped (links kept
    as link members, as `zip -y` stores them)."""
    if path.is_file() and not path.is_symlink():
        return path.name, path.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry in sorted(path.rglob("*")):
            rel = entry.relative_to(path.parent).as_posix()
            if entry.is_symlink():
                info = zipfile.ZipInfo(rel)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, os.readlink(entry))
            elif entry.is_file():
                zf.write(entry, rel)
    return f"{path.name}.zip", buf.getvalue()


def write_corpus(out: Path) -> list[tuple[Kind, Path]]:
    """Every kind in its own sub-folder of `out`."""
    built = []
    for i, kind in enumerate(KINDS):
        root = out / f"{i:02d}"
        root.mkdir(parents=True)
        built.append((kind, kind.build(root)))
    return built


def refusal_table() -> str:
    """The README's "What it refuses and why" table: every kind, what it is, and the line a
    real `hidiff info` process prints for it here (the input's folder shown as `…/`)."""
    import subprocess
    import tempfile

    from apps.scan import open_upload
    from apps.upload import UploadLimits
    from edge_runtime.errors import InputError

    def cell(text: str, root: Path) -> str:
        text = " ".join(text.split()).replace(str(root) + "/", "…/").replace("|", "\\|")
        return text if len(text) <= 200 else text[:199] + "…"

    hidiff = str(Path(sys.executable).parent / "hidiff")
    rows = ["| input | what it is | `hidiff info` says (exit 2) |", "| --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for kind, path in write_corpus(Path(tmp) / "corpus"):
            run = subprocess.run(
                [hidiff, "info", str(path)], capture_output=True, text=True,
                env={**os.environ, "COLUMNS": "1000"},
            )  # fmt: skip
            assert run.returncode == 2, (kind.name, run.stderr)
            line = cell(run.stderr.removeprefix("error: "), path.parent)
            if kind.upload_message is not None and path.exists():
                uploads = Path(tmp) / "uploads"
                uploads.mkdir(exist_ok=True)
                try:
                    open_upload(*upload_of(path), uploads, UploadLimits())
                except InputError as exc:
                    line += f"; the app's upload: {cell(str(exc), uploads)}"
            rows.append(f"| {kind.name} | {kind.why} | {line} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        print(refusal_table())
        sys.exit(0)
    if len(sys.argv) != 2:
        sys.exit("usage: corpus.py OUT_FOLDER | corpus.py --table")
    for kind, path in write_corpus(Path(sys.argv[1])):
        print(f"{kind.name:40s} {path}")
