import io

import numpy as np
import pytest
from PIL import Image

from medgemma.errors import UserError
from medgemma.images import MAX_IMAGE_PIXELS, load_image
from tests.support.images import encode, png_bytes


def test_rgb_png_loads_unchanged():
    image = load_image(png_bytes((40, 30), (10, 20, 30)))
    assert image.mode == "RGB" and image.size == (40, 30)
    assert image.getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "LA", "RGBA", "I;16", "I", "F"])
def test_every_mode_becomes_8_bit_rgb(mode):
    source = Image.new("RGB", (16, 8), (120, 60, 30)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else "PNG"
    image = load_image(encode(source, fmt))
    assert image.mode == "RGB" and image.size == (16, 8)


def test_16_bit_grayscale_is_stretched_not_clipped():
    ramp = np.linspace(0, 4095, 64, dtype=np.uint16).reshape(8, 8)  # 12-bit data, as from a detector
    image = load_image(encode(Image.fromarray(ramp), "PNG"))
    pixels = np.asarray(image)[..., 0]
    assert pixels.min() == 0 and pixels.max() == 255
    assert len(np.unique(pixels)) > 32  # contrast kept, not saturated to white


def test_transparency_composites_on_black():
    rgba = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    assert load_image(encode(rgba)).getpixel((0, 0)) == (0, 0, 0)


def test_palette_with_transparency_composites_on_black():
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([255, 255, 255] * 256)
    data = encode(palette, "PNG", transparency=0)
    assert load_image(data).getpixel((1, 1)) == (0, 0, 0)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.new("RGB", (60, 20), (0, 128, 0)), "JPEG", exif=exif)
    assert load_image(data).size == (20, 60)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM"])
def test_common_formats_are_accepted(fmt):
    assert load_image(encode(Image.new("RGB", (12, 12), (1, 2, 3)), fmt)).size == (12, 12)


def test_not_an_image_names_accepted_formats():
    with pytest.raises(UserError, match="PNG, JPEG"):
        load_image(b"%PDF-1.7 this is a document")


def test_truncated_image_is_a_user_error():
    data = encode(Image.effect_noise((256, 256), 50).convert("RGB"), "PNG")
    with pytest.raises(UserError, match="could not be decoded"):
        load_image(data[: len(data) // 2])


def test_empty_file_is_a_user_error(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_image(empty)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="could not be read"):
        load_image(tmp_path / "nope.png")


def test_decompression_bomb_is_refused_before_decoding():
    side = int(MAX_IMAGE_PIXELS**0.5) + 16
    data = encode(Image.new("1", (side, side)), "PNG")  # tiny file, huge canvas
    assert len(data) < 2**20
    with pytest.raises(UserError, match="pixels"):
        load_image(data)


def test_only_first_frame_of_animation_is_used():
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert load_image(buffer.getvalue()).getpixel((0, 0))[0] > 200
