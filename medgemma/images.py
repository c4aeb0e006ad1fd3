"""Turning an uploaded file into the RGB picture the Gemma 3 processor expects.

The processor then resizes to IMAGE_SIZE x IMAGE_SIZE and the vision tower turns that
into IMAGE_TOKENS soft tokens; everything before that step lives here.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import dicom
from .errors import UserError

IMAGE_SIZE = 896  # MedGemma's SigLIP input side, in pixels
PATCH_SIZE = 14
IMAGE_TOKENS = 256  # (896 / 14)^2 patches average-pooled 4x4

MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 8192 * 8192  # well below Pillow's own bomb limit, so ours speaks first

# Decoding works at most at this side before the float work that high-bit-depth images need;
# the processor shrinks everything to IMAGE_SIZE anyway.
WORKING_SIDE = 2048

# Formats Pillow reads that people actually upload; anything else is refused by name.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM")
ACCEPTED_DESCRIPTION = "PNG, JPEG, WebP, BMP, TIFF, GIF, PPM/PGM or DICOM"
ACCEPTED_MEDIA = "image/*,application/dicom,.dcm"  # what the playground's file picker offers

# Radiographs and CT slices are bright on black: transparent areas become black, not white.
TRANSPARENT_BACKGROUND = (0, 0, 0)

_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


NOT_AN_UPLOAD = (
    "image must come with the request, as a data: URL or an http(s) URL; paths on the server are not "
    "accepted. Send the file itself, e.g. \"image\": \"data:image/png;base64,...\"."
)


def uploaded(value: object) -> bytes | None:
    """The bytes of an image input that arrived over HTTP, read once and removed from disk.

    Cog hands the predictor a file it downloaded into the temporary directory (from a data: or
    http(s) URL) as a Path, and anything else the caller typed as a plain string. Only the former is
    accepted; every other value gets the same error, so nothing about the server's files leaks.
    """
    if value is None:
        return None
    if not isinstance(value, Path) or Path(value).resolve().parent != Path(tempfile.gettempdir()).resolve():
        raise UserError(NOT_AN_UPLOAD)
    try:
        return read_file(Path(value))
    except UserError:
        raise
    except OSError:
        raise UserError(NOT_AN_UPLOAD) from None
    finally:
        Path(value).unlink(missing_ok=True)  # the caller's image does not stay on the server's disk


def uploaded_all(values: list[object] | None) -> tuple[bytes, ...]:
    """`uploaded` for a list input: every file is read and removed, even when one is refused."""
    read: list[bytes] = []
    refused: UserError | None = None
    for value in values or ():
        try:
            data = uploaded(value)
        except UserError as error:
            refused = refused or error
            continue
        if data is not None:
            read.append(data)
    if refused is not None:
        raise refused
    return tuple(read)


def read_file(path: Path) -> bytes:
    """Read a regular file, at most MAX_IMAGE_BYTES, without following a symlink or blocking on a pipe."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        raise UserError("the image file could not be read. Check the path.") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UserError("the image is not a regular file. Send an image file.")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(MAX_IMAGE_BYTES + 1)
    finally:
        os.close(descriptor)
    _check_size(len(data))
    return data


def load_image(source: Path | str | bytes, *, frame: int | None = None) -> Image.Image:
    """Read, validate and normalise one image to 8-bit RGB with EXIF orientation applied.

    DICOM is recognised by its content (the `DICM` marker), whatever the file is called, and
    shown as a viewer would (see dicom.py); `frame` picks the frame of a multi-frame DICOM file.
    Raises UserError, naming what is accepted, for anything that is not a readable image
    of a sane size.
    """
    data = source if isinstance(source, bytes) else read_file(Path(source))
    if not data:
        raise UserError(f"the image file is empty. Send {ACCEPTED_DESCRIPTION}.")
    _check_size(len(data))
    if dicom.is_dicom(data):
        return to_rgb(_within_working_size(dicom.decode(data, frame=frame)))
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as opened:
            width, height = opened.size
            if width < 1 or height < 1:
                raise UserError("the image has no pixels. Send a non-empty image.")
            if width * height > MAX_IMAGE_PIXELS:
                raise UserError(
                    f"the image is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS:,} pixels. "
                    "Downscale it first (it is resized to 896x896 anyway)."
                )
            opened.draft(opened.mode, (WORKING_SIDE, WORKING_SIDE))  # JPEG decodes straight to a smaller size
            opened.load()
            image = ImageOps.exif_transpose(opened)
            return to_rgb(_within_working_size(image))
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(
            f"the image is too large to decode safely (over {MAX_IMAGE_PIXELS:,} pixels). Downscale it first."
        ) from None
    except UnidentifiedImageError:
        raise UserError(f"the file is not an image this service reads. Send {ACCEPTED_DESCRIPTION}.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Truncated or corrupt data; Pillow's own message names no user content.
        raise UserError(
            f"the image could not be decoded ({error}). Send a complete {ACCEPTED_DESCRIPTION} file."
        ) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode (grayscale, 16-bit, palette, alpha, CMYK, ...) to 8-bit RGB."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        image = _stretch_to_8_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENT_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def _within_working_size(image: Image.Image) -> Image.Image:
    if max(image.size) <= WORKING_SIDE:
        return image
    scale = WORKING_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)  # box averaging works in every mode, 16-bit included


def _stretch_to_8_bit(image: Image.Image) -> Image.Image:
    # Medical 16-bit images often use 10-12 bits of the range: map the actual min..max
    # to 0..255 instead of clipping at 255, which would turn most of them white.
    # Float images may hold NaN (no data) or infinities: they do not count, and become black.
    pixels = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(pixels)
    if not finite.any():
        return Image.fromarray(np.zeros(pixels.shape, dtype=np.uint8))
    low, high = float(pixels[finite].min()), float(pixels[finite].max())
    scaled = np.zeros_like(pixels)
    if high > low:
        np.multiply(pixels - low, 255.0 / (high - low), out=scaled, where=finite)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _check_size(size: int) -> None:
    if size > MAX_IMAGE_BYTES:
        raise UserError(
            f"the image is larger than the {MAX_IMAGE_BYTES // 2**20} MiB limit. Compress or downscale it."
        )
