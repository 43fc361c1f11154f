"""The one image decoder: bytes in, an upright RGB picture out, or a clear refusal.

Every entry point (uploads, batch paths, storage, audit) decodes through
``decode_image`` so the model always sees the picture a person would see:
EXIF orientation applied, transparency composited onto white, every mode
converted to 8-bit RGB, the first frame of animations.
"""

import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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

    @property
    def size(self):
        return self.image.size


def decode_image(data, *, allowed_formats=None, max_pixels=None, max_bytes=None, max_aspect_ratio=None):
    """Decode image bytes into an upright RGB ``DecodedImage``.

    Raises ``ImageRejected`` (a 4xx) for empty, oversized, unsupported,
    non-image, truncated or corrupt input.
    """
    allowed_formats = [f.upper() for f in (allowed_formats or clip_settings.ALLOWED_IMAGE_FORMATS)]
    max_pixels = max_pixels or clip_settings.MAX_IMAGE_PIXELS
    max_bytes = max_bytes or clip_settings.MAX_UPLOAD_BYTES
    max_aspect_ratio = max_aspect_ratio or clip_settings.MAX_ASPECT_RATIO

    if not data:
        raise ImageRejected("The file is empty.", code="empty_file")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.",
            code="file_too_large",
            status_code=413,
        )

    image = _open(data, allowed_formats)
    width, height = image.size
    # Checked from the header, before any pixel is decoded (Pillow itself
    # only refuses at twice its own limit).
    if width * height > max_pixels:
        raise _too_many_pixels(width, height, max_pixels)
    if width < 1 or height < 1:
        raise ImageRejected("The image has no pixels.", code="corrupt_image")
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise ImageRejected(
            f"The image is {width}x{height}; sides may differ by a factor of at most {max_aspect_ratio}.",
            code="aspect_ratio_too_large",
        )

    image_format = image.format
    try:
        image.seek(0)  # first frame of animated GIF/WebP/TIFF
        _reduce_jpeg_scale(image)
        image.load()
        rgb = to_rgb(_upright(image))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageRejected(
            f"The {image_format} image is truncated or corrupt: {exc}", code="corrupt_image"
        ) from exc
    return DecodedImage(image=rgb, format=image_format, sha256=content_hash(data))


def _too_many_pixels(width, height, max_pixels):
    return ImageRejected(
        f"The image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}.",
        code="image_too_large",
        status_code=413,
    )


def _open(data, allowed_formats):
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
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            pass
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


def _reduce_jpeg_scale(image):
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


def _upright(image):
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # A broken EXIF block must not cost the picture itself.
        return image


def to_rgb(image):
    """Any Pillow mode → 8-bit RGB; transparency composited onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        pixels = np.clip(pixels / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(pixels).convert("RGB")
    if image.mode == "F":
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if pixels.max() <= 1.0:
            pixels = pixels * 255.0
        return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def _has_alpha(image):
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return image.mode in ("P", "L", "RGB", "1") and "transparency" in image.info


def read_batch_file(relative_path, *, root=None):
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
    except OSError as exc:  # permissions, name too long, a symlink swapped in
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
