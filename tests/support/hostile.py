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
