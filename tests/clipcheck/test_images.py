"""The one image decoder: what the model sees for every kind of input."""

import io

import numpy as np
import pytest
from PIL import Image

from clipcheck.errors import ImageRejected
from clipcheck.images import decode_image

RED, BLUE, WHITE, BLACK = (220, 20, 20), (20, 20, 220), (255, 255, 255), (0, 0, 0)


def encode(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def pixel(decoded, xy=(0, 0)):
    return decoded.image.getpixel(xy)


def close(actual, expected, tolerance=6):
    return all(abs(a - b) <= tolerance for a, b in zip(actual, expected))


def sideways_jpeg():
    """A 40x20 picture, red left half / blue right half, stored rotated with EXIF Orientation=6."""
    upright = Image.new("RGB", (40, 20), RED)
    upright.paste(BLUE, (20, 0, 40, 20))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone writes: pixels turned
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    return upright, encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_is_applied():
    upright, data = sideways_jpeg()
    decoded = decode_image(data)
    assert decoded.size == upright.size == (40, 20)
    assert close(pixel(decoded, (5, 10)), RED, 20)
    assert close(pixel(decoded, (35, 10)), BLUE, 20)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_onto_white_not_black(mode):
    image = Image.new(mode, (10, 10), (0, 0) if mode == "LA" else (0, 0, 0, 0))
    decoded = decode_image(encode(image, "PNG"))
    assert decoded.image.mode == "RGB"
    assert pixel(decoded) == WHITE


def test_half_transparent_red_blends_with_white():
    decoded = decode_image(encode(Image.new("RGBA", (4, 4), (255, 0, 0, 128)), "PNG"))
    assert close(pixel(decoded), (255, 127, 127), 2)


def test_palette_with_transparency_is_composited_onto_white():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0] + [200, 10, 10] * 255)
    image.paste(1, (4, 0, 8, 8))
    data = encode(image, "PNG", transparency=0)
    decoded = decode_image(data)
    assert pixel(decoded, (0, 0)) == WHITE
    assert pixel(decoded, (6, 4)) == (200, 10, 10)
    gif = decode_image(encode(image, "GIF", transparency=0))
    assert pixel(gif, (0, 0)) == WHITE


def palette_image():
    image = Image.new("P", (6, 6), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0, 0, 0] * 254)
    return image


@pytest.mark.parametrize(
    ("image", "format", "expected"),
    [
        (Image.new("L", (6, 6), 77), "PNG", (77, 77, 77)),
        (Image.new("1", (6, 6), 1), "PNG", WHITE),
        (Image.new("1", (6, 6), 0), "BMP", BLACK),
        (palette_image(), "BMP", (10, 200, 10)),
    ],
)
def test_grayscale_bilevel_and_palette_become_rgb(image, format, expected):
    decoded = decode_image(encode(image, format))
    assert decoded.image.mode == "RGB"
    assert pixel(decoded) == expected


def test_cmyk_jpeg_converts_to_the_right_rgb():
    cmyk = Image.new("RGB", (16, 16), RED).convert("CMYK")
    decoded = decode_image(encode(cmyk, "JPEG", quality=95))
    assert decoded.format == "JPEG"
    assert close(pixel(decoded, (8, 8)), RED, 12)


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.full((4, 4), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    decoded = decode_image(encode(image, "PNG"))
    assert close(pixel(decoded), (128, 128, 128), 1)


def test_animated_images_use_the_first_frame():
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    for format in ("GIF", "WEBP"):
        buffer = io.BytesIO()
        frames[0].save(buffer, format=format, save_all=True, append_images=frames[1:], duration=100, loop=0,
                       **({"lossless": True} if format == "WEBP" else {}))
        decoded = decode_image(buffer.getvalue())
        assert close(pixel(decoded), RED, 30), format


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_allowed_formats_decode(format):
    decoded = decode_image(encode(Image.new("RGB", (9, 7), RED), format))
    assert decoded.format == format
    assert decoded.size == (9, 7)
    assert len(decoded.sha256) == 64


@pytest.mark.parametrize(
    ("format", "options"),
    [("EPS", {}), ("PDF", {}), ("ICO", {}), ("TGA", {}), ("PPM", {}), ("SGI", {}), ("PCX", {}), ("DDS", {})],
)
def test_other_formats_are_refused(format, options):
    image = Image.new("RGB", (16, 16), RED)
    try:
        data = encode(image, format, **options)
    except (KeyError, OSError):  # writer unavailable in this Pillow build
        pytest.skip(f"Pillow cannot write {format} here")
    with pytest.raises(ImageRejected) as error:
        decode_image(data)
    assert error.value.status_code == 415
    assert error.value.code in {"unsupported_format", "not_an_image"}


def test_formats_pillow_cannot_write_are_refused_by_their_signature():
    psd = b"8BPS" + b"\x00\x01" + b"\x00" * 6 + b"\x00\x03" + (16).to_bytes(4, "big") * 2 + b"\x00\x08\x00\x03"
    fits = b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  =                    8" + b" " * 49
    for data in (psd + b"\x00" * 64, fits.ljust(2880, b" ")):
        with pytest.raises(ImageRejected) as error:
            decode_image(data)
        assert error.value.status_code == 415


def test_the_allowed_list_is_configurable(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "ALLOWED_IMAGE_FORMATS": ["PNG"]}
    with pytest.raises(ImageRejected) as error:
        decode_image(encode(Image.new("RGB", (4, 4)), "JPEG"))
    assert error.value.code == "unsupported_format"
    assert "JPEG" in error.value.message


@pytest.mark.parametrize("data", [b"%PDF-1.7 not an image", b"hello world", b"\x00" * 100, b"GIF89a"])
def test_non_images_are_refused(data):
    with pytest.raises(ImageRejected) as error:
        decode_image(data)
    assert error.value.status_code in (400, 415)


def test_empty_file_is_refused():
    with pytest.raises(ImageRejected) as error:
        decode_image(b"")
    assert (error.value.status_code, error.value.code) == (400, "empty_file")


@pytest.mark.parametrize("format", ["JPEG", "PNG"])
def test_truncated_files_are_refused_not_padded(format):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encode(noise, format)
    with pytest.raises(ImageRejected) as error:
        decode_image(data[: len(data) * 2 // 3])
    assert error.value.code == "corrupt_image"


def test_pixel_bombs_are_refused_before_decoding(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_IMAGE_PIXELS": 10_000}
    data = encode(Image.new("L", (101, 100)), "PNG")
    with pytest.raises(ImageRejected) as error:
        decode_image(data)
    assert (error.value.status_code, error.value.code) == (413, "image_too_large")
    assert decode_image(encode(Image.new("L", (100, 100)), "PNG")).size == (100, 100)


def test_default_pixel_limit_is_forty_megapixels():
    # A PNG header that claims 8000x6000 = 48 MP: refused from the header alone.
    data = encode(Image.new("1", (8000, 6000)), "PNG")
    with pytest.raises(ImageRejected) as error:
        decode_image(data)
    assert error.value.code == "image_too_large"


def test_one_pixel_image_decodes():
    decoded = decode_image(encode(Image.new("RGB", (1, 1), BLUE), "PNG"))
    assert decoded.size == (1, 1)
    assert pixel(decoded) == BLUE


def big_photo_jpeg(size=(2000, 1500)):
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (size[1] // 50, size[0] // 50, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    return encode(photo, "JPEG", quality=90)


def test_big_jpegs_decode_at_a_reduced_scale_that_keeps_the_short_side(settings):
    data = big_photo_jpeg()
    reduced = decode_image(data)
    assert reduced.size == (1000, 750)  # 1/2 scale: 1/4 would make the short side < 448
    settings.CLIPCHECK = {**settings.CLIPCHECK, "JPEG_DRAFT_MIN_SIDE": 0}
    full = decode_image(data)
    assert full.size == (2000, 1500)
    assert reduced.sha256 == full.sha256  # the hash is of the bytes, not the pixels


def test_reduced_scale_decoding_does_not_change_what_the_model_sees(settings):
    from clipcheck.engine import get_engine

    data = big_photo_jpeg()
    engine = get_engine()
    reduced = engine.encode_images([decode_image(data).image])[0]
    settings.CLIPCHECK = {**settings.CLIPCHECK, "JPEG_DRAFT_MIN_SIDE": 0}
    full = engine.encode_images([decode_image(data).image])[0]
    assert float(np.dot(reduced, full)) > 0.999
