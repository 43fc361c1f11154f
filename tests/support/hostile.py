"""Hostile files: pixel bombs, truncated and corrupt images, foreign formats."""

import io
import struct
import zlib

from PIL import Image


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width, height):
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def gif_claiming(width, height):
    """A GIF whose logical screen and only frame claim ``width`` x ``height``."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def truncated(data, keep=0.5):
    return data[: int(len(data) * keep)]


def corrupt_png():
    """A PNG with valid chunk framing whose compressed pixel data is garbage."""
    header = struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"\x78\x9c" + bytes(range(256)) * 4)
        + _png_chunk(b"IEND", b"")
    )


def pillow_bytes(image_format, mode="RGB", size=(16, 16)):
    buffer = io.BytesIO()
    Image.new(mode, size, "red" if mode == "RGB" else 128).save(buffer, format=image_format)
    return buffer.getvalue()


def psd_bytes(width=4, height=4):
    """A minimal RGB Photoshop document (Pillow reads PSD but cannot write it)."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # color mode data, resources, layers
    return header + sections + struct.pack(">H", 0) + b"\x80" * (3 * width * height)


def fits_bytes(width=4, height=4):
    """A minimal 8-bit FITS image (astronomy format Pillow can read)."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
             f"NAXIS1  = {width:>20}", f"NAXIS2  = {height:>20}", "END"]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    return header + bytes(width * height).ljust(2880, b"\x00")


def noisy_jpeg(size=(256, 256)):
    """A JPEG whose scan data dominates the file, so a cut lands inside it."""
    buffer = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def tiff_retyped_tag(tag=273, field_type=2, mode="RGB"):
    """A small TIFF whose IFD entry ``tag`` (StripOffsets by default) claims
    another field type (2 ASCII, 5 RATIONAL, 7 UNDEFINED, 9 SLONG...).

    Pillow then hands a str, float or bytes to code expecting an int and
    raises TypeError (or OverflowError) while decoding, not an OSError.
    """
    data = bytearray(pillow_bytes("TIFF", mode))
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for index in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * index
        if struct.unpack_from("<H", data, entry)[0] == tag:
            struct.pack_into("<H", data, entry + 2, field_type)
            return bytes(data)
    raise ValueError(f"tag {tag} not in the TIFF")


def png_with_text_chunk(size_bytes, *, compressed=True):
    """A valid 16x16 PNG carrying a text chunk of ``size_bytes`` (zTXt: tiny
    on the wire, ``size_bytes`` once inflated)."""
    image = pillow_bytes("PNG")
    if compressed:
        chunk = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a" * size_bytes, 9))
    else:
        chunk = _png_chunk(b"tEXt", b"Comment\x00" + b"a" * size_bytes)
    # After IHDR (8-byte signature + 25-byte IHDR chunk).
    return image[:33] + chunk + image[33:]


# PNG colour types: (colour type, channels).
PNG_COLOR_TYPES = {"gray": (0, 1), "rgb": (2, 3), "palette": (3, 1), "gray_alpha": (4, 2), "rgba": (6, 4)}


def png_uniform(width, height, *, color="gray", bit_depth=8, transparent=False):
    """A PNG of one colour in any colour type and bit depth, compressed row by
    row: tens of KB on the wire for tens of megapixels once decoded."""
    color_type, channels = PNG_COLOR_TYPES[color]
    if bit_depth == 16:
        sample = struct.pack(">H", 40_000)
    else:
        sample = bytes([0x55 if bit_depth == 1 else 200])
    row_bytes = (width * channels * bit_depth + 7) // 8
    row = b"\x00" + (sample * (row_bytes // len(sample) + 1))[:row_bytes]
    compressor = zlib.compressobj(9)
    raw = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))]
    if color == "palette":
        chunks.append(_png_chunk(b"PLTE", bytes(range(256)) * 3))
        if transparent:
            chunks.append(_png_chunk(b"tRNS", bytes([0x80]) * 256))
    chunks += [_png_chunk(b"IDAT", raw), _png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def png_16bit_grayscale(width, height):
    """The report's case: a 16-bit grayscale PNG, ~80 KB for 40 MP."""
    return png_uniform(width, height, color="gray", bit_depth=16)


def _jpeg_segment(marker, payload):
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


# A Huffman table with one symbol, coded "0": every DC difference is 0 and
# every block ends at once, so a block costs 2 bits (one bit per sample in a
# lossless JPEG) and the file stays small whatever the picture's size.
_ONE_CODE_TABLE = bytes([1] + [0] * 15) + b"\x00"


def jpeg_components_in_separate_scans(width, height, components=3):
    """A baseline JPEG of one grey whose components come one per scan: like a
    progressive one, libjpeg keeps every coefficient until the last scan.
    About ``width * height * components / 256`` bytes."""
    ids = range(1, components + 1)
    parts = [
        b"\xff\xd8",
        _jpeg_segment(0xDB, b"\x00" + bytes([1]) * 64),
        _jpeg_segment(0xC0, struct.pack(">BHHB", 8, height, width, components)
                      + b"".join(bytes([index, 0x11, 0]) for index in ids)),
        _jpeg_segment(0xC4, b"\x00" + _ONE_CODE_TABLE + b"\x10" + _ONE_CODE_TABLE),
    ]
    scan = bytes((2 * ((width + 7) // 8) * ((height + 7) // 8) + 7) // 8)
    for index in ids:
        parts.append(_jpeg_segment(0xDA, bytes([1, index, 0x00, 0, 63, 0])) + scan)
    return b"".join(parts) + b"\xff\xd9"


def jpeg_lossless(width, height, components=3):
    """A lossless JPEG (SOF3) of one grey: one bit per sample."""
    ids = range(1, components + 1)
    parts = [
        b"\xff\xd8",
        _jpeg_segment(0xC3, struct.pack(">BHHB", 8, height, width, components)
                      + b"".join(bytes([index, 0x11, 0]) for index in ids)),
        _jpeg_segment(0xC4, b"\x00" + _ONE_CODE_TABLE),
        # Predictor 1 (the sample to the left), no point transform.
        _jpeg_segment(0xDA, bytes([components]) + b"".join(bytes([index, 0]) for index in ids) + bytes([1, 0, 0])),
        bytes((width * height * components + 7) // 8),
    ]
    return b"".join(parts) + b"\xff\xd9"


def jpeg_gradient(width, height, *, progressive=True, subsampling=0, mode="RGB"):
    """A photo-like JPEG (a diagonal gradient) as Pillow writes it; ``subsampling``
    0 is 4:4:4, 2 is 4:2:0. Encoding holds the full picture: build big ones in
    another process than the one whose memory is measured."""
    picture = Image.linear_gradient("L").resize((width, height)).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90, progressive=progressive, subsampling=subsampling)
    return buffer.getvalue()
