"""Decoder fuzzing: mutated files of every accepted format end as a refusal, never a crash.

Seeded and bounded (a few thousand small decodes, a couple of seconds): the
same mutations run every time, so a failure names a reproducible input.
"""

import io
import random
import struct
from collections import Counter

import pytest
from PIL import Image

from clipcheck.errors import ImageRejected
from clipcheck.images import decode_image
from tests.support import hostile

SEED = 14
MUTATIONS_PER_FILE = 250
# What a refused file may be called; anything else (or any other exception)
# is a decoder bug reaching the client as a 500.
REFUSALS = {"corrupt_image", "not_an_image", "unsupported_format", "image_too_large", "aspect_ratio_too_large"}
INTERESTING_BYTES = (0, 1, 2, 3, 4, 5, 7, 8, 0x10, 0x20, 0x40, 0x7F, 0x80, 0xFF)
INTERESTING_SHORTS = (0, 1, 2, 3, 4, 5, 7, 11, 12, 16, 0x7FFF, 0x8000, 0xFFFF)


def seed_file(image_format, mode, **options):
    image = Image.effect_noise((24, 16), 60).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def jpeg_with_exif():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010E] = "description"
    return seed_file("JPEG", "RGB", exif=exif.tobytes())


SEED_FILES = {
    "jpeg": lambda: seed_file("JPEG", "RGB"),
    "jpeg-exif": jpeg_with_exif,
    "jpeg-cmyk": lambda: seed_file("JPEG", "CMYK"),
    "png-rgba": lambda: seed_file("PNG", "RGBA"),
    "png-palette-alpha": lambda: seed_file("PNG", "P", transparency=3),
    "png-16bit": lambda: hostile.png_uniform(24, 16, color="gray", bit_depth=16),
    "webp": lambda: seed_file("WEBP", "RGB"),
    "webp-lossless-alpha": lambda: seed_file("WEBP", "RGBA", lossless=True),
    "gif": lambda: seed_file("GIF", "P"),
    "bmp": lambda: seed_file("BMP", "RGB"),
    "bmp-palette": lambda: seed_file("BMP", "P"),
    "tiff": lambda: seed_file("TIFF", "RGB", dpi=(72, 72)),
    "tiff-lzw-rgba": lambda: seed_file("TIFF", "RGBA", compression="tiff_lzw"),
    "tiff-16bit": lambda: seed_file("TIFF", "I;16"),
    "tiff-la": lambda: seed_file("TIFF", "LA"),
    "tiff-float": lambda: seed_file("TIFF", "F"),
    "tiff-jpeg": lambda: seed_file("TIFF", "RGB", compression="jpeg"),
    "tiff-group4": lambda: seed_file("TIFF", "1", compression="group4"),
}


def retype_tiff_entry(data, rng):
    """Structure-aware: give one entry of a little-endian TIFF's first IFD another field type."""
    if data[:4] != b"II*\x00":
        return
    ifd = struct.unpack_from("<I", data, 4)[0]
    if ifd + 2 > len(data):
        return
    count = struct.unpack_from("<H", data, ifd)[0]
    entries = [ifd + 2 + 12 * index for index in range(count) if ifd + 14 + 12 * index <= len(data)]
    if entries:
        struct.pack_into("<H", data, rng.choice(entries) + 2, rng.randint(1, 16))


def mutate(data, rng):
    """One to six edits, mostly in the first 400 bytes (headers, IFDs, chunk tables)."""
    data = bytearray(data)
    if rng.random() < 0.2:
        retype_tiff_entry(data, rng)
    for _ in range(rng.randint(1, 6)):
        position = rng.randrange(min(len(data), 400)) if rng.random() < 0.7 else rng.randrange(len(data))
        roll = rng.random()
        if roll < 0.4:
            data[position] = rng.randrange(256)
        elif roll < 0.7:
            data[position] = rng.choice(INTERESTING_BYTES)
        elif roll < 0.8:
            data[position:position + 2] = struct.pack("<H", rng.choice(INTERESTING_SHORTS))
        elif roll < 0.9:
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            del data[position:position + rng.randint(1, 8)]
    return bytes(data)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(SEED_FILES))
def test_mutated_files_are_decoded_or_refused_never_crash(name):
    original = SEED_FILES[name]()
    assert decode_image(original).image.mode == "RGB"  # the seed itself is valid
    rng = random.Random(f"{SEED}-{name}")
    outcomes, crashes = Counter(), []
    for index in range(MUTATIONS_PER_FILE):
        mutated = mutate(original, rng)
        try:
            decoded = decode_image(mutated)
        except ImageRejected as exc:
            outcomes[exc.code] += 1
            if exc.code not in REFUSALS or exc.status_code >= 500:
                crashes.append((index, f"{exc.code} {exc.status_code}"))
        except Exception as exc:
            crashes.append((index, f"{exc.__class__.__name__}: {exc}"))
        else:
            outcomes["decoded"] += 1
            assert decoded.image.mode == "RGB" and min(decoded.size) >= 1
    assert not crashes, (name, crashes[:5])
    # The mutations reach the decoder: some files still decode, some are refused.
    assert sum(outcomes.values()) == MUTATIONS_PER_FILE
    assert outcomes["decoded"] + outcomes["corrupt_image"] > 0, outcomes


@pytest.mark.parametrize("field_type", [2, 5, 7, 11])
def test_a_tiff_whose_strip_offsets_have_the_wrong_type_is_corrupt_without_pillow_internals(field_type):
    with pytest.raises(ImageRejected) as refused:
        decode_image(hostile.tiff_retyped_tag(273, field_type))
    assert (refused.value.code, refused.value.status_code) == ("corrupt_image", 400)
    assert refused.value.message == "The TIFF image is truncated or corrupt."
