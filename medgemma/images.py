"""Turning an uploaded file into the RGB picture the Gemma 3 processor expects.

The processor then resizes to IMAGE_SIZE x IMAGE_SIZE and the vision tower turns that
into IMAGE_TOKENS soft tokens; everything before that step lives here.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

IMAGE_SIZE = 896  # MedGemma's SigLIP input side, in pixels
PATCH_SIZE = 14
IMAGE_TOKENS = 256  # (896 / 14)^2 patches average-pooled 4x4

MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 8192 * 8192  # well below Pillow's own bomb limit, so ours speaks first

# Formats Pillow reads that people actually upload; anything else is refused by name.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM")
ACCEPTED_DESCRIPTION = "PNG, JPEG, WebP, BMP, TIFF, GIF or PPM/PGM"

# Radiographs and CT slices are bright on black: transparent areas become black, not white.
TRANSPARENT_BACKGROUND = (0, 0, 0)

_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def load_image(source: Path | str | bytes) -> Image.Image:
    """Read, validate and normalise one image to 8-bit RGB with EXIF orientation applied.

    Raises UserError, naming what is accepted, for anything that is not a readable image
    of a sane size.
    """
    data = _read_bytes(source)
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
            opened.load()
            image = ImageOps.exif_transpose(opened)
            return to_rgb(image)
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


def _stretch_to_8_bit(image: Image.Image) -> Image.Image:
    # Medical 16-bit images often use 10-12 bits of the range: map the actual min..max
    # to 0..255 instead of clipping at 255, which would turn most of them white.
    pixels = np.asarray(image, dtype=np.float64)
    low, high = float(pixels.min()), float(pixels.max())
    if high > low:
        scaled = (pixels - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(pixels)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _read_bytes(source: Path | str | bytes) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError:
            raise UserError("the image file could not be read. Check the path or URL.") from None
        if size > MAX_IMAGE_BYTES:
            raise UserError(
                f"the image file is {size / 2**20:.1f} MiB; the limit is {MAX_IMAGE_BYTES // 2**20} MiB. "
                "Compress or downscale it."
            )
        data = path.read_bytes()
    if not data:
        raise UserError(f"the image file is empty. Send {ACCEPTED_DESCRIPTION}.")
    if len(data) > MAX_IMAGE_BYTES:
        raise UserError(
            f"the image is {len(data) / 2**20:.1f} MiB; the limit is {MAX_IMAGE_BYTES // 2**20} MiB. "
            "Compress or downscale it."
        )
    return data
