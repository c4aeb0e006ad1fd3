import io
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medgemma.errors import UserError
from medgemma.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    NOT_AN_UPLOAD,
    WORKING_SIDE,
    load_image,
    read_file,
    uploaded,
)
from tests.support.dicom_files import CT, MULTI_FRAME_RGB, dicom_bytes
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


# -- what an HTTP caller can make the server read --------------------------------------------


def _download(tmp_dir, data: bytes) -> Path:
    """What Cog hands the predictor for a data: or http(s) URL: a Path in the temporary directory."""
    handle = tempfile.NamedTemporaryFile(suffix="file.png", delete=False, dir=tmp_dir)
    handle.write(data)
    handle.close()
    return Path(handle.name)


def test_a_downloaded_upload_is_read_once_and_removed():
    path = _download(tempfile.gettempdir(), png_bytes())
    assert uploaded(path) == png_bytes() and not path.exists()


@pytest.mark.parametrize("value", ["/etc/hostname", "/nonexistent", "", "/", "/proc/self/fd/0", "/dev/zero",
                                   "../../etc/passwd", "/tmp/tmpabc123file.png"])
def test_paths_typed_by_the_caller_are_refused_without_revealing_anything(value):
    """Cog passes whatever is not a URL as a plain string: never read it, and answer the same way."""
    with pytest.raises(UserError) as error:
        uploaded(value)
    assert str(error.value) == NOT_AN_UPLOAD


@pytest.mark.parametrize("value", [Path("/etc/hostname"), Path("/dev/zero"), Path("/proc/self/fd/0")])
def test_server_paths_outside_the_upload_directory_are_refused_even_as_paths(value):
    with pytest.raises(UserError, match="paths on the server are not accepted"):
        uploaded(value)


def test_a_symlink_in_the_upload_directory_is_not_followed(tmp_path):
    link = Path(tempfile.gettempdir()) / f"tmp-link-{tmp_path.name}.png"
    link.symlink_to("/etc/hostname")
    try:
        with pytest.raises(UserError):
            uploaded(link)
    finally:
        link.unlink(missing_ok=True)


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom"])
def test_local_reads_refuse_devices_instead_of_reading_forever(special):
    started = time.perf_counter()
    with pytest.raises(UserError, match="not a regular file"):
        read_file(Path(special))
    assert time.perf_counter() - started < 1


def test_local_reads_refuse_a_pipe_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        read_file(fifo)


def test_local_reads_refuse_a_directory(tmp_path):
    with pytest.raises(UserError):
        load_image(tmp_path)


def test_local_reads_stop_at_the_size_limit(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as handle:
        handle.truncate(MAX_IMAGE_BYTES + 10)
    with pytest.raises(UserError, match="MiB limit"):
        read_file(big)


def test_nan_pixels_in_a_float_tiff_do_not_blacken_the_image():
    pixels = np.linspace(0, 1000, 64 * 64, dtype=np.float32).reshape(64, 64)
    pixels[:8, :8] = np.nan
    image = load_image(encode(Image.fromarray(pixels, mode="F"), "TIFF"))
    values = np.asarray(image.convert("L"))
    assert values.max() == 255 and values[:8, :8].max() == 0 and values[32:, :].mean() > 100


def test_a_huge_16_bit_png_is_shrunk_before_float_work():
    side = 5000
    data = encode(Image.fromarray(np.tile(np.arange(side, dtype=np.uint16) * 13, (side, 1))), "PNG")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    image = load_image(data)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert max(image.size) == WORKING_SIDE
    assert grown_mib < 400  # decoding 50 MB of pixels; float64 on all of them used to take gigabytes


def test_dicom_is_recognised_by_content_whatever_the_file_is_called(tmp_path):
    disguised = tmp_path / "scan.png"
    disguised.write_bytes(dicom_bytes(CT))
    image = load_image(disguised)
    assert image.mode == "RGB" and image.size == (128, 128)
    assert load_image(dicom_bytes(CT)).tobytes() == image.tobytes()


def test_frame_picks_a_frame_of_a_multi_frame_dicom():
    data = dicom_bytes(MULTI_FRAME_RGB)
    first, second = load_image(data, frame=0), load_image(data, frame=1)
    assert first.tobytes() != second.tobytes()
    assert load_image(data).tobytes() == second.tobytes()  # the middle frame of two: index 1
    with pytest.raises(UserError, match="between 0 and 1"):
        load_image(data, frame=2)
