"""Turning an uploaded DICOM file into an 8-bit picture the image pipeline can take.

Medical images mostly arrive as DICOM: 12-16-bit grayscale with a rescale to physical units
(Hounsfield units for CT) and a display window chosen by the modality, or colour in YCbCr or a
palette. The model was trained on 8-bit pictures as a radiologist would see them, so this module
applies the same display pipeline a viewer does (modality LUT, VOI window, MONOCHROME1 inversion,
colour conversion) and hands back a mode "L" or "RGB" Pillow image; the caller converts and
resizes it like any other upload.

DICOM headers carry patient names, IDs and dates. Nothing from the header is logged or put in an
error message here, apart from technical facts needed to fix the request (frame count, image
size, the transfer syntax's standard name). pydicom and its codecs log and warn with header
values in their text, so their loggers are cut off from the application's handlers and their
warnings are ignored once pydicom is first used.
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import re
import warnings
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .errors import UserError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from pydicom.uid import UID

SUPPORTED = "a DICOM image (CT, MR, CR/DX, MG, US, NM, PT, XA, SC…) with pixel data"
SUPPORTED_TRANSFER_SYNTAXES = (
    "uncompressed (implicit or explicit VR, little or big endian), Deflated, "
    "8-bit JPEG baseline/extended, JPEG lossless, JPEG-LS, JPEG 2000 or RLE"
)
# 12-bit JPEG Extended (process 4) needs a GPL-licensed decoder, which this service does not ship.
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
SUPPORTED_PHOTOMETRIC = "MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422 or PALETTE COLOR"

# Without a window in the header, the darkest and brightest 0.5 % of pixels (air outside the body,
# metal, burned-in text) are clipped so that they do not squeeze the anatomy into a few grey levels.
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
AUTO_WINDOW_SAMPLE = 1 << 20  # pixels the percentiles are estimated from in larger frames

MAX_DICOM_BYTES = 50 * 1024 * 1024  # the same cap as images.MAX_IMAGE_BYTES
MAX_FRAME_PIXELS = 8192 * 8192  # the same cap as images.MAX_IMAGE_PIXELS

_PREAMBLE_LENGTH = 128
_MAGIC = b"DICM"
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_YBR = ("YBR_FULL", "YBR_FULL_422")
# Photometric interpretations defined by the standard: safe to name back, unlike free text.
_DEFINED_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
        "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB",
    }
)
_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
_DICOM_UID_ROOT = "1.2.840.10008."
# Libraries whose log records and warnings may quote header values.
_QUIET_LIBRARIES = ("pydicom", "pylibjpeg", "openjpeg", "libjpeg", "rle")
_QUIET_MODULES = "(" + "|".join(re.escape(name) for name in (*_QUIET_LIBRARIES, __name__)) + r")(\.|$)"

NOT_DICOM = (
    "the file is not a DICOM file (no 'DICM' marker at byte 128). "
    "Send a DICOM Part 10 file, or the image as PNG or JPEG."
)
NO_PIXEL_DATA = (
    "the DICOM file has no pixel data (for example a structured report, RT structure set or plan). "
    f"Send {SUPPORTED}."
)
CORRUPT = (
    "the DICOM file could not be decoded: it may be truncated, damaged or written by a non-conformant encoder. "
    f"Send a complete file, or re-export it uncompressed: {SUPPORTED}."
)
TOO_LARGE = (
    f"the DICOM file is larger than the {MAX_DICOM_BYTES // 2**20} MiB limit. "
    "Send a single image or fewer frames."
)


def is_dicom(data: bytes) -> bool:
    """Whether `data` is a DICOM Part 10 file, judged by its content only.

    File names and content types from clients are unreliable (".dcm", ".DCM", none at all), but
    every Part 10 file has "DICM" after its 128-byte preamble.
    """
    return data[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + len(_MAGIC)] == _MAGIC


def decode(data: bytes, *, frame: int | None = None) -> Image.Image:
    """Decode one frame of a DICOM file into an 8-bit mode "L" or "RGB" image.

    `frame` is 0-based; None picks the middle frame, which for a cine loop or a stack is more
    likely to show the anatomy than the first. Raises UserError, saying how to fix the request,
    for anything that is not a decodable DICOM image; no header value is ever quoted.
    """
    if len(data) > MAX_DICOM_BYTES:
        raise UserError(TOO_LARGE)
    if not is_dicom(data):
        raise UserError(NOT_DICOM)
    frame = _frame_argument(frame)
    pydicom = _pydicom()
    _ignore_library_warnings()
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=False)
        pixels = _render(dataset, frame)
    except (UserError, MemoryError):
        raise
    except Exception:  # pydicom, its codecs and numpy raise many types on damaged files
        raise UserError(CORRUPT) from None
    return Image.fromarray(np.ascontiguousarray(pixels))


@cache
def _pydicom() -> Any:
    """Import pydicom on first use and stop it from quoting header values in logs and warnings.

    The import costs about 0.2 s, which `import medgemma.images` should not pay when no DICOM file
    ever arrives. pydicom's read-time validation warns with the offending value (a malformed
    patient name, say), so it is switched off; the loggers of pydicom and its codecs stop
    propagating to the application's handlers (a NullHandler keeps Python's last-resort handler
    quiet too). This service is pydicom's only user in the process.
    """
    import pydicom
    import pydicom.pixels

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    for name in _QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        logger.propagate = False
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            logger.addHandler(logging.NullHandler())
    return pydicom


def _ignore_library_warnings() -> None:
    """Ignore warnings raised from pydicom, its codecs or this module.

    Installed on every call, not once: `warnings.catch_warnings` blocks elsewhere restore the
    filter list when they exit, and re-adding an identical filter only moves it to the front.
    """
    warnings.filterwarnings("ignore", module=_QUIET_MODULES)


def _frame_argument(frame: object) -> int | None:
    """The frame as a plain int (numpy integers included), refusing floats, strings and booleans."""
    if frame is None:
        return None
    if isinstance(frame, bool) or not isinstance(frame, numbers.Integral):
        raise UserError("frame must be a whole number (0 for the first frame); leave it out for the middle frame.")
    return int(frame)


def _render(dataset: Dataset, frame: int | None) -> np.ndarray:
    """The 8-bit pixels of the chosen frame: (rows, columns) or (rows, columns, 3)."""
    if "PixelData" not in dataset:
        raise UserError(CORRUPT if _cut_short(dataset) else NO_PIXEL_DATA)
    decoder = _decoder(dataset)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    if rows < 1 or columns < 1:
        raise UserError(f"the DICOM image has no pixels (0 rows or columns). Send {SUPPORTED}.")
    if rows * columns > MAX_FRAME_PIXELS:
        raise UserError(
            f"the DICOM frame is {columns}x{rows} pixels; the limit is {MAX_FRAME_PIXELS:,} pixels. "
            "Downscale it first (it is resized to 896x896 anyway)."
        )
    index = _frame_index(frame, _frame_count(dataset))

    from pydicom.pixels import as_pixel_options

    pixels, properties = decoder.as_array(dataset, index=index, **as_pixel_options(dataset, as_rgb=True))
    photometric = str(properties.get("photometric_interpretation", dataset.PhotometricInterpretation)).strip()
    if photometric in _GRAYSCALE and pixels.ndim == 2:
        return _grayscale(dataset, pixels, inverted=photometric == "MONOCHROME1")
    if photometric == "PALETTE COLOR" and pixels.ndim == 2:
        return _palette(dataset, pixels)
    if photometric in ("RGB", *_YBR) and pixels.ndim == 3 and pixels.shape[-1] == 3:
        return _colour(dataset, pixels, photometric)
    named = "photometric interpretation"
    if photometric in _DEFINED_PHOTOMETRIC:  # a defined term; anything else could be free text
        named += f" {photometric}"
    raise UserError(f"the DICOM image's {named} is not supported. Send {SUPPORTED_PHOTOMETRIC} images.")


def _cut_short(dataset: Dataset) -> bool:
    """Whether a dataset without pixel data is a damaged image rather than a report, plan or the like.

    pydicom stops quietly where a file ends, so a truncated CT reads as a dataset without pixel data.
    An image's header (Rows, an image SOP class) or no SOP class at all gives it away.
    """
    from pydicom.uid import UID

    sop_class = dataset.get("SOPClassUID")
    return sop_class is None or "Rows" in dataset or "Image" in UID(str(sop_class)).name


def _decoder(dataset: Dataset) -> Any:
    """pydicom's decoder for the file's transfer syntax, or a UserError naming the syntax."""
    from pydicom.pixels import get_decoder

    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if not syntax:
        raise UserError(CORRUPT)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    twelve_bit_jpeg = syntax == JPEG_EXTENDED and int(dataset.get("BitsStored", 8)) > 8
    if decoder is None or not decoder.is_available or twelve_bit_jpeg:
        raise UserError(
            f"the DICOM transfer syntax {_syntax_name(syntax)} cannot be decoded here. "
            f"Re-export the image as {SUPPORTED_TRANSFER_SYNTAXES}."
        )
    return decoder


def _syntax_name(syntax: UID) -> str:
    """The standard name of a transfer syntax UID; a UID is a registry number, not patient data."""
    text = str(syntax)
    if syntax.name != text:  # found in pydicom's UID dictionary
        return f"'{syntax.name}'"
    if len(text) > 64 or not _UID_PATTERN.fullmatch(text):
        return "(not a valid UID)"
    if text.startswith(_DICOM_UID_ROOT):  # e.g. JPEG XL, defined after pydicom 3.0.2
        return f"'{text}' (a standard transfer syntax this service does not know)"
    return f"'{text}' (not a standard transfer syntax)"


def _frame_count(dataset: Dataset) -> int:
    count = int(dataset.get("NumberOfFrames") or 1)
    if count < 1:
        raise UserError(CORRUPT)
    return count


def _frame_index(frame: int | None, count: int) -> int:
    """The 0-based frame to decode; the middle one by default."""
    if frame is None:
        return count // 2
    if 0 <= frame < count:
        return frame
    if count == 1:
        raise UserError(
            f"frame {frame} does not exist: the DICOM file has a single frame. Send frame 0, or leave it out."
        )
    raise UserError(
        f"frame {frame} does not exist: the DICOM file has {count} frames. "
        f"Send frame between 0 and {count - 1}, or leave it out for the middle frame."
    )


def _grayscale(dataset: Dataset, stored: np.ndarray, *, inverted: bool) -> np.ndarray:
    """Stored values -> modality values (e.g. HU) -> VOI window -> 8-bit, dark = low density."""
    from pydicom.pixels import apply_modality_lut

    values = np.asarray(apply_modality_lut(stored, dataset), dtype=np.float64)
    if dataset.get("VOILUTSequence"):  # preferred over a window when both are present, as in pydicom
        scaled = _voi_lut(dataset, values)
    elif (window := _first_window(dataset)) is not None:
        scaled = _window(values, *window)
    else:
        scaled = _auto_window(values)
    pixels = _to_8_bit(scaled)
    return 255 - pixels if inverted else pixels


def _first_window(dataset: Dataset) -> tuple[float, float, str] | None:
    """The first (center, width, VOI LUT function) in the header, or None if absent or unusable."""
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    center, width = _first_value(dataset.WindowCenter), _first_value(dataset.WindowWidth)
    function = str(dataset.get("VOILUTFunction") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if center is None or width is None or not np.isfinite(center) or not np.isfinite(width):
        return None
    if width < (1.0 if function == "LINEAR" else np.finfo(np.float64).tiny):
        return None  # PS3.3 requires width >= 1 (LINEAR) or > 0; a broken preset falls back to auto
    return center, width, function


def _first_value(value: Any) -> float | None:
    """The first number of a possibly multi-valued DS element, or None if it is not a number."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Apply a VOI window as DICOM PS3.3 C.11.2.1.2 defines it, to the range 0..1.

    LINEAR keeps the standard's half-pixel offsets so that integer CT values land on the same grey
    level as in a conformant viewer; LINEAR_EXACT and SIGMOID are the other defined functions.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        if function == "SIGMOID":
            return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
        if function == "LINEAR_EXACT":
            return np.clip((values - center) / width + 0.5, 0.0, 1.0)
        if width == 1.0:
            return np.where(values > center - 0.5, 1.0, 0.0)
        return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _auto_window(values: np.ndarray) -> np.ndarray:
    """Map the AUTO_WINDOW_PERCENTILES range of the finite values to 0..1.

    Falls back to the full range when the percentiles coincide (a mostly blank frame with a few
    marks) and to all zeros for a constant frame; NaN and infinities become 0. Large frames
    estimate the percentiles from AUTO_WINDOW_SAMPLE evenly spaced pixels: exact percentiles of a
    16-megapixel radiograph cost about half a second, and the result is shrunk to 896x896 anyway.
    """
    finite_mask = np.isfinite(values)
    finite = values[finite_mask]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.float64)
    sample = finite[:: math.ceil(finite.size / AUTO_WINDOW_SAMPLE)]
    low, high = (float(bound) for bound in np.percentile(sample, AUTO_WINDOW_PERCENTILES))
    if not high > low:
        low, high = float(finite.min()), float(finite.max())
    if not high > low:
        return np.zeros(values.shape, dtype=np.float64)
    scaled = values - low
    scaled *= 1.0 / (high - low)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled[~finite_mask] = 0.0
    return scaled


def _to_8_bit(scaled: np.ndarray) -> np.ndarray:
    """0..1 floats to 0..255 bytes, rounding to nearest; anything not finite becomes 0."""
    pixels = np.where(np.isfinite(scaled), scaled, 0.0)
    np.clip(pixels, 0.0, 1.0, out=pixels)
    pixels *= 255.0
    return np.rint(pixels, out=pixels).astype(np.uint8)


def _voi_lut(dataset: Dataset, values: np.ndarray) -> np.ndarray:
    """Apply the first VOI LUT of the header (PS3.3 C.11.2.1.1), to the range 0..1.

    The lookup is done here because pydicom 3.0.2's apply_voi indexes with the LUT's output type,
    which wraps input values above 255 for an 8-bit LUT.
    """
    item = dataset.VOILUTSequence[0]
    entries, first, bits = (int(number) for number in item.LUTDescriptor)
    entries = entries or 2**16  # PS3.3: 0 means 65536 entries
    if not 1 <= bits <= 16:
        raise ValueError("VOI LUT entry size out of range")
    table = _lut_table(dataset, item.LUTData, entries, bits)
    safe = np.where(np.isfinite(values), values, first)
    indices = np.clip(np.rint(safe) - first, 0, entries - 1).astype(np.int64)
    return table[indices].astype(np.float64) / float(2**bits - 1)


def _lut_table(dataset: Dataset, data: Any, entries: int, bits: int) -> np.ndarray:
    """LUT Data as integers: a list when its VR is US, raw words (or bytes for 8-bit entries) when OW."""
    if isinstance(data, bytes):
        if bits <= 8 and len(data) == entries:
            table = np.frombuffer(data, dtype=np.uint8)
        else:
            little = dataset.file_meta.TransferSyntaxUID.is_little_endian
            table = np.frombuffer(data[: len(data) // 2 * 2], dtype="<u2" if little else ">u2")
    else:
        table = np.asarray(data, dtype=np.int64).reshape(-1)
    if table.size < entries:
        raise ValueError("LUT Data shorter than its descriptor")
    return table[:entries]


def _palette(dataset: Dataset, indices: np.ndarray) -> np.ndarray:
    """Palette indices to 8-bit RGB; palettes hold 8- or 16-bit entries."""
    from pydicom.pixels import apply_color_lut

    rgb = np.asarray(apply_color_lut(indices, dataset))[..., :3]  # an alpha palette is dropped
    if rgb.dtype == np.uint8:
        return rgb
    bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])  # 8-bit entries may sit in 16-bit words
    return _to_8_bit(rgb.astype(np.float64) / float(2**bits - 1))


def _colour(dataset: Dataset, pixels: np.ndarray, photometric: str) -> np.ndarray:
    """Decoded colour samples to 8-bit RGB.

    pydicom 3 already converts YBR_FULL and YBR_FULL_422 to RGB while decoding (and JPEG 2000's
    YBR_RCT/ICT come out as RGB); the conversion here only runs if a decoder left them as YCbCr.
    """
    if photometric in _YBR:
        from pydicom.pixels import convert_color_space

        pixels = convert_color_space(pixels, photometric, "RGB")
    bits = int(dataset.get("BitsStored") or dataset.get("BitsAllocated") or 8)
    if pixels.dtype == np.uint8 and bits <= 8:
        return pixels
    return _to_8_bit(pixels.astype(np.float64) / float(2**bits - 1))
