"""The API's similarity_score equals an independent reference: plain
transformers (AutoProcessor + AutoModel in float32, no project code; a SigLIP's
texts padded to max_length as its model card does) on the picture a person sees,
for every image format and mode the decoder takes, on both known-answer models
(the CLIP and the SigLIP). Every later optimisation must keep this passing, on
every exact runtime: PyTorch in float32 within 1e-3, OpenVINO in its default
precision (bf16 on CPUs that have it for a CLIP, float32 for a SigLIP) within 2e-3."""

import functools
import io

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageOps
from rest_framework.test import APIClient
from transformers import AutoModel, AutoProcessor

from knownanswer import domain
from tests.support.runtime import EXACT_RUNTIMES

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("runtime", EXACT_RUNTIMES, indirect=True)]


@pytest.fixture
def tolerance(runtime, settings):
    if runtime == "torch":
        settings.CLIPCHECK = {**settings.CLIPCHECK, "DTYPE": "float32"}
        return 1e-3
    return 2e-3
TEXT = domain.caption("star", "orange", 1)


@functools.lru_cache(maxsize=2)
def reference_model(checkpoint):
    return AutoProcessor.from_pretrained(checkpoint), AutoModel.from_pretrained(checkpoint, dtype=torch.float32).eval()


@pytest.fixture
def reference(known_answer):
    processor, model = reference_model(str(known_answer.checkpoint))
    padding = "max_length" if known_answer.family == "siglip" else True

    def score(picture, text=TEXT):
        inputs = processor(images=[picture], text=[text], return_tensors="pt", padding=padding)
        with torch.no_grad():
            image = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
            words = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output
        cosine = torch.nn.functional.cosine_similarity(image, words).item()
        return max(cosine, 0.0)

    return score


def api_score(data):
    response = APIClient().post(
        "/clip/analyze", {"file": SimpleUploadedFile("upload", data), "text": TEXT}, format="multipart"
    )
    assert response.status_code == 200, response.content
    return response.json()["similarity_score"]


def encoded(picture, format, **options):
    buffer = io.BytesIO()
    picture.save(buffer, format=format, **options)
    return buffer.getvalue()


def on_white(picture):
    rgba = picture.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


ORANGE_STAR = domain.render("star", "orange", seed=11, size=160)


def lossless_cases():
    transparent = domain.render("star", "black", seed=12, size=160, background="transparent")
    palette = ORANGE_STAR.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    grey = ORANGE_STAR.convert("L")
    sixteen_bit = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    return {
        "PNG RGB": (encoded(ORANGE_STAR, "PNG"), ORANGE_STAR),
        "WebP lossless": (encoded(ORANGE_STAR, "WEBP", lossless=True), ORANGE_STAR),
        "BMP": (encoded(ORANGE_STAR, "BMP"), ORANGE_STAR),
        "TIFF": (encoded(ORANGE_STAR, "TIFF"), ORANGE_STAR),
        "GIF palette": (encoded(palette, "GIF"), palette.convert("RGB")),
        "PNG RGBA transparent on white": (encoded(transparent, "PNG"), on_white(transparent)),
        "PNG LA on white": (encoded(transparent.convert("LA"), "PNG"), on_white(transparent.convert("LA"))),
        "PNG grayscale": (encoded(grey, "PNG"), grey.convert("RGB")),
        "PNG 1-bit": (encoded(grey.convert("1"), "PNG"), grey.convert("1").convert("RGB")),
        "PNG 16-bit": (encoded(sixteen_bit, "PNG"), grey.convert("RGB")),
    }


@pytest.mark.parametrize("case", list(lossless_cases()))
def test_lossless_formats_score_like_the_reference(case, reference, tolerance):
    data, picture = lossless_cases()[case]
    assert abs(api_score(data) - reference(picture)) <= tolerance


@pytest.mark.parametrize("mode", ["RGB", "CMYK", "L"])
def test_jpegs_score_like_the_reference_on_their_decoded_pixels(mode, reference, tolerance):
    data = encoded(ORANGE_STAR.convert(mode), "JPEG", quality=92)
    assert abs(api_score(data) - reference(Image.open(io.BytesIO(data)).convert("RGB"))) <= tolerance


def test_a_sideways_jpeg_with_an_orientation_tag_scores_like_the_upright_picture(reference, tolerance):
    stored = ORANGE_STAR.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    data = encoded(stored, "JPEG", quality=95, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert abs(api_score(data) - reference(upright)) <= tolerance


@pytest.mark.parametrize("format", ["GIF", "WEBP"])
def test_animations_score_like_their_first_frame(format, reference, tolerance):
    frames = [ORANGE_STAR, domain.render("circle", "blue", seed=13, size=160)]
    options = {"lossless": True} if format == "WEBP" else {}
    data = encoded(frames[0], format, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)
    first = Image.open(io.BytesIO(data))
    first.seek(0)
    assert abs(api_score(data) - reference(first.convert("RGB"))) <= tolerance


def test_transparency_on_black_would_change_the_answer(reference):
    """Why compositing matters: a black star on a transparent background."""
    transparent = domain.render("star", "black", seed=12, size=160, background="transparent")
    black_star = domain.caption("star", "black", 0)
    on_black = transparent.convert("RGB")  # what dropping alpha shows
    assert reference(on_white(transparent), black_star) > reference(on_black, black_star) + 0.1
