"""Analyses: one image scored against one text, stored as an ``Analysis``.

Model computations run through ``run_inference`` (admission control and a
time budget, ``clipcheck.engine.admission``); a pair analysed before is
answered from the stored verdict.
"""

import time
from dataclasses import dataclass

import numpy as np
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction

from clipcheck import scoring, selectors
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.hashes import text_hash
from clipcheck.images import DecodedImage
from clipcheck.models import Analysis
from clipcheck.services.embeddings import image_embeddings_compute
from clipcheck.services.thresholds import default_threshold, model_id


@dataclass(frozen=True)
class AnalysisRequest:
    """One image/text pair to analyse; ``subject`` is the object it concerns."""

    image: DecodedImage
    text: str
    threshold: float | None = None
    subject: models.Model | None = None


def analysis_create(*, image, text, threshold=None, source, subject=None):
    """Analyse one decoded image against one text and store the result."""
    request = AnalysisRequest(image=image, text=text, threshold=threshold, subject=subject)
    return analyses_create(requests=[request], source=source)[0]


def analyses_create(*, requests, source):
    """Analyse image/text pairs and store one ``Analysis`` per pair, in order.

    ``analyses_compute`` followed by ``analyses_save`` in one transaction.
    """
    analyses = analyses_compute(requests=requests, source=source)
    with transaction.atomic():
        analyses_save(analyses=analyses)
    return analyses


def analyses_compute(*, requests, source, store_embeddings=True):
    """Analyse image/text pairs: one unsaved ``Analysis`` per pair, in order.

    A pair already analysed with the same image bytes, text, threshold and
    model is answered from the stored verdict without the model
    (``cached=True``). The others cost one ``encode_images`` call for the
    images whose embedding is not stored yet and one ``encode_texts`` call.
    Nothing but new image embeddings is written (and not even those when
    ``store_embeddings`` is false), so callers run the model outside their
    transactions and save the rows afterwards with ``analyses_save``.
    """
    model = model_id()
    requests = [_with_threshold(request) for request in requests]
    started = time.monotonic()
    text_hashes = [text_hash(request.text) for request in requests]
    keys = [(r.image.sha256, digest, r.threshold) for r, digest in zip(requests, text_hashes)]
    earlier = selectors.analyses_cached(keys=keys, model=model)
    lookup_ms = (time.monotonic() - started) * 1000

    to_compute = [index for index, key in enumerate(keys) if key not in earlier]
    computed, device, compute_ms = _pairs_compute(
        requests=[requests[index] for index in to_compute], model=model, store_embeddings=store_embeddings
    )
    results = dict(zip(to_compute, computed))

    analyses = []
    for index, request in enumerate(requests):
        if index in results:
            result, cached, analysis_device, duration_ms = results[index], False, device, compute_ms
        else:
            source_analysis = earlier[keys[index]]
            result, cached = _stored_result(source_analysis), True
            analysis_device, duration_ms = source_analysis.device, lookup_ms / len(requests)
        analyses.append(analysis_build(
            image_sha256=request.image.sha256,
            text=request.text,
            text_sha256=text_hashes[index],
            result=result,
            model=model,
            device=analysis_device,
            source=source,
            duration_ms=duration_ms,
            cached=cached,
            subject=request.subject,
        ))
    return analyses


def _with_threshold(request):
    threshold = default_threshold() if request.threshold is None else float(request.threshold)
    return AnalysisRequest(image=request.image, text=request.text, threshold=threshold, subject=request.subject)


def _pairs_compute(*, requests, model, store_embeddings):
    """The model's verdicts on image/text pairs: ``(results, device, milliseconds per pair)``.

    One ``encode_images`` call for the images without a stored embedding,
    one ``encode_texts`` call; nothing loads the model when there is nothing to compute.
    """
    if not requests:
        return [], "", 0.0
    started = time.monotonic()
    engine = get_engine()
    image_vectors = image_embeddings_compute(
        images=[request.image for request in requests], model=model, engine=engine, store=store_embeddings,
    )
    texts = [request.text for request in requests]
    text_vectors, truncated = run_inference(lambda: engine.encode_texts(texts))
    results = [
        _pair_result(image_vectors[row], text_vectors[row], truncated[row], request.threshold)
        for row, request in enumerate(requests)
    ]
    return results, engine.device_name, (time.monotonic() - started) * 1000 / len(requests)


def _stored_result(analysis):
    """The verdict fields of an earlier analysis of the same pair."""
    return {**scoring.verdict(analysis.similarity_score, analysis.threshold), "text_truncated": analysis.text_truncated}


def analyses_save(*, analyses):
    """Store analyses built by ``analyses_compute`` (one INSERT for them all)."""
    return Analysis.objects.bulk_create(analyses)


def analysis_build(
    *, image_sha256, text, result, model, device, source, duration_ms, cached=False, subject=None, text_sha256=None
):
    """One unsaved analysis; ``result`` holds the verdict fields of ``scoring.verdict``."""
    return Analysis(
        image_sha256=image_sha256,
        text=text,
        text_sha256=text_sha256 or text_hash(text),
        similarity_score=result["similarity_score"],
        threshold=result["threshold_used"],
        verdict=Analysis.Verdict.MISMATCH if result["is_mismatch"] else Analysis.Verdict.MATCH,
        confidence=result["confidence"],
        match_quality=result["match_quality"],
        text_truncated=bool(result.get("text_truncated", False)),
        model=model,
        device=device,
        source=source,
        cached=cached,
        duration_ms=round(duration_ms, 3),
        subject_type=ContentType.objects.get_for_model(subject) if subject is not None else None,
        subject_id=str(subject.pk) if subject is not None else "",
    )


def analyses_link(*, analyses, subject):
    """Point analyses at the object they concerned (once it exists); stored
    ones are updated, unsaved ones are saved with it by ``analyses_save``."""
    subject_type = ContentType.objects.get_for_model(subject)
    stored = [analysis.pk for analysis in analyses if analysis.pk is not None]
    if stored:
        Analysis.objects.filter(pk__in=stored).update(subject_type=subject_type, subject_id=str(subject.pk))
    for analysis in analyses:
        analysis.subject_type, analysis.subject_id = subject_type, str(subject.pk)


def _pair_result(image_embedding, text_embedding, text_truncated, threshold):
    score = scoring.similarity_score(float(np.dot(image_embedding, text_embedding)))
    return {**scoring.verdict(score, threshold), "text_truncated": text_truncated}
