"""Real DICOM files that pydicom 3.0.2 ships in its wheel (pinned by name), for the tests of DICOM input."""

from __future__ import annotations

from pathlib import Path

CT = "CT_small.dcm"  # CT slice, 128x128, rescale to Hounsfield units
MR_JPEG2000 = "MR_small_jp2klossless.dcm"  # MR slice, JPEG 2000 lossless
MULTI_FRAME_RGB = "SC_rgb_rle_2frame.dcm"  # two RGB frames, RLE


def dicom_path(name: str) -> Path:
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    assert found is not None, f"{name} is not bundled with this pydicom"
    return Path(found)


def dicom_bytes(name: str) -> bytes:
    return dicom_path(name).read_bytes()


def patient_identifiers(name: str) -> list[str]:
    """The header's patient name and ID, as they would leak: for scanning outputs and logs."""
    import pydicom

    dataset = pydicom.dcmread(dicom_path(name), stop_before_pixels=True)
    values = [str(dataset.get("PatientName", "")), str(dataset.get("PatientID", ""))]
    found = [value for value in values if len(value) >= 4]
    assert found, f"{name} has no patient name or ID to look for"
    return found
