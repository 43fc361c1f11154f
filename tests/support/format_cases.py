"""Every image format and mode the decoder takes, each as uploaded bytes with the picture a
person sees: the cases the reference-equality tests (tests/knownanswer/test_reference_equality.py,
tests/clipcheck/engine/test_families.py) compare the API with plain transformers on."""

import io

import numpy as np
from PIL import Image, ImageOps

from knownanswer import domain

ORANGE_STAR = domain.render("star", "orange", seed=11, size=160)


def encoded(picture, format, **options):
    buffer = io.BytesIO()
    picture.save(buffer, format=format, **options)
    return buffer.getvalue()


def on_white(picture):
    rgba = picture.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def format_cases():
    """``{name: (uploaded bytes, the picture a person sees)}``: lossless formats and modes (transparency
    composited on white), JPEG in RGB, CMYK and L (their decoded pixels), a sideways JPEG with an
    orientation tag (upright), and GIF and WebP animations (their first frame)."""
    transparent = domain.render("star", "black", seed=12, size=160, background="transparent")
    palette = ORANGE_STAR.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    grey = ORANGE_STAR.convert("L")
    sixteen_bit = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    cases = {
        "PNG RGB": (encoded(ORANGE_STAR, "PNG"), ORANGE_STAR),
        "WebP lossless": (encoded(ORANGE_STAR, "WEBP", lossless=True), ORANGE_STAR),
        "BMP": (encoded(ORANGE_STAR, "BMP"), ORANGE_STAR),
        "TIFF": (encoded(ORANGE_STAR, "TIFF"), ORANGE_STAR),
        "GIF palette": (encoded(palette, "GIF"), palette.convert("RGB")),
        "PNG RGBA transparent on white": (encoded(transparent, "PNG"), on_white(transparent)),
        "PNG LA on white": (encoded(transparent.convert("LA"), "PNG"), on_white(transparent.convert("LA"))),
        "PNG grayscale": (encoded(grey, "PNG"), grey.convert("RGB")),
        "PNG 1-bit": (encoded(grey.convert("1"), "PNG"), grey.convert("1").convert("RGB")),
        "PNG 16-bit": (encoded(sixteen_bit, "PNG"), grey.convert("RGB")),
    }
    for mode in ("RGB", "CMYK", "L"):
        data = encoded(ORANGE_STAR.convert(mode), "JPEG", quality=92)
        cases[f"JPEG {mode}"] = (data, Image.open(io.BytesIO(data)).convert("RGB"))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    data = encoded(ORANGE_STAR.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())
    cases["JPEG with an orientation tag"] = (data, ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    frames = [ORANGE_STAR, domain.render("circle", "blue", seed=13, size=160)]
    for format, options in (("GIF", {}), ("WEBP", {"lossless": True})):
        data = encoded(frames[0], format, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)
        first = Image.open(io.BytesIO(data))
        first.seek(0)
        cases[f"{format} animation"] = (data, first.convert("RGB"))
    return cases


FORMAT_CASES = format_cases()
