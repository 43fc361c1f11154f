"""Peak memory of concurrent worst-case decodes, measured in a fresh process.

Run as ``python -m tests.support.decode_memory BUDGET_BYTES NAME...``: it
builds the named hostile images (``CASES``), resets the kernel's peak-RSS
mark, decodes them all at once in threads and prints one JSON object with
the growth of VmHWM over VmRSS before the decodes, in bytes.
"""

import json
import os
import sys
import threading

CASES = {
    "gray16": {"color": "gray", "bit_depth": 16},
    "rgb16": {"color": "rgb", "bit_depth": 16},
    "rgba8": {"color": "rgba"},
    "palette_alpha": {"color": "palette", "transparent": True},
    "bilevel": {"color": "gray", "bit_depth": 1},
}
# Just under MAX_IMAGE_PIXELS (40 MP).
SIDE = 6324


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

    from clipcheck.images import decode_image
    from clipcheck.settings import clip_settings
    from tests.support import hostile

    settings.CLIPCHECK = {**settings.CLIPCHECK, "DECODE_MEMORY_BUDGET_BYTES": budget, "DECODE_WAIT_MS": 120_000}
    clip_settings.reload()
    files = [hostile.png_uniform(SIDE, SIDE, **CASES[name]) for name in names]
    results, barrier = [None] * len(files), threading.Barrier(len(files))

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
        "results": results,
    }))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
