"""Medical image I/O: DICOM (classic and enhanced multi-frame), NIfTI, MHA/MHD and NRRD in;
NIfTI and derived DICOM series out, with geometry kept exact and patient identity kept out of
every log line. numpy, SimpleITK and pydicom only (no torch)."""

from edge_runtime.io.config import ReadConfig
from edge_runtime.io.dicom_write import WrittenSeries, write_ct_series, write_dicom_series
from edge_runtime.io.image import ImageMetadata, MedicalImage, orientation_code
from edge_runtime.io.read import inspect_image, list_series, read_image
from edge_runtime.io.write import write_image, write_nifti

__all__ = [
    "ImageMetadata",
    "MedicalImage",
    "ReadConfig",
    "WrittenSeries",
    "inspect_image",
    "list_series",
    "orientation_code",
    "read_image",
    "write_ct_series",
    "write_dicom_series",
    "write_image",
    "write_nifti",
]
