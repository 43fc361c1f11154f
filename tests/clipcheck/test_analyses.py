"""Stored analyses, the verdict cache and the image-embedding cache."""

import hashlib
import threading
import time

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, connections

from clipcheck import selectors, verdicts
from clipcheck.engine import get_engine
from clipcheck.images import decode_image
from clipcheck.models import Analysis, ImageEmbedding
from clipcheck.services import analyses as analysis_services
from clipcheck.services import classification, embeddings
from clipcheck.settings import clip_settings
from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes

pytestmark = pytest.mark.django_db


def analyze(client, data, text, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("photo.png", data, content_type="image/png")
    return client.post("/clip/analyze", {"file": upload, "text": text, **fields})


def test_analyze_stores_the_analysis_it_answers(client, clip_config):
    data = image_bytes(color=(200, 30, 30))

    response = analyze(client, data, "a blue bag")

    assert response.status_code == 200
    body = response.json()
    analysis = Analysis.objects.get(pk=body["analysis_id"])
    assert body["cached"] is False
    assert analysis.image_sha256 == hashlib.sha256(data).hexdigest()
    assert analysis.text == "a blue bag"
    assert analysis.similarity_score == body["similarity_score"]
    assert analysis.threshold == body["threshold_used"] == 0.25
    assert analysis.verdict == ("mismatch" if body["is_mismatch"] else "match")
    assert (analysis.confidence, analysis.match_quality) == (body["confidence"], body["match_quality"])
    assert analysis.source == Analysis.Source.API
    assert analysis.model == clip_config["MODEL"]
    assert analysis.device == "cpu"
    assert analysis.duration_ms >= 0
    assert analysis.created_at is not None and analysis.subject is None


def test_analyze_keeps_the_contract_fields(client):
    body = analyze(client, image_bytes(), "a red shoe").json()

    assert set(body) == {
        "is_mismatch", "similarity_score", "threshold_used", "confidence", "match_quality", "text_truncated",
        "cached", "analysis_id", "reasons", "suggestion", "passages", "match_probability",
    }
    assert body["match_probability"] is None  # no adaptation: no calibrated probability


def test_same_image_text_threshold_and_model_is_answered_without_the_model(client, encoder_calls, monkeypatch):
    data = image_bytes(color=(30, 30, 200))
    first = analyze(client, data, "a wooden table").json()
    images_before, texts_before = encoder_calls.images_encoded, encoder_calls.texts_encoded

    # The model must not even be asked: a cached verdict needs no engine.
    for module in (analysis_services, embeddings):
        monkeypatch.setattr(module, "get_engine", lambda: pytest.fail("the model was used for a cached verdict"))
    second = analyze(client, data, "a wooden table").json()

    assert second["cached"] is True and first["cached"] is False
    assert second["analysis_id"] != first["analysis_id"]
    for field in ("is_mismatch", "similarity_score", "threshold_used", "confidence", "match_quality", "text_truncated"):
        assert second[field] == first[field]
    assert (encoder_calls.images_encoded, encoder_calls.texts_encoded) == (images_before, texts_before)
    assert Analysis.objects.get(pk=second["analysis_id"]).cached is True


@pytest.mark.parametrize("change", ["text", "threshold", "image", "model"])
def test_a_different_key_is_not_served_from_the_cache(client, change, settings, tmp_path):
    data = image_bytes(color=(30, 30, 200))
    analyze(client, data, "a wooden table")
    text, fields = "a wooden table", {}
    if change == "text":
        text = "a wooden chair"
    elif change == "threshold":
        fields = {"threshold": "0.3"}
    elif change == "image":
        data = image_bytes(color=(31, 30, 200))
    else:
        from tests.checkpoints import build_tiny_clip

        set_clip_settings(settings, MODEL=str(build_tiny_clip(tmp_path / "other-model", seed=1)))

    assert analyze(client, data, text, **fields).json()["cached"] is False


def test_a_new_text_for_a_known_image_costs_only_a_text_encode(client, encoder_calls):
    data = image_bytes(color=(10, 120, 200))
    analyze(client, data, "a coffee mug")
    assert encoder_calls.image_calls == [1]
    assert ImageEmbedding.objects.count() == 1
    text_forwards_before = len(encoder_calls.text_calls)

    body = analyze(client, data, "a flower vase").json()  # names no attribute: no rewrites

    assert body["cached"] is False
    assert encoder_calls.image_calls == [1]  # no second image forward pass
    # The text's own forward holds just the text (a mismatch may then encode the category prompts).
    assert encoder_calls.text_calls[text_forwards_before] == 1
    assert ImageEmbedding.objects.count() == 1


def test_the_stored_embedding_is_the_engine_embedding(client, clip_config):
    data = image_bytes(color=(90, 10, 10))
    analyze(client, data, "a coffee mug")

    row = ImageEmbedding.objects.get()
    expected = get_engine().encode_images([decode_image(data).image])[0]

    assert (row.sha256, row.model, row.dim) == (hashlib.sha256(data).hexdigest(), clip_config["MODEL"], expected.size)
    np.testing.assert_array_equal(row.as_array(), expected.astype(np.float32))


def test_category_prompts_are_encoded_once_per_process(fresh_engine, encoder_calls):
    image = decode_image(image_bytes())
    another = decode_image(image_bytes(color=(0, 90, 0)))

    classification.image_classify(image=image)
    prompts = len(clip_settings.CATEGORIES)
    assert encoder_calls.texts_encoded == prompts
    classification.image_classify(image=another)
    classification.image_classify(image=image)

    assert encoder_calls.texts_encoded == prompts


def test_classifying_many_embeddings_gives_each_image_its_own_classification():
    engine = get_engine()
    images = [decode_image(image_bytes(color=colour)) for colour in ((200, 0, 0), (0, 90, 0), (0, 0, 200))]
    vectors = engine.encode_images([image.image for image in images])

    together = classification.images_classify(image_embeddings=vectors, top_k=4)

    assert together == [
        classification.image_classify(image=image, image_embedding=vector, top_k=4)
        for image, vector in zip(images, vectors)
    ]
    assert classification.images_classify(image_embeddings=[]) == []


def test_a_batch_of_mismatches_looks_up_the_category_prompts_once(monkeypatch):
    """The "photo looks like" of every mismatch of a batch comes from one classification:
    prompts encoded and thresholds looked up once, not once per text."""
    lookups = []
    classify_threshold = classification.classify_threshold
    monkeypatch.setattr(classification, "classify_threshold",
                        lambda **kwargs: lookups.append(kwargs) or classify_threshold(**kwargs))
    photos = [decode_image(image_bytes(color=(30 * index, 0, 0))) for index in range(1, 4)]

    analyses = analysis_services.analyses_compute(requests=[
        analysis_services.AnalysisRequest(image=photo, text=f"a plain object number {index}", threshold=1.0)
        for index, photo in enumerate(photos)
    ], source=Analysis.Source.AUDIT)

    assert all(analysis.reasons[0]["code"] == "low_similarity" for analysis in analyses)
    assert all("photo_looks_like" in analysis.reasons[0] for analysis in analyses)
    assert len(lookups) == len(clip_settings.CATEGORIES)


def test_analyses_create_encodes_a_batch_in_one_call_each(encoder_calls):
    red, blue = decode_image(image_bytes(color=(200, 0, 0))), decode_image(image_bytes(color=(0, 0, 200)))
    requests = [
        analysis_services.AnalysisRequest(image=red, text="a shoe"),
        analysis_services.AnalysisRequest(image=red, text="a shoe with laces"),
        analysis_services.AnalysisRequest(image=blue, text="a bag", threshold=0.1),
    ]

    analyses = analysis_services.analyses_create(requests=requests, source=Analysis.Source.AUDIT)

    assert encoder_calls.image_calls == [2]  # the red image once
    # The texts' forward (mismatches then encode the category prompts for the suggestion).
    assert encoder_calls.text_calls[0] == 3
    assert [analysis.text for analysis in analyses] == ["a shoe", "a shoe with laces", "a bag"]
    assert [analysis.threshold for analysis in analyses] == [0.25, 0.25, 0.1]
    assert all(analysis.source == "audit" and analysis.pk for analysis in analyses)


def test_the_likeliest_attribute_rewrite_is_scored_in_one_forward_only_for_texts_that_fail(encoder_calls, settings):
    attributes = {"colour": ["red", "blue", "green"], "material": ["leather", "canvas"]}
    set_clip_settings(settings, ATTRIBUTES=attributes, REWRITE_REACH=1.0)  # however far below the threshold
    # The values' own embeddings, encoded once per model as in a serving process.
    verdicts.values_vectors(values={value for values in attributes.values() for value in values}, engine=get_engine())
    encoder_calls.text_calls.clear()
    red = decode_image(image_bytes(color=(200, 0, 0)))
    failing, passing = "a red leather shoe with a gold buckle", "a red shoe with a silver buckle"

    analysis_services.analyses_create(requests=[
        analysis_services.AnalysisRequest(image=red, text=failing, threshold=1.0),  # nothing passes 1.0
        analysis_services.AnalysisRequest(image=red, text=failing.replace("gold", "brass"), threshold=1.0),
        analysis_services.AnalysisRequest(image=red, text=passing, threshold=0.0),  # everything passes 0.0
    ], source=Analysis.Source.AUDIT)

    # The three texts in one forward, then of the 3 rewrites of each failing text its likeliest, in one more.
    assert encoder_calls.text_calls[:2] == [3, 2]


def test_an_analysis_is_linked_to_the_object_it_concerned():
    seller = get_user_model().objects.create(username="seller")

    analysis = analysis_services.analysis_create(
        image=decode_image(image_bytes()), text="a red shoe", source=Analysis.Source.ADMIN, subject=seller
    )

    assert Analysis.objects.get(pk=analysis.pk).subject == seller
    assert list(selectors.analyses_for_subject(subject=seller)) == [analysis]


def test_storing_an_embedding_another_writer_stored_first_keeps_one_row():
    vector = np.linspace(-1, 1, 16, dtype=np.float32)
    embeddings.image_embeddings_store(vectors={"a" * 64: vector}, model="m")

    embeddings.image_embeddings_store(vectors={"a" * 64: vector * 0, "b" * 64: vector}, model="m")

    assert ImageEmbedding.objects.count() == 2
    np.testing.assert_array_equal(ImageEmbedding.objects.get(sha256="a" * 64).as_array(), vector)


def retry_sqlite_table_lock(write):
    """Run ``write``, retrying the test database's own SQLite table locks.

    SQLite's shared-cache in-memory test database answers a concurrent writer
    "database table is locked" at once (no busy timeout applies there); a
    file database waits instead, and PostgreSQL runs the writers truly
    concurrently. Any other error is raised.
    """
    for _ in range(200):
        try:
            return write()
        except OperationalError as exc:
            if connection.vendor != "sqlite" or "is locked" not in str(exc):
                raise
            time.sleep(0.01)
    return write()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_store_one_embedding_and_every_analysis():
    data = image_bytes(color=(12, 34, 56))
    get_engine()  # loaded before the race, so the threads race on the database
    writers = 4
    barrier = threading.Barrier(writers)
    errors, ids = [], []

    def write(index):
        try:
            barrier.wait(timeout=10)
            analysis = retry_sqlite_table_lock(lambda: analysis_services.analysis_create(
                image=decode_image(data), text=f"a product {index}", source=Analysis.Source.API
            ))
            ids.append(analysis.pk)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert ImageEmbedding.objects.filter(sha256=hashlib.sha256(data).hexdigest()).count() == 1
    assert sorted(Analysis.objects.values_list("pk", flat=True)) == sorted(ids)
    assert len(ids) == writers


def test_batch_analyses_are_stored_and_cached(log_in_with, batch_root):
    client = log_in_with("clipcheck.run_batch_analysis")
    (batch_root / "red.png").write_bytes(image_bytes(color=(200, 0, 0)))
    payload = {"items": [{"image_path": "red.png", "text": "a red shoe"}, {"image_path": "gone.png", "text": "x"}]}

    first = client.post("/clip/analyze-batch", payload, content_type="application/json").json()["results"]
    second = client.post("/clip/analyze-batch", payload, content_type="application/json").json()["results"]

    assert first[0]["cached"] is False and second[0]["cached"] is True
    assert "error" in first[1] and "analysis_id" not in first[1]
    assert Analysis.objects.filter(source=Analysis.Source.BATCH).count() == 2
    assert second[0]["similarity_score"] == first[0]["similarity_score"]
