"""The per-process memory budget for image decodes in flight.

A small compressed file can claim tens of megapixels: a 78 KB 16-bit PNG of
40 MP is 80 MB once decoded, and its conversion more. Decoding runs in the
request threads, before the model's admission control, so without a bound
a handful of such requests at once takes a worker to gigabytes.

``decode_image`` estimates each decode's peak memory from the image header
(``decode_cost``) and reserves it here before a pixel is decoded
(``DECODE_MEMORY_BUDGET_BYTES``). A decode that does not fit waits up to
``DECODE_WAIT_MS`` for others to finish, then gets 503 ``overloaded`` with
``Retry-After``; one that could never fit is refused as too large (413).

A JPEG whose data comes in several scans (progressive, or components in
separate scans) is the exception to "memory follows the decoded size":
libjpeg keeps every coefficient of the whole image until the last scan,
2 bytes per sample at full size however small it decodes (a 575 KB
progressive 6300 x 6300 JPEG: 230 MB for a 788 x 788 result), so the
estimate adds them (``jpeg_scan_buffer_cost``).
"""

import contextlib
import math
import threading
import time
from collections.abc import Iterator, Sequence

from clipcheck.errors import ImageRejected, ModelBusy
from clipcheck.process_singleton import CapacitySingleton
from clipcheck.settings import clip_settings

MB = 1024 * 1024

# Bytes per pixel Pillow allocates for a decoded image of each mode (three-
# channel modes are stored in four bytes).
STORAGE_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
DEFAULT_STORAGE_BYTES_PER_PIXEL = 4
# What the conversion to RGB adds at full size, per pixel: palette and
# bilevel images become 4-byte RGB(A) before they can be reduced, 16-bit
# ones are copied once into numpy, the others once (RGBa, RGB).
CONVERSION_BYTES_PER_PIXEL = {"1": 4, "P": 8, "PA": 8, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
DEFAULT_CONVERSION_BYTES_PER_PIXEL = 4


def decode_cost(mode: str, width: int, height: int) -> int:
    """Estimated peak bytes of decoding a ``width`` x ``height`` image of ``mode``
    and converting it to RGB (``clipcheck.images``), at the size it is decoded."""
    per_pixel = STORAGE_BYTES_PER_PIXEL.get(mode, DEFAULT_STORAGE_BYTES_PER_PIXEL) + CONVERSION_BYTES_PER_PIXEL.get(
        mode, DEFAULT_CONVERSION_BYTES_PER_PIXEL
    )
    return width * height * per_pixel


# libjpeg holds one 2-byte coefficient per sample of each component (64 per
# 8 x 8 block) while a multi-scan JPEG is read; the most components a JPEG
# Pillow reads has is 4 (CMYK).
JPEG_COEFFICIENT_BYTES = 2
JPEG_BLOCK_SIDE = 8
JPEG_MAX_COMPONENTS = 4
# The scales libjpeg can decode at (``Image.draft``): 1/1, 1/2, 1/4, 1/8.
JPEG_DRAFT_FACTORS = (1, 2, 4, 8)


def jpeg_scan_buffer_cost(width: int, height: int, sampling: Sequence[tuple[int, int]]) -> int:
    """Bytes libjpeg holds for the coefficients of a multi-scan JPEG of ``width``
    x ``height`` whose components have the ``(horizontal, vertical)`` sampling
    factors ``sampling``: each component's blocks, padded as libjpeg pads them
    (``jdcoefct.c``), at full size whatever the scale it is decoded at."""
    max_h = max(max(h for h, _ in sampling), 1)
    max_v = max(max(v for _, v in sampling), 1)
    total = 0
    for h, v in sampling:
        h, v = max(h, 1), max(v, 1)
        blocks_wide = _round_up(-(-width * h // (max_h * JPEG_BLOCK_SIDE)), h)
        blocks_high = _round_up(-(-height * v // (max_v * JPEG_BLOCK_SIDE)), v)
        total += blocks_wide * blocks_high * JPEG_BLOCK_SIDE * JPEG_BLOCK_SIDE * JPEG_COEFFICIENT_BYTES
    return total


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def worst_case_decode_cost(pixels: int, *, max_aspect_ratio: float, draft_min_side: float | None) -> int:
    """The most any accepted image of ``pixels`` pixels may reserve.

    The costliest image is either one decoded at full size in its mode, or a
    multi-scan CMYK JPEG: coefficients at full size plus the picture at the
    scale ``decode_image`` drafts it to, which depends on its shorter side
    (at least ``sqrt(pixels / max_aspect_ratio)``) and ``draft_min_side``.
    """
    full_size = max(decode_cost(mode, pixels, 1) for mode in ("P", "RGBA", "I;16", "F", "1", "L"))
    jpeg = 0
    for factor in JPEG_DRAFT_FACTORS:
        # The most pixels of an image drafted by ``factor``: its shorter side
        # stays under the next factor's threshold (none for the largest).
        if factor == JPEG_DRAFT_FACTORS[-1] or not draft_min_side:
            most = pixels
        else:
            short_side = 2 * factor * (math.ceil(draft_min_side) + 2)
            most = min(pixels, math.ceil(max_aspect_ratio * short_side * short_side))
        jpeg = max(jpeg, _narrowest_jpeg_coefficients(most, max_aspect_ratio)
                   + decode_cost("CMYK", most, 1) // (factor * factor))
        if not draft_min_side:
            break
    return max(full_size, jpeg)


def _narrowest_jpeg_coefficients(pixels: int, max_aspect_ratio: float) -> int:
    """The coefficients of a 4-component JPEG of ``pixels`` at the narrowest
    accepted shape, where padding to whole blocks costs most; each side gets
    3 more blocks, the most that sampling factors up to 4 pad it by."""
    height = max(1, math.isqrt(math.ceil(pixels / max_aspect_ratio)))
    width = -(-pixels // height)
    padding = 3 * JPEG_BLOCK_SIDE
    return jpeg_scan_buffer_cost(width + padding, height + padding, [(1, 1)] * JPEG_MAX_COMPONENTS)


class DecodeBudget:
    """A counting semaphore over bytes: reserve, decode, release."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._reserved = 0
        self._changed = threading.Condition()

    @property
    def reserved(self) -> int:
        return self._reserved

    def acquire(self, amount: int, *, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._reserved + amount > self.capacity:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            self._reserved += amount
            return True

    def release(self, amount: int) -> None:
        with self._changed:
            self._reserved -= amount
            self._changed.notify_all()


_budget = CapacitySingleton(DecodeBudget)


def decode_budget() -> DecodeBudget:
    """The process's budget, rebuilt when DECODE_MEMORY_BUDGET_BYTES changes."""
    return _budget.get(int(clip_settings.DECODE_MEMORY_BUDGET_BYTES))


@contextlib.contextmanager
def decode_reservation(cost: int) -> Iterator[None]:
    """Hold ``cost`` bytes of the budget for the duration of a decode."""
    budget = decode_budget()
    if cost > budget.capacity:
        raise ImageRejected(
            f"Decoding this image needs about {cost // MB} MB; this server decodes at most "
            f"{budget.capacity // MB} MB at a time.",
            code="image_too_large",
            status_code=413,
        )
    if not budget.acquire(cost, timeout=max(float(clip_settings.DECODE_WAIT_MS), 0.0) / 1000.0):
        raise ModelBusy("The server is decoding too many images; retry shortly.")
    try:
        yield
    finally:
        budget.release(cost)
