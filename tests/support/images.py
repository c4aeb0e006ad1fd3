"""Small in-memory images in the formats and modes users send."""

from __future__ import annotations

import base64
import io

from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (64, 48), color=(200, 40, 40)) -> bytes:
    return encode(Image.new("RGB", size, color))


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
