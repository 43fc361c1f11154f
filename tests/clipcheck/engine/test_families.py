"""The CLIP family through one path: CLIP, SigLIP and fixed-resolution SigLIP 2
checkpoints recognised from their config, each answering like plain
transformers through the API on every runtime; NaFlex, other architectures
and checkpoints with code of their own refused at start in one sentence.

The reference is what the model cards document, with no project code:
``AutoProcessor(text=..., images=..., padding=...)`` (``"max_length"`` for
SigLIP) and ``AutoModel``'s ``get_image_features``/``get_text_features`` in
float32; its cosines, softmax over categories and, for a sigmoid-trained
model, ``sigmoid(logit_scale * cos + logit_bias)``.
"""

import logging
import math

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from transformers import AutoModel, AutoProcessor

from clipcheck.engine import get_engine, reset_engine
from clipcheck.engine.calibration_set import calibration_set_build, generic_pictures
from clipcheck.engine.families import NAFLEX_ALTERNATIVE, UnsupportedCheckpoint, checkpoint_family
from clipcheck.engine.openvino import GUARD_MAX_SCORE_GAP, runtime_build
from clipcheck.errors import ModelUnavailable
from tests.checkpoints import FAMILY_BUILDERS, build_tiny_clip, build_tiny_naflex, with_code_map
from tests.support.clip_settings import set_clip_settings
from tests.support.format_cases import FORMAT_CASES, ORANGE_STAR, encoded
from tests.support.runtime import RUNTIME_CACHE_DIR

FAMILIES = list(FAMILY_BUILDERS)
SIGMOID = {"clip": False, "siglip": True, "siglip2": True}
# As the model cards call the processor: SigLIP's text tower pools its last position, so it pads to the context.
REFERENCE_PADDING = {"clip": True, "siglip": "max_length", "siglip2": "max_length"}
CANDIDATE_TEXTS = [
    "an orange star", "a photo of a red circle", "a yellow star", "ein roter Stern", "une étoile bleue",
    "a black bag with a strap", "a green triangle", "una cruz amarilla", "a blue square", "white",
]
CATEGORIES = ["orange star", "red circle", "blue square", "green triangle"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("families")
    built = {name: str(build(root / name)) for name, build in FAMILY_BUILDERS.items() if name != "clip"}
    return {"clip": tiny_model_dir, **built}


class Reference:
    """Plain transformers in float32 on one checkpoint (no project code)."""

    def __init__(self, checkpoint, family):
        self.processor = AutoProcessor.from_pretrained(checkpoint)
        self.model = AutoModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
        self.padding = REFERENCE_PADDING[family]
        self.logit_scale = float(self.model.logit_scale.detach().exp())
        bias = getattr(self.model, "logit_bias", None)
        self.logit_bias = None if bias is None else float(bias.detach())

    def cosines(self, picture, texts):
        inputs = self.processor(images=[picture], text=list(texts), padding=self.padding, return_tensors="pt")
        text_inputs = {key: value for key, value in inputs.items() if key != "pixel_values"}
        with torch.no_grad():
            image = self.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
            words = self.model.get_text_features(**text_inputs).pooler_output
        image = torch.nn.functional.normalize(image, dim=-1)
        words = torch.nn.functional.normalize(words, dim=-1)
        return (words @ image[0]).numpy()

    def sigmoid(self, cosine):
        return 1.0 / (1.0 + math.exp(-(self.logit_scale * cosine + self.logit_bias)))

    def softmax(self, cosines):
        logits = self.logit_scale * np.asarray(cosines, dtype=np.float64)
        exponentials = np.exp(logits - logits.max())
        return exponentials / exponentials.sum()


@pytest.fixture(scope="module")
def references(checkpoints):
    return {family: Reference(checkpoint, family) for family, checkpoint in checkpoints.items()}


@pytest.fixture(scope="module")
def texts(references):
    """Per family, the candidate text the random model likes best with the orange star: a
    score the API does not clamp to 0, so equality is a real comparison."""
    chosen = {}
    for family, reference in references.items():
        cosines = reference.cosines(ORANGE_STAR, CANDIDATE_TEXTS)
        chosen[family] = CANDIDATE_TEXTS[int(np.argmax(cosines))]
        assert cosines.max() > 0.02, (family, cosines)
    return chosen


@pytest.fixture
def served(settings, checkpoints, batch_root):
    """Serve a family's checkpoint on a runtime in float32 (OpenVINO's exact mode at f32: a
    SigLIP's default on CPUs; CLIP's on CPUs without bf16). At bf16 these random-weight towers
    move cosines by up to about 3e-3 (docs/models.md, Precision)."""

    def serve(family, runtime):
        set_clip_settings(
            settings, MODEL=checkpoints[family], RUNTIME=runtime, RUNTIME_CACHE_DIR=RUNTIME_CACHE_DIR,
            DTYPE="float32", PROMPT_TEMPLATE="{}", BATCH_ROOT=str(batch_root),
            ACCESS={**settings.CLIPCHECK.get("ACCESS", {}),
                    **{scope: {"rate": None, "cost_rate": None} for scope in ("analyze", "classify")}},
        )
        reset_engine()
        return get_engine()

    yield serve
    reset_engine()


def analyze(data, text):
    response = APIClient().post("/clip/analyze", {"file": SimpleUploadedFile("upload", data), "text": text},
                                format="multipart")
    assert response.status_code == 200, response.content
    return response.json()


def classify(data):
    response = APIClient().post(
        "/clip/classify", {"file": SimpleUploadedFile("upload", data), "categories": ",".join(CATEGORIES),
                           "top_k": len(CATEGORIES)}, format="multipart",
    )
    assert response.status_code == 200, response.content
    return {match["category"]: match for match in response.json()["top_matches"]}


def assert_answers_like_the_reference(family, reference, text, tolerance):
    """Every format case: analyze's score (and a sigmoid model's match_probability) and
    classify's similarities, softmax probabilities and scores equal the reference's.
    Probabilities are compared within the tolerance carried through the function's
    steepest slope (logit_scale / 4 for a sigmoid, / 2 for a softmax)."""
    for case, (data, picture) in FORMAT_CASES.items():
        cosine = float(reference.cosines(picture, [text])[0])
        body = analyze(data, text)
        assert abs(body["similarity_score"] - max(cosine, 0.0)) <= tolerance, (case, body, cosine)
        if SIGMOID[family]:
            expected = reference.sigmoid(cosine)
            assert abs(body["match_probability"] - expected) <= reference.logit_scale * tolerance / 4 + 1e-4, case
        else:
            assert body["match_probability"] is None
        cosines = reference.cosines(picture, CATEGORIES)
        matches = classify(data)
        for category, category_cosine, probability in zip(CATEGORIES, cosines, reference.softmax(cosines)):
            match = matches[category]
            assert abs(match["similarity"] - max(float(category_cosine), 0.0)) <= tolerance, (case, category)
            assert abs(match["probability"] - probability) <= reference.logit_scale * tolerance / 2 + 1e-4, case
            if SIGMOID[family]:
                expected = reference.sigmoid(float(category_cosine))
                assert abs(match["score"] - expected) <= reference.logit_scale * tolerance / 4 + 1e-4, (case, category)


@pytest.mark.django_db
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("runtime, tolerance", [("torch", 1e-3), ("openvino", 1e-3)])
def test_every_family_answers_like_plain_transformers_on_every_format(
    family, runtime, tolerance, served, references, texts
):
    engine = served(family, runtime)
    assert (engine.family, engine.runtime_name) == (family, runtime)
    reference = references[family]
    assert engine.logit_scale == pytest.approx(reference.logit_scale, rel=1e-6)
    assert engine.logit_bias == (None if reference.logit_bias is None else pytest.approx(reference.logit_bias))
    assert_answers_like_the_reference(family, reference, texts[family], tolerance)


# The int8 build of a random-weight model passes its guard or not as its weights fall (on this
# calibration set both tiny SigLIPs' pass): the same guard decides for every family. Its
# promise is the guard's: on the pairs it measured, int8 scores within GUARD_MAX_SCORE_GAP of
# float32 (not 2e-3, and not on pictures it never saw: random towers move those by more).
# A small calibration set keeps the first build under a minute; later runs reuse it.
INT8_CALIBRATION = 24


@pytest.mark.django_db
@pytest.mark.parametrize("family", ["siglip", "siglip2"])
def test_int8_serves_a_family_only_where_its_guard_passed_and_then_within_its_gap(
    family, checkpoints, served, references
):
    pairs = generic_pictures(count=INT8_CALIBRATION)
    calibration = calibration_set_build(
        checkpoint=checkpoints[family], images=[image for image, _ in pairs], texts=[text for _, text in pairs],
        source="tests",
    )
    guard = runtime_build(checkpoint=checkpoints[family], cache_dir=RUNTIME_CACHE_DIR, calibration=calibration)
    if not guard["passed"]:
        with pytest.raises(ModelUnavailable, match="failed its guard"):
            served(family, "openvino-int8")
        return
    engine = served(family, "openvino-int8")
    assert (engine.family, engine.runtime_name) == (family, "openvino-int8")
    reference = references[family]
    for picture, caption in pairs:
        cosine = float(reference.cosines(picture, [caption])[0])
        body = analyze(encoded(picture, "PNG"), caption)
        assert abs(body["similarity_score"] - max(cosine, 0.0)) <= GUARD_MAX_SCORE_GAP, (caption, body, cosine)
        expected = reference.sigmoid(cosine)
        assert abs(body["match_probability"] - expected) <= reference.logit_scale * GUARD_MAX_SCORE_GAP / 4 + 1e-4


@pytest.mark.django_db
@pytest.mark.parametrize("family", FAMILIES)
def test_health_names_the_family(family, served):
    served(family, "torch")
    body = APIClient().get("/clip/health").json()
    assert (body["model_loaded"], body["model_family"]) == (True, family)


def test_the_families_are_recognised_from_their_config(checkpoints):
    assert {family: checkpoint_family(path).name for family, path in checkpoints.items()} == {
        "clip": "clip", "siglip": "siglip", "siglip2": "siglip2"}
    siglip, siglip2 = checkpoint_family(checkpoints["siglip"]), checkpoint_family(checkpoints["siglip2"])
    assert siglip.sigmoid and siglip2.sigmoid and not checkpoint_family(checkpoints["clip"]).sigmoid
    assert siglip.fixed_text_width and siglip2.fixed_text_width


def test_siglip_texts_run_at_the_full_context_whatever_their_length(settings, served, monkeypatch):
    engine = served("siglip", "openvino")
    widths = []
    forward = engine.runtime.text_features
    monkeypatch.setattr(engine.runtime, "text_features",
                        lambda ids, mask, lane=0: widths.append(ids.shape[1]) or forward(ids, mask, lane=lane))
    embeddings, truncated = engine.encode_texts(["red", "a long green description of a product " * 12])
    assert set(widths) == {engine.max_text_tokens} == {64}
    assert truncated == [False, True]
    # Each alone gives the same row: the width, not the batch, decides.
    alone = engine._encode_text_batch(["red"])[0][0]
    assert np.abs(alone - embeddings[0]).max() < 1e-5


def refused_at_start(settings, model, caplog):
    """The one-line reason a worker logs and health reports for ``model``."""
    set_clip_settings(settings, MODEL=str(model), RUNTIME="torch")
    reset_engine()
    with caplog.at_level(logging.ERROR, logger="clipcheck.engine"), pytest.raises(ModelUnavailable) as refused:
        get_engine()
    (record,) = [record for record in caplog.records if record.name == "clipcheck.engine"]
    assert not record.exc_info  # a sentence, not a traceback
    assert "\n" not in refused.value.reason
    return refused.value.reason


@pytest.mark.django_db
def test_a_naflex_checkpoint_is_refused_at_start_naming_the_fixed_resolution_alternative(
    settings, tmp_path, caplog, fresh_engine
):
    reason = refused_at_start(settings, build_tiny_naflex(tmp_path / "naflex"), caplog)
    assert "NaFlex" in reason and NAFLEX_ALTERNATIVE in reason
    body = APIClient().get("/clip/health").json()
    assert (body["model_loaded"], body["model_family"], body["error"]["code"]) == (False, None, "model_unavailable")


@pytest.mark.parametrize("file_name", ["config.json", "tokenizer_config.json"])
def test_a_checkpoint_with_code_of_its_own_is_refused_and_its_code_never_runs(
    settings, tmp_path, caplog, file_name, fresh_engine
):
    checkpoint = with_code_map(build_tiny_clip(tmp_path / "remote"), file_name)
    reason = refused_at_start(settings, checkpoint, caplog)
    assert "trust_remote_code" in reason and file_name in reason


def test_another_architecture_is_refused_at_start(settings, tmp_path, caplog, fresh_engine):
    build_tiny_clip(tmp_path / "other")
    path = tmp_path / "other" / "config.json"
    path.write_text(path.read_text().replace('"model_type": "clip"', '"model_type": "blip"'))
    reason = refused_at_start(settings, tmp_path / "other", caplog)
    assert "model_type 'blip'" in reason
    with pytest.raises(UnsupportedCheckpoint, match="not one the service runs"):
        checkpoint_family(tmp_path / "other")


@pytest.mark.django_db
def test_a_sigmoid_models_classify_score_needs_no_threshold(settings, served):
    # CLIP's score is centred on the classify threshold; SigLIP's is the model's own probability.
    scores = {}
    for family in ("clip", "siglip"):
        for threshold in (0.0, 1.0):
            served(family, "torch")
            set_clip_settings(settings, CLASSIFY_THRESHOLD=threshold)
            scores[family, threshold] = classify(FORMAT_CASES["PNG RGB"][0])["red circle"]["score"]
    assert scores["siglip", 0.0] == scores["siglip", 1.0]
    assert scores["clip", 0.0] > scores["clip", 1.0]


@pytest.mark.django_db
def test_the_build_command_refuses_an_unsupported_checkpoint_in_one_line(settings, tmp_path):
    from django.core.management import CommandError, call_command

    set_clip_settings(settings, MODEL=str(build_tiny_naflex(tmp_path / "naflex")))
    with pytest.raises(CommandError, match=f"NaFlex.*{NAFLEX_ALTERNATIVE}"):
        call_command("clip_build_runtime")


@pytest.mark.django_db
def test_with_an_active_adaptation_a_sigmoid_model_answers_as_clip_does(served):
    # The adaptation decides alone: its head's scores; no match calibration, so no match_probability.
    from clipcheck.adaptation import CategoryHead
    from clipcheck.services import adaptations

    engine = served("siglip", "torch")
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(len(CATEGORIES), engine.embedding_dim))
    head = CategoryHead(categories=CATEGORIES, text_weights=weights, class_weights=weights,
                        class_bias=np.zeros(len(CATEGORIES)), alpha=0.5, logit_scale=10.0)
    adaptations.adaptation_promote(head=head, label_digest="1", labels={}, metrics={})
    data = FORMAT_CASES["PNG RGB"][0]
    assert analyze(data, "an orange star")["match_probability"] is None
    image_embedding = engine.encode_images([ORANGE_STAR])[0]
    expected = dict(zip(CATEGORIES, np.round(
        np.exp(head.calibrated_logits(image_embedding)[0]) / np.exp(head.calibrated_logits(image_embedding)[0]).sum(),
        4)))
    assert {category: match["score"] for category, match in classify(data).items()} == pytest.approx(expected, abs=2e-4)


def test_a_sigmoid_family_serves_float32_on_cpus_unless_told_and_keeps_its_own_scale_and_bias(
    checkpoints, references
):
    # Its probability multiplies a cosine's error by logit_scale / 4: bf16 is a choice, not the default.
    from clipcheck.engine.clip import ClipEngine, cpu_has_native_bf16, resolve_dtype
    from clipcheck.engine.families import CLIP, SIGLIP, SIGLIP2

    assert resolve_dtype("auto", "cpu", SIGLIP) == resolve_dtype("auto", "cpu", SIGLIP2) == "float32"
    assert resolve_dtype("auto", "cpu", CLIP) == ("bfloat16" if cpu_has_native_bf16() else "float32")
    assert resolve_dtype("auto", "cuda", SIGLIP) == "float16"
    assert resolve_dtype("bfloat16", "cpu", SIGLIP) == "bfloat16"
    served = ClipEngine.load(model_name=checkpoints["siglip"], runtime="openvino", runtime_cache_dir=RUNTIME_CACHE_DIR)
    assert (served.dtype_name, served.precision) == ("float32", "f32")
    # At bf16 the model's own parameters are rounded; the engine's scale and bias are the checkpoint's.
    bf16 = ClipEngine.load(model_name=checkpoints["siglip"], runtime="torch", dtype="bfloat16")
    reference = references["siglip"]
    assert bf16.runtime.model.logit_bias.dtype == torch.bfloat16
    assert bf16.logit_scale == pytest.approx(reference.logit_scale, rel=1e-6)
    assert bf16.logit_bias == pytest.approx(reference.logit_bias, rel=1e-6)
