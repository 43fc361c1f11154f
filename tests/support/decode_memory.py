"""Peak memory of concurrent worst-case decodes, measured in a fresh process.

Run as ``python -m tests.support.decode_memory BUDGET_BYTES NAME...``: it
builds the named hostile images (``CASES``) in another process (encoding a
big JPEG holds its whole picture, which must not count here), resets the
kernel's peak-RSS mark, decodes them all at once in threads and prints one
JSON object with the growth of VmHWM over VmRSS before the decodes and the
bytes each decode reserved from the budget.
"""

import concurrent.futures
import functools
import json
import multiprocessing
import os
import sys
import threading

from tests.support import hostile

# Just under MAX_IMAGE_PIXELS (40 MP).
SIDE = 6324
# The size of the reported progressive JPEG.
JPEG_SIDE = 6300
CASES = {
    "gray16": functools.partial(hostile.png_uniform, SIDE, SIDE, color="gray", bit_depth=16),
    "rgb16": functools.partial(hostile.png_uniform, SIDE, SIDE, color="rgb", bit_depth=16),
    "rgba8": functools.partial(hostile.png_uniform, SIDE, SIDE, color="rgba"),
    "palette_alpha": functools.partial(hostile.png_uniform, SIDE, SIDE, color="palette", transparent=True),
    "bilevel": functools.partial(hostile.png_uniform, SIDE, SIDE, color="gray", bit_depth=1),
    # libjpeg keeps every coefficient of these at full size, however small they decode.
    "progressive_jpeg": functools.partial(hostile.jpeg_gradient, JPEG_SIDE, JPEG_SIDE, subsampling=0),
    "progressive_jpeg_420": functools.partial(hostile.jpeg_gradient, JPEG_SIDE, JPEG_SIDE, subsampling=2),
    "progressive_cmyk_jpeg": functools.partial(hostile.jpeg_gradient, JPEG_SIDE, JPEG_SIDE, mode="CMYK"),
    "separate_scans_jpeg": functools.partial(hostile.jpeg_components_in_separate_scans, JPEG_SIDE, JPEG_SIDE),
}


def _build(name):
    return CASES[name]()


def build_files(names):
    """The named files, built in a spawned process (each name once)."""
    unique = sorted(set(names))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        built = dict(zip(unique, pool.map(_build, unique), strict=True))
    return [built[name] for name in names]


def status_bytes(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


def main(budget, names):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clipproject.settings")
    import django

    django.setup()
    from django.conf import settings

    from clipcheck import decode_budget
    from clipcheck.images import decode_image
    from clipcheck.settings import clip_settings

    settings.CLIPCHECK = {**settings.CLIPCHECK, "DECODE_MEMORY_BUDGET_BYTES": budget, "DECODE_WAIT_MS": 120_000}
    clip_settings.reload()
    files = build_files(names)
    results, barrier = [None] * len(files), threading.Barrier(len(files))
    reserved, peak_reserved = [], [0]
    acquire = decode_budget.DecodeBudget.acquire

    def recording_acquire(self, amount, *, timeout):
        granted = acquire(self, amount, timeout=timeout)
        if granted:
            reserved.append(amount)
            peak_reserved[0] = max(peak_reserved[0], self.reserved)
        return granted

    decode_budget.DecodeBudget.acquire = recording_acquire

    def decode(index):
        barrier.wait()
        try:
            results[index] = list(decode_image(files[index]).size)
        except Exception as exc:  # reported, not hidden
            results[index] = f"{exc.__class__.__name__}: {exc}"

    threads = [threading.Thread(target=decode, args=(index,)) for index in range(len(files))]
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    baseline = status_bytes("VmRSS")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({
        "baseline_bytes": baseline,
        "peak_growth_bytes": status_bytes("VmHWM") - baseline,
        "file_bytes": [len(data) for data in files],
        "reserved_bytes": reserved,
        "peak_reserved_bytes": peak_reserved[0],
        "results": results,
    }))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
