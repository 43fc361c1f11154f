"""The one image decoder: bytes in, an upright RGB picture out, or a clear refusal.

Every entry point (uploads, batch paths, storage, audit) decodes through
``decode_image`` so the model always sees the picture a person would see:
EXIF orientation applied, transparency composited onto white, every mode
converted to 8-bit RGB, the first frame of animations.
"""

import errno
import io
import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageFile, JpegImagePlugin

from clipcheck.decode_budget import decode_cost, decode_reservation, jpeg_scan_buffer_cost
from clipcheck.errors import BatchPathRejected, ImageRejected
from clipcheck.hashes import content_hash
from clipcheck.settings import clip_settings

# Never pad a truncated file with grey: refuse it.
ImageFile.LOAD_TRUNCATED_IMAGES = False

WHITE = (255, 255, 255)


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, upright
    format: str
    sha256: str
    # The model's input for it (``ClipEngine.preprocess``), when prepared ahead
    # of the forward pass (the audit's decode threads): None otherwise.
    pixels: object = None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def _check_file_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageRejected("The file is empty.", code="empty_file")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.",
            code="file_too_large",
            status_code=413,
        )


def _check_dimensions(width: int, height: int, *, max_pixels: int, max_aspect_ratio: float) -> None:
    if width * height > max_pixels:
        raise _too_many_pixels(width, height, max_pixels)
    if width < 1 or height < 1:
        raise ImageRejected("The image has no pixels.", code="corrupt_image")
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise ImageRejected(
            f"The image is {width}x{height}; sides may differ by a factor of at most {max_aspect_ratio}.",
            code="aspect_ratio_too_large",
        )


def decode_image(
    data: bytes, *, allowed_formats: Iterable[str] | None = None, max_pixels: int | None = None,
    max_bytes: int | None = None, max_aspect_ratio: float | None = None,
) -> DecodedImage:
    """Decode image bytes into an upright RGB ``DecodedImage``.

    Raises ``ImageRejected`` (a 4xx) for empty, oversized, unsupported,
    non-image, truncated or corrupt input.
    """
    allowed_formats = [f.upper() for f in (allowed_formats or clip_settings.ALLOWED_IMAGE_FORMATS)]
    max_pixels = max_pixels or clip_settings.MAX_IMAGE_PIXELS
    max_bytes = max_bytes or clip_settings.MAX_UPLOAD_BYTES
    max_aspect_ratio = max_aspect_ratio or clip_settings.MAX_ASPECT_RATIO

    _check_file_size(data, max_bytes)
    image = _open(data, allowed_formats)
    image_format = image.format
    try:
        # Checked from the header, before any pixel is decoded (Pillow itself
        # only refuses at twice its own limit).
        _check_dimensions(*image.size, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
        image.seek(0)  # first frame of animated GIF/WebP/TIFF
        cost = _decode_estimate(image, data)
    except ImageRejected:
        raise
    except Exception as exc:
        raise _corrupt(image_format, exc) from exc
    # Reserved before a pixel is decoded: the expensive part of a request
    # that the model's admission control does not cover.
    with decode_reservation(cost):
        try:
            image.load()
            # Read once loaded: PNG and WebP keep EXIF where they please.
            orientation = _orientation(image)
            rgb = _apply_orientation(to_rgb(_reduced(image)), orientation)
        except ImageRejected:
            raise
        except Exception as exc:
            # Pillow raises TypeError, OverflowError, struct.error... on
            # crafted files, not only OSError: all of them are bad bytes.
            raise _corrupt(image_format, exc) from exc
    assert image_format is not None  # Image.open names the format it read
    return DecodedImage(image=rgb, format=image_format, sha256=content_hash(data))


# Pillow's own refusals describe the file; other exceptions (TypeError...)
# describe Pillow's internals, which the client is not told.
DESCRIPTIVE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def _corrupt(image_format: str | None, exc: BaseException) -> ImageRejected:
    reason = f": {exc}" if isinstance(exc, DESCRIPTIVE_ERRORS) and str(exc) else "."
    return ImageRejected(f"The {image_format} image is truncated or corrupt{reason}", code="corrupt_image")


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ImageRejected:
    return ImageRejected(
        f"The image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}.",
        code="image_too_large",
        status_code=413,
    )


def _open(data: bytes, allowed_formats: list[str]) -> ImageFile.ImageFile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=allowed_formats)
        except Image.DecompressionBombError:
            # Pillow refuses headers above twice its own pixel limit itself;
            # that is a pixel bomb in an accepted format, not a non-image.
            raise ImageRejected(
                f"The image has more pixels than the limit of {clip_settings.MAX_IMAGE_PIXELS}.",
                code="image_too_large",
                status_code=413,
            ) from None
        except Exception as exc:
            failure = exc
        # The signature of an accepted format whose header Pillow cannot
        # read (a broken or oversized chunk, a 0x0 size): a corrupt image.
        claimed = _claimed_format(data, allowed_formats)
        if claimed:
            raise _corrupt(claimed, failure) from None
        # Say which format it is when Pillow knows it but it is not allowed.
        try:
            detected = Image.open(io.BytesIO(data)).format
        except Exception:
            detected = None
    if detected:
        raise ImageRejected(
            f"{detected} images are not accepted; allowed formats: {', '.join(allowed_formats)}.",
            code="unsupported_format",
            status_code=415,
        )
    raise ImageRejected(
        f"The file is not a recognised image; allowed formats: {', '.join(allowed_formats)}.",
        code="not_an_image",
        status_code=415,
    )


def _claimed_format(data: bytes, allowed_formats: Iterable[str]) -> str | None:
    """The allowed format whose signature ``data`` starts with, if any."""
    Image.init()
    prefix = data[:16]
    for name in allowed_formats:
        accept = Image.OPEN.get(name, (None, None))[1]
        try:
            if accept is not None and accept(prefix):
                return name
        except Exception:
            continue
    return None


def _decode_estimate(image: Image.Image, data: bytes) -> int:
    """Draft a big JPEG to a reduced scale, then estimate the decode's peak bytes.

    A JPEG in several scans adds its coefficient buffers at full size
    (``jpeg_scan_buffer_cost``): libjpeg cannot decode one scale-reduced
    without them.
    """
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return decode_cost(image.mode, *image.size)
    width, height = image.size
    frame = jpeg_frame(data)
    if frame.marker in JPEG_LOSSLESS_FRAMES:
        raise ImageRejected(
            "Lossless JPEG images are not accepted (browsers do not show them); send a JPEG or PNG photo.",
            code="unsupported_format",
            status_code=415,
        )
    _reduce_jpeg_scale(image)
    cost = decode_cost(image.mode, *image.size)
    if frame.multiple_scans(components=len(image.layer)):
        cost += jpeg_scan_buffer_cost(width, height, [(h, v) for _, h, v, _ in image.layer])
    return cost


# Start-of-frame markers (ITU-T T.81, table B.1): progressive, and lossless.
# Lossless JPEGs are refused: no browser or camera makes them, libjpeg cannot
# decode them scaled (drafting a 2000 x 2000 one wrote full-size rows into the
# reduced image and crashed the process), and at full size they cost more
# than the worst case the budget is sized for.
JPEG_PROGRESSIVE_FRAMES = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
JPEG_LOSSLESS_FRAMES = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_START_OF_SCAN = 0xDA
# Markers Pillow reads without a length (JpegImagePlugin.MARKER's entries
# without a handler); 0xFF00 is skipped as escaped data.
JPEG_MARKERS_WITHOUT_LENGTH = frozenset({0x00, 0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)})


@dataclass(frozen=True)
class JpegFrame:
    """What a JPEG's header says about how it is decoded, up to its first scan."""

    marker: int | None  # the start-of-frame marker, None when not found
    first_scan_components: int | None  # components in the first scan, None when not found

    def multiple_scans(self, *, components: int) -> bool:
        """True when libjpeg reads the picture in several scans (or it cannot be
        told): progressive, or a first scan without every component."""
        if self.marker is None or self.first_scan_components is None:
            return True
        return self.marker in JPEG_PROGRESSIVE_FRAMES or self.first_scan_components < components


def jpeg_frame(data: bytes) -> JpegFrame:
    """The ``JpegFrame`` of JPEG bytes, read the way Pillow reads the header
    (bytes between segments skipped) up to the first start of scan."""
    marker, position = None, 2
    while position + 1 < len(data):
        if data[position] != 0xFF or data[position + 1] == 0xFF:
            position += 1  # junk or fill byte
            continue
        code = data[position + 1]
        if code in JPEG_MARKERS_WITHOUT_LENGTH:
            position += 2
            continue
        if code == JPEG_START_OF_SCAN:
            count = data[position + 4] if position + 4 < len(data) else None
            return JpegFrame(marker=marker, first_scan_components=count)
        if code in JPEG_FRAMES:
            marker = code
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return JpegFrame(marker=marker, first_scan_components=None)


def _reduce_jpeg_scale(image: Image.Image) -> None:
    """Let libjpeg decode a big photo at 1/2, 1/4 or 1/8 scale.

    The model sees a few hundred pixels; decoding 12 MP only to throw most
    of them away is the costliest step of a request. The shorter side stays
    >= JPEG_DRAFT_MIN_SIDE so the final resize still starts from more pixels
    than the model's input.
    """
    min_side = clip_settings.JPEG_DRAFT_MIN_SIDE
    if image.format != "JPEG" or not min_side:
        return
    width, height = image.size
    scale = min(width, height) / min_side
    if scale >= 2:
        # draft() keeps both sides >= the requested size.
        image.draft(image.mode, (int(width / scale) + 1, int(height / scale) + 1))


# EXIF orientation → the transpose that makes the picture upright
# (ImageOps.exif_transpose's table), applied after reduction so that only
# the small image is copied.
ORIENTATION_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(image: Image.Image) -> object:
    try:
        return image.getexif().get(ExifTags.Base.Orientation)
    except Exception:
        # A broken EXIF block must not cost the picture itself.
        return None


def _apply_orientation(image: Image.Image, orientation: object) -> Image.Image:
    transpose = ORIENTATION_TRANSPOSES.get(orientation) if isinstance(orientation, int) else None
    return image.transpose(transpose) if transpose is not None else image


def _reduced(image: Image.Image) -> Image.Image:
    """The image shrunk by the largest integer factor that keeps its shorter
    side >= JPEG_DRAFT_MIN_SIDE (box averaging, in its own mode), so that
    mode conversions only ever copy the small image.

    JPEGs were already reduced by ``draft``; 16-bit and float images are
    reduced by ``to_rgb``; palette and bilevel images are converted first
    (averaging palette indices means nothing).
    """
    factor = _reduction_factor(image.size)
    if factor < 2 or image.mode in WIDE_MODES:
        return image
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    return image.reduce(factor)


def _reduction_factor(size: tuple[int, int]) -> int:
    min_side = clip_settings.JPEG_DRAFT_MIN_SIDE
    if not min_side:
        return 1
    return max(1, min(size) // int(min_side))


# Modes of more than 8 bits per channel, scaled to 8 bits by ``to_rgb``.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
WIDE_MODES = (*SIXTEEN_BIT_MODES, "I", "F")
# Source pixels per strip when scaling wide modes to 8 bits.
STRIP_PIXELS = 1 << 20


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency composited onto white.

    Wide images (16-bit, 32-bit integer, float) are box-reduced by the same
    factor as the others and scaled to 8 bits strip by strip, so no
    full-size numpy copy (let alone a float64 one) is ever made.
    """
    if image.mode in WIDE_MODES:
        return Image.fromarray(_wide_to_uint8(image, _reduction_factor(image.size))).convert("RGB")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def _wide_to_uint8(image: Image.Image, factor: int) -> npt.NDArray[np.uint8]:
    """16-bit, 32-bit or float pixels → uint8, reduced ``factor`` times.

    Scaling keeps the old rules: 16-bit images (and 32-bit ones with values
    above 255) span 0..65535, others 0..255; float images span 0..1 when no
    value exceeds 1, else 0..255; NaN is black.
    """
    width, height = image.size
    out_width, out_height = max(1, width // factor), max(1, height // factor)
    if image.mode == "F":
        peak = _float_peak(image)
        scale = 255.0 if peak is not None and peak <= 1.0 else 1.0
    elif image.mode in SIXTEEN_BIT_MODES:
        scale = 255.0 / 65535.0
    else:
        low, high = cast(tuple[float, float], image.getextrema())  # one band
        scale = 255.0 / 65535.0 if high > 255 else 1.0
    out = np.empty((out_height, out_width), dtype=np.uint8)
    rows = max(1, STRIP_PIXELS // max(1, width * factor))
    for top in range(0, out_height, rows):
        bottom = min(out_height, top + rows)
        strip = np.asarray(image.crop((0, top * factor, out_width * factor, bottom * factor)))
        values = strip.reshape(bottom - top, factor, out_width, factor).mean(axis=(1, 3), dtype=np.float32)
        if image.mode == "F":
            values = np.nan_to_num(values, nan=0.0, posinf=255.0 / scale, neginf=0.0)
        values *= scale
        values += 0.5
        np.clip(values, 0, 255, out=values)
        out[top:bottom] = values.astype(np.uint8)
    return out


def _float_peak(image: Image.Image) -> float | None:
    """The largest non-NaN value of a float image (None when all are NaN)."""
    width, height = image.size
    peak = None
    rows = max(1, STRIP_PIXELS // max(1, width))
    for top in range(0, height, rows):
        strip = np.asarray(image.crop((0, top, width, min(height, top + rows))))
        finite = strip[~np.isnan(strip)]
        if finite.size:
            value = float(finite.max())
            peak = value if peak is None else max(peak, value)
    return peak


def _has_alpha(image: Image.Image) -> bool:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return image.mode in ("P", "L", "RGB", "1") and "transparency" in image.info


def read_batch_file(relative_path: object, *, root: str | os.PathLike[str] | None = None) -> bytes:
    """Read an image file named by a batch item, confined to BATCH_ROOT.

    The path is resolved with symlinks followed; anything that ends up
    outside the root, or is not a regular file, is refused.
    """
    root = root if root is not None else clip_settings.BATCH_ROOT
    if not isinstance(relative_path, str) or not relative_path.strip():
        raise BatchPathRejected("image_path must be a non-empty string.")
    if "\x00" in relative_path:
        raise BatchPathRejected("image_path contains a NUL byte.")
    root_path = Path(root).resolve()
    try:
        # Symlinks are followed before the containment check, so a link
        # inside the root that points outside it is refused too.
        candidate = (root_path / relative_path).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # loops, name too long
        raise BatchPathRejected(f"The path cannot be resolved: {exc.__class__.__name__}.")
    if not candidate.is_relative_to(root_path):
        raise BatchPathRejected("The path is outside the batch root.", code="path_outside_root", status_code=403)
    max_bytes = clip_settings.MAX_UPLOAD_BYTES
    try:
        # O_NONBLOCK so a FIFO cannot hang the request (checked below);
        # O_NOFOLLOW so a symlink swapped in after the check is not followed.
        fd = os.open(candidate, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise BatchPathRejected("No such file under the batch root.", code="file_not_found", status_code=404)
    except OSError as exc:  # permissions, a symlink swapped in
        if exc.errno == errno.ENAMETOOLONG:
            raise BatchPathRejected("The path is too long for a file name.")
        raise BatchPathRejected(f"The file cannot be opened: {exc.strerror}.", code="unreadable_file")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BatchPathRejected("The path is not a regular file.", code="not_a_file")
        if info.st_size > max_bytes:
            raise ImageRejected(
                f"The file is {info.st_size} bytes; the limit is {max_bytes} bytes.",
                code="file_too_large",
                status_code=413,
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(max_bytes + 1)
    finally:
        os.close(fd)
