"""DICOM decoding against real files from pydicom's wheel; expected pixels are computed here by hand."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import UID

from medgemma import dicom
from medgemma.dicom import AUTO_WINDOW_PERCENTILES, CORRUPT, MAX_DICOM_BYTES, NO_PIXEL_DATA, NOT_DICOM, decode, is_dicom
from medgemma.errors import UserError

# pydicom 3.0.2's bundled test files (pydicom/data/test_files inside its wheel); none is downloaded.
BUNDLED = (
    "CT_small.dcm",  # CT, rescale intercept -1024, no window in the header
    "MR_small.dcm",  # MR, window 600/1600
    "MR_small_jp2klossless.dcm",  # the same MR as JPEG 2000 lossless
    "MR_small_jpeg_ls_lossless.dcm",  # ... as JPEG-LS lossless
    "MR_small_RLE.dcm",  # ... as RLE lossless
    "MR_truncated.dcm",  # pixel data cut short
    "SC_rgb_rle.dcm",  # 100x100 RGB colour bars, the reference for the colour variants below
    "SC_rgb_rle_16bit.dcm",  # ... with 16 bits per sample
    "SC_rgb_rle_2frame.dcm",  # ... two frames, the second with inverted colours
    "SC_rgb_small_odd.dcm",  # 3x3 RGB, uncompressed
    "SC_ybr_full_422_uncompressed.dcm",  # the colour bars as YBR_FULL_422
    "SC_rgb_jpeg_dcmtk.dcm",  # the colour bars as JPEG baseline, YBR_FULL
    "SC_rgb_jpeg.dcm",  # JPEG baseline RGB whose dataset is implicit VR under an explicit VR syntax
    "examples_palette.dcm",  # PALETTE COLOR ultrasound
    "examples_ybr_color.dcm",  # 30-frame JPEG baseline ultrasound, YBR_FULL_422
    "JPGExtended.dcm",  # JPEG extended, 12-bit
    "JPEG-lossy.dcm",  # the same image, with a codestream libjpeg rejects
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
    "reportsi.dcm",  # SR: no pixel data
    "rtplan.dcm",  # RT plan: no pixel data
    "rtstruct.dcm",  # RT structure set, stored without the 128-byte preamble and "DICM"
    "badVR.dcm",  # Number of Frames "1A": pydicom warns quoting the value
)
# No bundled file is MONOCHROME1: the MONOCHROME1 test flips MR_small's Photometric Interpretation in memory.


def _path(name: str) -> Path:
    assert name in BUNDLED, f"{name} is not pinned in BUNDLED"
    found = get_testdata_file(name, download=False)
    assert found is not None, f"{name} is not bundled with this pydicom"
    return Path(found)


def _bytes(name: str) -> bytes:
    return _path(name).read_bytes()


def _dataset(name: str) -> Dataset:
    return pydicom.dcmread(_path(name))


def _serialised(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int64)


def _linear_window(x: float, center: float, width: float) -> int:
    """DICOM PS3.3 C.11.2.1.2.1, LINEAR, to 0..255, written out branch by branch."""
    if x <= center - 0.5 - (width - 1) / 2:
        y = 0.0
    elif x > center - 0.5 + (width - 1) / 2:
        y = 255.0
    else:
        y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return round(y)


def _percentile(ordered: list[float], percent: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    rank = percent / 100 * (len(ordered) - 1)
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


@contextlib.contextmanager
def _application_log() -> Iterator[list[logging.LogRecord]]:
    """Records as the application's own handlers (on the root logger) would receive them.

    caplog is no use here: pytest also attaches it to loggers that do not propagate.
    """
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


CT_PIXELS = ((0, 0), (64, 64), (100, 30), (10, 100))  # (row, column): -849, 904, 65 and 203 HU


# --- detection -------------------------------------------------------------------------------------


def test_is_dicom_looks_at_the_marker_after_the_preamble():
    assert is_dicom(_bytes("CT_small.dcm"))
    assert is_dicom(bytes(128) + b"DICM")
    assert not is_dicom(_png())
    assert not is_dicom(b"DICM" + bytes(200))
    assert not is_dicom(b"")
    assert not is_dicom(bytes(128) + b"DIC")


def test_non_dicom_bytes_are_refused_by_content():
    with pytest.raises(UserError) as info:
        decode(_png())
    assert str(info.value) == NOT_DICOM


def test_a_file_without_preamble_is_not_taken_for_dicom():
    data = _bytes("rtstruct.dcm")
    assert not is_dicom(data)
    with pytest.raises(UserError, match="not a DICOM file"):
        decode(data)


def test_oversized_input_is_refused_before_parsing():
    with pytest.raises(UserError, match="50 MiB"):
        decode(bytes(128) + b"DICM" + bytes(MAX_DICOM_BYTES))


def test_pydicom_is_imported_only_when_a_dicom_file_arrives():
    probe = "import sys, medgemma.dicom; print('pydicom' in sys.modules)"
    repository = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", probe], cwd=repository, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- grayscale: modality LUT, VOI and inversion ---------------------------------------------------


def test_ct_rescale_and_header_window_follow_the_dicom_formula():
    ds = _dataset("CT_small.dcm")
    center, width = 40.0, 400.0  # CT_small has no window of its own: soft tissue first, then bone
    ds.WindowCenter, ds.WindowWidth = [center, 300.0], [width, 1500.0]
    pixels = _pixels(decode(_serialised(ds)))
    stored = ds.pixel_array
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    for row, column in CT_PIXELS:
        hounsfield = float(stored[row, column]) * slope + intercept
        assert pixels[row, column] == _linear_window(hounsfield, center, width), (row, column)
    assert {int(pixels[r, c]) for r, c in CT_PIXELS} == {0, 255, 144, 232}  # both clips and the ramp


def test_mr_window_from_header_follows_the_dicom_formula():
    ds = _dataset("MR_small.dcm")
    pixels = _pixels(decode(_bytes("MR_small.dcm")))
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    expected = np.vectorize(lambda x: _linear_window(float(x), center, width))(ds.pixel_array)
    assert pixels.shape == (64, 64)
    np.testing.assert_array_equal(pixels, expected)


def _linear_exact(x: float, center: float, width: float) -> float:
    """PS3.3 C.11.2.1.3.2, to 0..255."""
    if x <= center - width / 2:
        return 0.0
    if x > center + width / 2:
        return 255.0
    return ((x - center) / width + 0.5) * 255


def _sigmoid(x: float, center: float, width: float) -> float:
    """PS3.3 C.11.2.1.3.1, to 0..255."""
    return 255.0 / (1 + math.exp(-4 * (x - center) / width))


@pytest.mark.parametrize(("function", "formula"), [("LINEAR_EXACT", _linear_exact), ("SIGMOID", _sigmoid)])
def test_other_voi_lut_functions_follow_their_formulas(function, formula):
    ds = _dataset("MR_small.dcm")
    ds.VOILUTFunction = function
    pixels = _pixels(decode(_serialised(ds)))
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    for row, column in ((0, 0), (32, 32), (10, 50), (50, 10), (63, 63)):
        assert pixels[row, column] == round(formula(float(ds.pixel_array[row, column]), center, width)), (row, column)
    assert not np.array_equal(pixels, _pixels(decode(_bytes("MR_small.dcm"))))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_without_a_window_the_percentiles_are_mapped_to_0_255(name):
    ds = _dataset(name)
    for keyword in ("WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    pixels = _pixels(decode(_serialised(ds)))
    values = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    ordered = sorted(values.ravel().tolist())
    assert AUTO_WINDOW_PERCENTILES == (0.5, 99.5)
    low, high = _percentile(ordered, 0.5), _percentile(ordered, 99.5)
    for row, column in ((0, 0), (32, 32), (10, 50), (50, 10), (63, 63)):
        x = float(values[row, column])
        expected = round(min(max((x - low) / (high - low), 0.0), 1.0) * 255)
        assert pixels[row, column] == expected, (row, column)
    assert pixels.min() == 0 and pixels.max() == 255
    assert 0 < np.mean(pixels == 255) < 0.02  # only the brightest ~0.5 % saturate


def test_large_frames_estimate_the_percentiles_from_a_sample():
    ds = _dataset("MR_small.dcm")
    del ds.WindowCenter, ds.WindowWidth
    ds.Rows, ds.Columns = 1024, 1100  # 1,126,400 pixels, over AUTO_WINDOW_SAMPLE
    assert ds.Rows * ds.Columns > dicom.AUTO_WINDOW_SAMPLE
    stored = np.random.default_rng(7).normal(1000, 300, (1024, 1100)).astype(np.int16)
    ds.PixelData = stored.tobytes()
    pixels = _pixels(decode(_serialised(ds)))
    low, high = np.percentile(stored.astype(np.float64), [0.5, 99.5])
    exact = np.rint(np.clip((stored - low) / (high - low), 0, 1) * 255)
    assert np.abs(pixels - exact).max() <= 1
    assert np.abs(pixels - exact).mean() < 0.5  # at most one grey level off, and mostly not


def test_voi_lut_sequence_is_applied_in_preference_to_the_window():
    ds = _dataset("MR_small.dcm")  # stored values 127..2145, and a window in the header
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4096, 0, 8])
    item.add_new("LUTData", "US", [min(255, value // 8) for value in range(4096)])
    ds.VOILUTSequence = Sequence([item])
    pixels = _pixels(decode(_serialised(ds)))
    np.testing.assert_array_equal(pixels, np.minimum(255, ds.pixel_array.astype(np.int64) // 8))


def test_monochrome1_is_inverted_after_windowing():
    ds = _dataset("MR_small.dcm")
    normal = _pixels(decode(_serialised(ds)))
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = _pixels(decode(_serialised(ds)))
    np.testing.assert_array_equal(inverted, 255 - normal)
    assert not np.array_equal(inverted, normal)


def test_a_constant_image_is_black_not_a_division_by_zero():
    ds = _dataset("MR_small.dcm")
    del ds.WindowCenter, ds.WindowWidth
    ds.PixelData = np.full((64, 64), 700, dtype=np.int16).tobytes()
    pixels = _pixels(decode(_serialised(ds)))
    assert pixels.shape == (64, 64) and not pixels.any()


def test_auto_window_and_8_bit_conversion_are_nan_safe():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" RuntimeWarning either
        scaled = dicom._auto_window(np.array([np.nan, 0.0, 10.0, np.inf, -np.inf, 5.0]))
        assert dicom._to_8_bit(scaled).tolist() == [0, 0, 255, 0, 0, 128]
        assert not dicom._to_8_bit(dicom._auto_window(np.full(4, np.nan))).any()
        assert not dicom._to_8_bit(dicom._auto_window(np.full(4, 3.0))).any()


# --- colour ------------------------------------------------------------------------------------------


def test_rgb_is_returned_as_is():
    ds = _dataset("SC_rgb_small_odd.dcm")
    image = decode(_bytes("SC_rgb_small_odd.dcm"))
    assert image.mode == "RGB" and image.size == (3, 3)
    np.testing.assert_array_equal(np.asarray(image), ds.pixel_array)


def test_16_bit_rgb_is_scaled_to_8_bits():
    reference = _pixels(decode(_bytes("SC_rgb_rle.dcm")))
    image = decode(_bytes("SC_rgb_rle_16bit.dcm"))  # samples are 8-bit values times 257
    assert image.mode == "RGB"
    np.testing.assert_array_equal(_pixels(image), reference)
    assert reference[0, 0].tolist() == [255, 0, 0]


def test_16_bit_rgb_is_scaled_by_its_bits_stored():
    ds = _dataset("SC_rgb_small_odd.dcm")
    samples = ds.pixel_array.astype(np.uint16) * 256 + 100  # the low byte alone would read 100 everywhere
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelData = samples.tobytes()
    expected = np.rint(samples.astype(np.float64) / 65535 * 255)
    np.testing.assert_array_equal(_pixels(decode(_serialised(ds))), expected)


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_ybr_is_converted_to_rgb(name):
    reference = _pixels(decode(_bytes("SC_rgb_rle.dcm")))
    image = decode(_bytes(name))
    assert image.mode == "RGB" and image.size == (100, 100)
    assert np.abs(_pixels(image) - reference).mean() < 2.0
    raw = pixel_array(_path(name), raw=True).astype(np.int64)  # the YCbCr samples themselves
    assert np.abs(raw - reference).mean() > 20.0  # so the match above is not a coincidence


def test_palette_colour_uses_the_lookup_tables():
    ds = _dataset("examples_palette.dcm")
    image = decode(_bytes("examples_palette.dcm"))
    assert image.mode == "RGB" and image.size == (800, 350)
    entries, first, bits = (int(value) for value in ds.RedPaletteColorLookupTableDescriptor)
    assert (entries, first, bits) == (256, 0, 16)
    tables = [
        np.frombuffer(ds[keyword].value, dtype="<u2")
        for keyword in (
            "RedPaletteColorLookupTableData",
            "GreenPaletteColorLookupTableData",
            "BluePaletteColorLookupTableData",
        )
    ]
    indices = ds.pixel_array
    pixels = _pixels(image)
    for row, column in ((0, 0), (175, 400), (100, 200), (300, 700), (200, 123)):
        index = int(indices[row, column])
        expected = [round(int(table[index - first]) / (2**bits - 1) * 255) for table in tables]
        assert pixels[row, column].tolist() == expected, (row, column)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16


# --- frames ----------------------------------------------------------------------------------------


def test_multi_frame_defaults_to_the_middle_frame():
    path = _path("SC_rgb_rle_2frame.dcm")
    data = path.read_bytes()
    first, second = pixel_array(path, index=0), pixel_array(path, index=1)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.asarray(decode(data)), second)  # 2 // 2 == 1
    np.testing.assert_array_equal(np.asarray(decode(data, frame=0)), first)
    np.testing.assert_array_equal(np.asarray(decode(data, frame=1)), second)


def test_long_cine_loop_picks_the_requested_frame():
    path = _path("examples_ybr_color.dcm")
    data = path.read_bytes()
    middle = decode(data)
    assert middle.mode == "RGB" and middle.size == (320, 240)
    np.testing.assert_array_equal(np.asarray(middle), pixel_array(path, index=15))
    np.testing.assert_array_equal(np.asarray(decode(data, frame=29)), pixel_array(path, index=29))


@pytest.mark.parametrize(
    ("name", "frame", "fix"),
    [
        ("SC_rgb_rle_2frame.dcm", 2, "Send frame between 0 and 1"),
        ("SC_rgb_rle_2frame.dcm", -1, "Send frame between 0 and 1"),
        ("examples_ybr_color.dcm", 30, "Send frame between 0 and 29"),
        ("MR_small.dcm", 1, "Send frame 0, or leave it out"),
    ],
)
def test_a_frame_out_of_range_names_the_valid_range(name, frame, fix):
    with pytest.raises(UserError, match=fix):
        decode(_bytes(name), frame=frame)


def test_single_frame_accepts_frame_0():
    data = _bytes("MR_small.dcm")
    np.testing.assert_array_equal(np.asarray(decode(data, frame=0)), np.asarray(decode(data)))
    np.testing.assert_array_equal(np.asarray(decode(data, frame=np.int64(0))), np.asarray(decode(data)))


@pytest.mark.parametrize("frame", [True, 1.0, "1"])
def test_frame_must_be_an_integer(frame):
    with pytest.raises(UserError, match="whole number"):
        decode(_bytes("MR_small.dcm"), frame=frame)


# --- transfer syntaxes -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"])
def test_lossless_compression_decodes_to_the_uncompressed_image(name):
    assert pydicom.dcmread(_path(name)).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(_pixels(decode(_bytes(name))), _pixels(decode(_bytes("MR_small.dcm"))))


def test_deflate_decodes():
    image = decode(_bytes("image_dfl.dcm"))
    assert image.mode == "L" and image.size == (512, 512)
    assert image.getextrema() == (0, 255)  # the automatic window spans the range


def test_12_bit_jpeg_extended_is_refused_by_name():
    """Only GPL-licensed libjpeg decodes it; the service ships permissive decoders only."""
    with pytest.raises(UserError, match="'JPEG Extended .*' cannot be decoded here. Re-export"):
        decode(_bytes("JPGExtended.dcm"))


def test_a_damaged_jpeg_codestream_is_a_user_error_naming_the_fix():
    """A baseline JPEG frame cut in half inside the file: the decoders fail, the caller is told what to send."""
    ds = _dataset("SC_rgb_jpeg_dcmtk.dcm")
    from pydicom.encaps import generate_fragmented_frames

    fragment = b"".join(next(generate_fragmented_frames(ds.PixelData)))
    ds.PixelData = pydicom.encaps.encapsulate([fragment[: len(fragment) // 3]])
    with pytest.raises(UserError) as info:
        decode(_serialised(ds))
    assert str(info.value) == CORRUPT


MPEG2 = "1.2.840.10008.1.2.4.100"
JPEG_XL = "1.2.840.10008.1.2.4.110"  # defined after pydicom 3.0.2, which refuses to write it


@pytest.mark.parametrize(
    ("uid", "named"),
    [
        (MPEG2, "'MPEG2 Main Profile / Main Level'"),
        (JPEG_XL, f"'{JPEG_XL}' (a standard transfer syntax this service does not know)"),
        ("1.2.3.4.5", "'1.2.3.4.5' (not a standard transfer syntax)"),
    ],
)
def test_unsupported_transfer_syntax_is_named(uid, named):
    written = MPEG2 if uid == JPEG_XL else uid
    ds = _dataset("MR_small.dcm")
    ds.file_meta.TransferSyntaxUID = UID(written)
    ds.PixelData = pydicom.encaps.encapsulate([bytes(64)])
    ds["PixelData"].VR = "OB"
    data = _serialised(ds)
    assert len(written) == len(uid) or written == uid
    data = data.replace(written.encode(), uid.encode(), 1)  # the UIDs have the same length
    with pytest.raises(UserError) as info:
        decode(data)
    message = str(info.value)
    assert named in message
    assert "JPEG 2000" in message and "JPEG-LS" in message and "RLE" in message and "Deflated" in message


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reportsi.dcm", "rtplan.dcm"])
def test_dicom_without_pixel_data_names_what_is_supported(name):
    with pytest.raises(UserError) as info:
        decode(_bytes(name))
    assert str(info.value) == NO_PIXEL_DATA
    assert "with pixel data" in NO_PIXEL_DATA and "CT, MR" in NO_PIXEL_DATA


@pytest.mark.parametrize("cut", ["bundled", "half", "header", "meta"])
def test_truncated_files_are_user_errors(cut):
    if cut == "bundled":
        data = _bytes("MR_truncated.dcm")
    else:
        whole = _bytes("CT_small.dcm")
        data = {"half": whole[: len(whole) // 2], "header": whole[:1000], "meta": whole[:300]}[cut]
    with pytest.raises(UserError) as info:
        decode(data)
    assert str(info.value) == CORRUPT


def test_garbage_after_the_marker_is_a_user_error():
    with pytest.raises(UserError) as info:
        decode(bytes(128) + b"DICM" + bytes(range(256)) * 4)
    assert str(info.value) == CORRUPT


def test_frames_over_the_pixel_cap_are_refused_before_decoding():
    ds = _dataset("MR_small.dcm")
    ds.Rows = ds.Columns = 8193  # the pixel data still holds 64x64: decoding would fail differently
    with pytest.raises(UserError, match=r"8193x8193 pixels; the limit is 67,108,864"):
        decode(_serialised(ds))


@pytest.mark.parametrize(("photometric", "shown"), [("HSV", True), ("SMITH^JOHN", False)])
def test_unsupported_photometric_interpretation_is_refused_without_quoting_free_text(photometric, shown):
    ds = _dataset("MR_small.dcm")
    ds.PhotometricInterpretation = photometric
    with pytest.raises(UserError) as info:
        decode(_serialised(ds))
    message = str(info.value)
    assert (photometric in message) is shown
    assert shown is False or "Send MONOCHROME1, MONOCHROME2, RGB" in message


# --- privacy -------------------------------------------------------------------------------------------


def test_no_patient_identity_in_errors_image_or_logs(caplog):
    ds = _dataset("CT_small.dcm")
    secrets = (str(ds.PatientName), str(ds.PatientName.family_name), str(ds.PatientID))
    data = _bytes("CT_small.dcm")
    without_pixels = _dataset("CT_small.dcm")
    del without_pixels.PixelData
    huge = _dataset("CT_small.dcm")
    huge.Rows = huge.Columns = 10_000
    failing = {
        "frame": lambda: decode(data, frame=1),
        "negative frame": lambda: decode(data, frame=-3),
        "no pixels": lambda: decode(_serialised(without_pixels)),
        "too many pixels": lambda: decode(_serialised(huge)),
        "truncated": lambda: decode(data[:-1000]),
    }
    caplog.set_level(logging.DEBUG)
    with _application_log() as records:
        image = decode(data)
        texts = [repr(image), repr(image.info)]
        for call in failing.values():
            with pytest.raises(UserError) as info:
                call()
            texts.append(str(info.value))
    for secret in secrets:
        assert all(secret not in text for text in texts), secret
    assert records == []
    assert [record for record in caplog.records if record.name.startswith("medgemma")] == []


@pytest.mark.parametrize(
    "name",
    [
        "badVR.dcm",  # validation would warn quoting Number of Frames "1A"
        "JPEG-lossy.dcm",  # the decoders log their failures
        "SC_rgb_jpeg.dcm",  # pydicom warns and logs that the VR encoding differs from the transfer syntax
    ],
)
def test_pydicom_messages_stay_out_of_logs_and_warnings(name):
    with _application_log() as records, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.suppress(UserError):
            decode(_bytes(name))
    assert [str(warning.message) for warning in caught] == []
    assert [record.getMessage() for record in records] == []
