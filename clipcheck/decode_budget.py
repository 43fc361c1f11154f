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
"""

import contextlib
import threading
import time

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


def decode_cost(mode, width, height):
    """Estimated peak bytes of decoding a ``width`` x ``height`` image of ``mode``
    and converting it to RGB (``clipcheck.images``), at the size it is decoded."""
    per_pixel = STORAGE_BYTES_PER_PIXEL.get(mode, DEFAULT_STORAGE_BYTES_PER_PIXEL) + CONVERSION_BYTES_PER_PIXEL.get(
        mode, DEFAULT_CONVERSION_BYTES_PER_PIXEL
    )
    return width * height * per_pixel


def worst_case_decode_cost(pixels):
    """The most any accepted image of ``pixels`` pixels may reserve."""
    return max(decode_cost(mode, pixels, 1) for mode in ("P", "RGBA", "I;16", "F", "1", "L"))


class DecodeBudget:
    """A counting semaphore over bytes: reserve, decode, release."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._reserved = 0
        self._changed = threading.Condition()

    @property
    def reserved(self):
        return self._reserved

    def acquire(self, amount, *, timeout):
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._reserved + amount > self.capacity:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            self._reserved += amount
            return True

    def release(self, amount):
        with self._changed:
            self._reserved -= amount
            self._changed.notify_all()


_budget = CapacitySingleton(DecodeBudget)


def decode_budget():
    """The process's budget, rebuilt when DECODE_MEMORY_BUDGET_BYTES changes."""
    return _budget.get(int(clip_settings.DECODE_MEMORY_BUDGET_BYTES))


@contextlib.contextmanager
def decode_reservation(cost):
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
