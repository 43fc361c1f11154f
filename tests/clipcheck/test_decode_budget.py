"""The decode budget: reserved from the header before decoding, released after, refused when it cannot fit."""

import threading

import pytest
from rest_framework.test import APIClient

from clipcheck.decode_budget import MB, decode_budget, decode_cost, worst_case_decode_cost
from clipcheck.errors import ImageRejected, ModelBusy
from clipcheck.images import decode_image
from tests.support.images import image_bytes
from tests.support.clip_settings import set_clip_settings
from tests.support import hostile


def test_a_decode_reserves_its_estimated_cost_while_it_runs_and_releases_it(monkeypatch):
    seen = []
    from PIL import ImageFile

    load = ImageFile.ImageFile.load

    def spying_load(image):
        seen.append(decode_budget().reserved)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spying_load)
    decode_image(image_bytes(size=(64, 48)))
    assert seen and seen[0] == decode_cost("RGB", 64, 48)
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

    assert worst_case_decode_cost(DEFAULTS["MAX_IMAGE_PIXELS"]) <= DEFAULTS["DECODE_MEMORY_BUDGET_BYTES"]


def test_a_sixteen_bit_image_at_the_pixel_limit_decodes_reduced():
    decoded = decode_image(hostile.png_16bit_grayscale(6000, 6000))
    assert decoded.image.mode == "RGB"
    assert min(decoded.size) >= 448 and max(decoded.size) < 6000
    assert decoded.image.getpixel((10, 10)) == (156, 156, 156)  # 40000 / 65535 * 255, rounded


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("photo.png", image_bytes(), content_type="image/png")
