"""The decode budget: reserved from the header before decoding, released after, refused when it cannot fit."""

import os
import subprocess
import sys
import threading

import pytest
from rest_framework.test import APIClient

from clipcheck.decode_budget import MB, decode_budget, decode_cost, jpeg_scan_buffer_cost, worst_case_decode_cost
from clipcheck.errors import ImageRejected, ModelBusy
from clipcheck.images import JpegFrame, decode_image, jpeg_frame
from tests.support import hostile
from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes
from tests.support.server import REPO_ROOT


def test_a_decode_reserves_its_estimated_cost_while_it_runs_and_releases_it(monkeypatch):
    _, reserved = _reserved_while_decoding(monkeypatch, image_bytes(size=(64, 48)))
    assert reserved == decode_cost("RGB", 64, 48)
    assert decode_budget().reserved == 0


def test_the_budget_is_released_when_the_decode_fails():
    with pytest.raises(ImageRejected) as refused:
        decode_image(hostile.tiff_retyped_tag(273, 2))
    assert refused.value.code == "corrupt_image"
    assert decode_budget().reserved == 0


def test_an_image_that_alone_exceeds_the_budget_is_too_large(settings):
    set_clip_settings(settings, DECODE_MEMORY_BUDGET_BYTES=1 * MB)
    with pytest.raises(ImageRejected) as refused:
        decode_image(hostile.png_uniform(1000, 1000, color="rgba"))
    assert (refused.value.code, refused.value.status_code) == ("image_too_large", 413)
    decode_image(image_bytes(size=(64, 48)))  # small ones still fit


def test_a_decode_that_cannot_get_memory_in_time_is_503_overloaded(settings, db):
    set_clip_settings(settings, DECODE_MEMORY_BUDGET_BYTES=8 * MB, DECODE_WAIT_MS=50)
    budget = decode_budget()
    assert budget.acquire(8 * MB, timeout=0)  # another request's decode holds it all
    try:
        with pytest.raises(ModelBusy):
            decode_image(image_bytes(size=(64, 48)))
        response = APIClient().post(
            "/clip/analyze", {"text": "red", "file": _upload()}, format="multipart"
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "overloaded"
        assert response["Retry-After"] == "1"
    finally:
        budget.release(8 * MB)
    assert APIClient().post("/clip/analyze", {"text": "red", "file": _upload()}, format="multipart").status_code == 200


def test_a_waiting_decode_proceeds_when_memory_is_released(settings):
    set_clip_settings(settings, DECODE_MEMORY_BUDGET_BYTES=8 * MB, DECODE_WAIT_MS=10_000)
    budget = decode_budget()
    assert budget.acquire(8 * MB, timeout=0)
    threading.Timer(0.2, budget.release, args=(8 * MB,)).start()
    assert decode_image(image_bytes(size=(64, 48))).size == (64, 48)


def test_the_default_budget_fits_one_worst_case_image_at_the_pixel_limit():
    from clipcheck.settings import DEFAULTS

    worst = _worst_case(DEFAULTS)
    assert worst <= DEFAULTS["DECODE_MEMORY_BUDGET_BYTES"]
    # A progressive CMYK JPEG at the pixel limit, at the narrowest accepted shape:
    # coefficients at full size, the picture drafted only by half.
    pixels, ratio = DEFAULTS["MAX_IMAGE_PIXELS"], DEFAULTS["MAX_ASPECT_RATIO"]
    height = int((pixels / ratio) ** 0.5)
    width = pixels // height
    narrow_jpeg = jpeg_scan_buffer_cost(width, height, [(1, 1)] * 4) + decode_cost("CMYK", width // 2, height // 2)
    assert narrow_jpeg <= worst


def test_without_drafting_the_worst_case_is_a_multi_scan_jpeg_at_full_size():
    from clipcheck.settings import DEFAULTS

    pixels = DEFAULTS["MAX_IMAGE_PIXELS"]
    worst = worst_case_decode_cost(pixels, max_aspect_ratio=DEFAULTS["MAX_ASPECT_RATIO"], draft_min_side=0)
    # 8 bytes of coefficients and 8 of picture per pixel, and a little padding.
    assert pixels * 16 <= worst <= pixels * 16.2
    assert worst > DEFAULTS["DECODE_MEMORY_BUDGET_BYTES"] > _worst_case(DEFAULTS)


def _worst_case(defaults):
    return worst_case_decode_cost(
        defaults["MAX_IMAGE_PIXELS"], max_aspect_ratio=defaults["MAX_ASPECT_RATIO"],
        draft_min_side=defaults["JPEG_DRAFT_MIN_SIDE"],
    )


def _reserved_while_decoding(monkeypatch, data):
    from PIL import ImageFile

    seen = []
    load = ImageFile.ImageFile.load

    def spying_load(image):
        seen.append(decode_budget().reserved)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spying_load)
    decoded = decode_image(data)
    return decoded, seen[0]


def test_a_progressive_jpeg_reserves_its_coefficients_at_full_size_not_only_its_drafted_size(monkeypatch):
    decoded, reserved = _reserved_while_decoding(monkeypatch, hostile.jpeg_gradient(2000, 1800, subsampling=0))
    assert decoded.size == (500, 450)  # drafted to a quarter
    coefficients = jpeg_scan_buffer_cost(2000, 1800, [(1, 1)] * 3)
    assert coefficients == 250 * 225 * 64 * 2 * 3
    assert reserved == decode_cost("RGB", 500, 450) + coefficients


def test_subsampled_chroma_reserves_fewer_coefficients(monkeypatch):
    _, reserved = _reserved_while_decoding(monkeypatch, hostile.jpeg_gradient(2000, 1800, subsampling=2))
    # 4:2:0: luma blocks in full, each chroma plane at half the width and height (padded to whole blocks).
    luma, chroma = 250 * 226 * 128, 125 * 113 * 128
    assert reserved == decode_cost("RGB", 500, 450) + luma + 2 * chroma


def test_a_jpeg_with_its_components_in_separate_scans_reserves_its_coefficients_too(monkeypatch):
    decoded, reserved = _reserved_while_decoding(monkeypatch, hostile.jpeg_components_in_separate_scans(2000, 1800))
    assert decoded.size == (500, 450)
    assert decoded.image.getpixel((10, 10)) == (128, 128, 128)
    assert reserved == decode_cost("RGB", 500, 450) + jpeg_scan_buffer_cost(2000, 1800, [(1, 1)] * 3)


def test_a_baseline_jpeg_reserves_only_its_drafted_size(monkeypatch):
    decoded, reserved = _reserved_while_decoding(
        monkeypatch, hostile.jpeg_gradient(2000, 1800, progressive=False, subsampling=0)
    )
    assert decoded.size == (500, 450)
    assert reserved == decode_cost("RGB", 500, 450)


def test_a_lossless_jpeg_is_refused_and_never_crashes_the_process():
    # libjpeg cannot decode a lossless JPEG scaled: drafting this one wrote
    # full-size rows into the reduced picture and aborted the process
    # (heap corruption), so it is decoded in a child process here.
    script = (
        "import django; django.setup()\n"
        "from clipcheck.errors import ImageRejected\n"
        "from clipcheck.images import decode_image\n"
        "from tests.support import hostile\n"
        "try:\n"
        "    decode_image(hostile.jpeg_lossless(2000, 2000))\n"
        "except ImageRejected as exc:\n"
        "    print(exc.code, exc.status_code)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "clipproject.settings"},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["unsupported_format", "415"]


def test_a_small_lossless_jpeg_is_refused_as_unsupported():
    with pytest.raises(ImageRejected) as refused:
        decode_image(hostile.jpeg_lossless(40, 30))
    assert (refused.value.code, refused.value.status_code) == ("unsupported_format", 415)
    assert "Lossless JPEG" in refused.value.message


@pytest.mark.parametrize(("prefix", "expected"), [
    (b"", JpegFrame(marker=0xC2, first_scan_components=3)),
    (b"\x00\x17junk", JpegFrame(marker=0xC2, first_scan_components=3)),  # Pillow skips bytes between segments
    (b"\xff\xff\xff", JpegFrame(marker=0xC2, first_scan_components=3)),  # fill bytes
])
def test_the_frame_is_read_the_way_pillow_reads_the_header(prefix, expected):
    data = hostile.jpeg_gradient(64, 48)
    assert jpeg_frame(data[:2] + prefix + data[2:]) == expected


def test_a_header_without_a_scan_counts_as_several_scans():
    frame = jpeg_frame(hostile.jpeg_gradient(64, 48, progressive=False)[:200])
    assert frame.first_scan_components is None
    assert frame.multiple_scans(components=3)
    assert not jpeg_frame(hostile.jpeg_gradient(64, 48, progressive=False)).multiple_scans(components=3)


def test_a_sixteen_bit_image_at_the_pixel_limit_decodes_reduced():
    decoded = decode_image(hostile.png_16bit_grayscale(6000, 6000))
    assert decoded.image.mode == "RGB"
    assert min(decoded.size) >= 448 and max(decoded.size) < 6000
    assert decoded.image.getpixel((10, 10)) == (156, 156, 156)  # 40000 / 65535 * 255, rounded


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("photo.png", image_bytes(), content_type="image/png")
