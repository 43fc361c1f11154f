"""The API's similarity_score equals an independent reference: plain
transformers (AutoProcessor + AutoModel in float32, no project code; a SigLIP's
texts padded to max_length as its model card does) on the picture a person sees,
for every image format and mode the decoder takes, on both known-answer models
(the CLIP and the SigLIP). Every later optimisation must keep this passing, on
every exact runtime: PyTorch in float32 within 1e-3, OpenVINO in its default
precision (bf16 on CPUs that have it for a CLIP, float32 for a SigLIP) within 2e-3."""

import functools

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from transformers import AutoModel, AutoProcessor

from knownanswer import domain
from tests.support.format_cases import FORMAT_CASES, on_white
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


@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_every_format_scores_like_the_reference_on_the_picture_a_person_sees(case, reference, tolerance):
    data, picture = FORMAT_CASES[case]
    assert abs(api_score(data) - reference(picture)) <= tolerance


def test_transparency_on_black_would_change_the_answer(reference):
    """Why compositing matters: a black star on a transparent background."""
    transparent = domain.render("star", "black", seed=12, size=160, background="transparent")
    black_star = domain.caption("star", "black", 0)
    on_black = transparent.convert("RGB")  # what dropping alpha shows
    assert reference(on_white(transparent), black_star) > reference(on_black, black_star) + 0.1
