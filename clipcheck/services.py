"""Business logic of the /clip/* endpoints: plain functions, no HTTP.

Reads live in ``clipcheck.selectors``; the writes (analyses, the image
embedding cache) are here. Model computations run through ``run_inference``
(admission control and a time budget, ``clipcheck.engine.admission``).
"""

import csv
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.contrib.contenttypes.models import ContentType
from django.core.signals import setting_changed
from django.db import models, transaction

from clipcheck import scoring, selectors
from clipcheck.calibration import CalibrationError
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.errors import BatchUnavailable, ClipcheckError
from clipcheck.images import DecodedImage, decode_image, read_batch_file
from clipcheck.models import Analysis, CalibratedThreshold, ImageEmbedding
from clipcheck.settings import clip_settings


# The latest calibrated thresholds, kept briefly so that the API does not
# query for them on every request: {(model, kind, category): (threshold or None, expires)}.
_calibrated_cache = {}
_calibrated_cache_lock = threading.Lock()

CAPTION, CLASSIFY = CalibratedThreshold.Kind.CAPTION, CalibratedThreshold.Kind.CLASSIFY


def default_threshold(*, category=""):
    """The caption threshold used when a request or an audit names none.

    Precedence: ``CLIPCHECK["THRESHOLD"]`` when set explicitly (in settings
    or by the ``CLIPCHECK_THRESHOLD`` environment variable), else the latest
    threshold stored by ``clip_calibrate --per-category --apply`` for the
    current model and ``category``, else the latest global one stored by
    ``clip_calibrate --apply``, else the built-in default.
    """
    if "THRESHOLD" in clip_settings.user_settings:
        return float(clip_settings.THRESHOLD)
    model = model_id()
    calibrated = calibrated_threshold(model=model, category=category) if category else None
    if calibrated is None:
        calibrated = calibrated_threshold(model=model)
    return float(clip_settings.THRESHOLD) if calibrated is None else calibrated


def category_thresholds(*, model=None):
    """``{category: threshold}`` of the categories with a calibrated caption
    threshold for ``model``; empty when ``CLIPCHECK["THRESHOLD"]`` is set
    explicitly (it wins over every calibrated threshold)."""
    if "THRESHOLD" in clip_settings.user_settings:
        return {}
    return selectors.calibrated_category_thresholds(model=model or model_id())


def classify_threshold(*, category=""):
    """The similarity at which ``category``'s classify score is 0.5.

    Precedence: ``CLIPCHECK["CLASSIFY_THRESHOLD"]`` when set, else the latest
    classify threshold stored by ``clip_calibrate --classify --apply`` for
    the current model and this category, else its global classify
    threshold, else the caption threshold (``default_threshold``).
    """
    configured = clip_settings.CLASSIFY_THRESHOLD
    if configured is not None:
        return float(configured)
    model = model_id()
    calibrated = calibrated_threshold(model=model, kind=CLASSIFY, category=category) if category else None
    if calibrated is None:
        calibrated = calibrated_threshold(model=model, kind=CLASSIFY)
    return default_threshold() if calibrated is None else calibrated


def calibrated_threshold(*, model, kind=CAPTION, category=""):
    """The latest calibrated threshold of ``model`` for ``kind`` and ``category``
    ("" = global; None if there is none), read from the database at most once
    per ``CALIBRATION_CACHE_SECONDS``."""
    now = time.monotonic()
    key = (model, str(kind), category)
    cached = _calibrated_cache.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    latest = selectors.calibrated_threshold_latest(model=model, kind=kind, category=category)
    value = None if latest is None else float(latest.threshold)
    with _calibrated_cache_lock:
        _calibrated_cache[key] = (value, now + float(clip_settings.CALIBRATION_CACHE_SECONDS))
    return value


def calibrated_threshold_forget():
    """Drop the cached calibrated thresholds (after an apply, or a settings change)."""
    with _calibrated_cache_lock:
        _calibrated_cache.clear()


def _forget_calibrated_on_settings_change(*, setting, **kwargs):
    # Another model or THRESHOLD setting: the calibrated thresholds are re-read.
    if setting == "CLIPCHECK":
        calibrated_threshold_forget()


setting_changed.connect(_forget_calibrated_on_settings_change)


def calibrated_threshold_apply(*, threshold, source, counts, model=None, kind=CAPTION, category=""):
    """Store ``threshold`` as the calibrated ``kind`` threshold of ``model`` (the
    current one by default) for ``category`` ("" = the model's global one)."""
    calibrated = CalibratedThreshold.objects.create(
        model=model or model_id(), threshold=round(float(threshold), 4), source=source, counts=counts,
        kind=kind, category=category,
    )
    # Another process's cache expires within CALIBRATION_CACHE_SECONDS.
    transaction.on_commit(calibrated_threshold_forget)
    calibrated_threshold_forget()
    return calibrated


def model_id():
    """The model named in stored analyses and cache keys.

    Taken from the settings, not the loaded engine, so a cached verdict is
    served without loading the model.
    """
    return str(clip_settings.MODEL)


def _pair_result(image_embedding, text_embedding, text_truncated, threshold):
    score = scoring.similarity_score(float(np.dot(image_embedding, text_embedding)))
    return {**scoring.verdict(score, threshold), "text_truncated": text_truncated}


def classify_image(*, image, categories=None, top_k=None, image_embedding=None):
    """Zero-shot classification of a decoded image over ``categories``.

    Each category gets ``score`` (independent, 0.5 at its classify
    threshold, ``classify_threshold``; meaningful for a single category), ``similarity`` (the
    clamped cosine) and ``probability`` (softmax over the given categories).
    A caller that already holds the image's embedding passes it to skip the
    image encode.
    """
    categories = list(categories or clip_settings.CATEGORIES)
    top_k = min(top_k or clip_settings.DEFAULT_TOP_K, len(categories))
    # Prompts like "a photo of a shoe." sit on another scale than product
    # texts: each category's score is centred on its classify threshold.
    thresholds = [classify_threshold(category=category) for category in categories]
    engine = get_engine()
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in categories]

    def embed():
        vector = engine.encode_images([image.image])[0] if image_embedding is None else image_embedding
        return vector, engine.encode_texts(prompts)[0]

    image_embedding, prompt_embeddings = run_inference(embed)
    cosines = prompt_embeddings @ image_embedding
    logits = engine.logit_scale * cosines
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    matches = [
        {
            "category": category,
            "score": scoring.category_score(float(cosine), threshold, engine.logit_scale),
            "similarity": scoring.similarity_score(float(cosine)),
            "probability": round(float(probability), 4),
        }
        for category, cosine, probability, threshold in zip(categories, cosines, probabilities, thresholds)
    ]
    order = np.argsort(-cosines, kind="stable")
    return [matches[index] for index in order[:top_k]]


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
    requests = [
        AnalysisRequest(
            image=request.image,
            text=request.text,
            threshold=default_threshold() if request.threshold is None else float(request.threshold),
            subject=request.subject,
        )
        for request in requests
    ]
    started = time.monotonic()
    text_hashes = [selectors.text_hash(request.text) for request in requests]
    keys = [(r.image.sha256, text_hash, r.threshold) for r, text_hash in zip(requests, text_hashes)]
    earlier = selectors.analyses_cached(keys=keys, model=model)
    lookup_ms = (time.monotonic() - started) * 1000

    to_compute = [index for index, key in enumerate(keys) if key not in earlier]
    results, device, compute_ms = {}, "", 0.0
    if to_compute:
        computing_started = time.monotonic()
        engine = get_engine()
        device = engine.device_name
        image_vectors = image_embeddings_compute(
            images=[requests[index].image for index in to_compute], model=model, engine=engine,
            store=store_embeddings,
        )
        texts = [requests[index].text for index in to_compute]
        text_vectors, truncated = run_inference(lambda: engine.encode_texts(texts))
        for row, index in enumerate(to_compute):
            results[index] = _pair_result(image_vectors[row], text_vectors[row], truncated[row], requests[index].threshold)
        compute_ms = (time.monotonic() - computing_started) * 1000 / len(to_compute)

    analyses = []
    for index, request in enumerate(requests):
        if index in results:
            result, cached, analysis_device, duration_ms = results[index], False, device, compute_ms
        else:
            source_analysis = earlier[keys[index]]
            result = scoring.verdict(source_analysis.similarity_score, source_analysis.threshold)
            result["text_truncated"] = source_analysis.text_truncated
            cached, analysis_device, duration_ms = True, source_analysis.device, lookup_ms / len(requests)
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
        text_sha256=text_sha256 or selectors.text_hash(text),
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
    """Point stored analyses at the object they concerned (once it exists)."""
    subject_type = ContentType.objects.get_for_model(subject)
    Analysis.objects.filter(pk__in=[analysis.pk for analysis in analyses]).update(
        subject_type=subject_type, subject_id=str(subject.pk)
    )
    for analysis in analyses:
        analysis.subject_type, analysis.subject_id = subject_type, str(subject.pk)


def image_embeddings_compute(*, images, model=None, engine=None, store=True):
    """Embeddings of decoded images, in order: stored ones are reused, the
    others are encoded in one ``encode_images`` call and stored (unless
    ``store`` is false)."""
    model = model or model_id()
    stored = selectors.image_embeddings_get(hashes=[image.sha256 for image in images], model=model)
    missing = {image.sha256: image for image in images if image.sha256 not in stored}
    if missing:
        engine = engine or get_engine()
        pictures = [image.image for image in missing.values()]
        vectors = run_inference(lambda: engine.encode_images(pictures))
        new = dict(zip(missing, vectors))
        if store:
            image_embeddings_store(vectors=new, model=model)
        stored.update(new)
    return np.stack([stored[image.sha256] for image in images])


def image_embeddings_store(*, vectors, model):
    """Store ``{sha256: vector}``; rows another writer stored first are kept.

    The (sha256, model) unique constraint settles races: a conflicting insert
    is skipped, never duplicated, and never fails the analysis.
    """
    ImageEmbedding.objects.bulk_create(
        [
            ImageEmbedding(sha256=sha256, model=model, dim=len(vector), vector=ImageEmbedding.pack(vector))
            for sha256, vector in vectors.items()
        ],
        ignore_conflicts=True,
    )


def analyze_batch(*, items):
    """Score server-side images against texts, in input order.

    ``items`` are dicts with ``image_path``, ``text`` and optional
    ``threshold``, or an ``error`` already found by validation. A bad item
    gets its own ``error`` entry; the others are unaffected. Items are
    decoded and encoded ``BATCH_SIZE`` at a time so memory stays bounded.
    """
    if not clip_settings.BATCH_ROOT:
        raise BatchUnavailable("Batch analysis is disabled: CLIPCHECK BATCH_ROOT is not configured.")
    results = [None] * len(items)
    batch_size = int(clip_settings.BATCH_SIZE)
    for start in range(0, len(items), batch_size):
        decoded = []
        for index in range(start, min(start + batch_size, len(items))):
            item = items[index]
            if "error" in item:
                results[index] = {"image_path": item.get("image_path"), "error": item["error"]}
                continue
            try:
                image = decode_image(read_batch_file(item["image_path"]))
            except ClipcheckError as exc:
                results[index] = {"image_path": item["image_path"], "error": exc.as_dict()}
                continue
            decoded.append((index, item, image))
        if not decoded:
            continue
        analyses = analyses_create(
            requests=[
                AnalysisRequest(image=image, text=item["text"], threshold=item.get("threshold"))
                for _, item, image in decoded
            ],
            source=Analysis.Source.BATCH,
        )
        for (index, item, _), analysis in zip(decoded, analyses):
            results[index] = {"image_path": item["image_path"], **analysis.result()}
    return results


# Calibration data


@dataclass
class LabelledScores:
    """Scored labelled pairs for ``clipcheck.calibration.calibrate``."""

    pairs: list  # (similarity_score, is_match)
    skipped: list  # (line number, reason) of rows whose image could not be used


CSV_COLUMNS = ("image_path", "text", "label")
CSV_LABELS = {"match": True, "1": True, "mismatch": False, "0": False}


def labelled_scores_from_csv(*, path, batch_size=None):
    """Score the rows of an ``image_path,text,label`` CSV file.

    ``label`` is match/mismatch (or 1/0); relative image paths are relative
    to the file's directory. Images go through ``decode_image`` and the model
    in batches; a row whose image cannot be read or decoded is skipped and
    reported, a malformed row raises ``CalibrationError`` with its line.
    Nothing is stored.
    """
    path = Path(path)
    batch_size = batch_size or int(clip_settings.BATCH_SIZE)
    scores = LabelledScores(pairs=[], skipped=[])
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CalibrationError(f"{path} cannot be read: {exc.strerror}.")
    with handle:
        reader = csv.DictReader(handle)
        missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise CalibrationError(
                f"{path} must have the columns {','.join(CSV_COLUMNS)} in its first line; missing: {', '.join(missing)}."
            )
        batch = []
        for row in reader:
            batch.append(_labelled_row(row, reader.line_num, path.parent))
            if len(batch) == batch_size:
                _score_labelled_batch(batch, scores)
                batch = []
        _score_labelled_batch(batch, scores)
    return scores


def _labelled_row(row, line, directory):
    label = (row.get("label") or "").strip().lower()
    if label not in CSV_LABELS:
        raise CalibrationError(f"Line {line}: label {row.get('label')!r} is not match, mismatch, 1 or 0.")
    image_path, text = (row.get("image_path") or "").strip(), row.get("text") or ""
    if not image_path or not text.strip():
        raise CalibrationError(f"Line {line}: image_path and text must not be empty.")
    return line, directory / image_path, text, CSV_LABELS[label]


def _score_labelled_batch(batch, scores):
    decoded = []
    for line, image_path, text, is_match in batch:
        try:
            with open(image_path, "rb") as image_file:
                image = decode_image(image_file.read(clip_settings.MAX_UPLOAD_BYTES + 1))
        except OSError as exc:
            scores.skipped.append((line, f"{image_path}: {exc.strerror or exc}"))
            continue
        except ClipcheckError as exc:
            scores.skipped.append((line, f"{image_path}: {exc.message}"))
            continue
        decoded.append((image, text, is_match))
    if not decoded:
        return
    similarities = similarity_scores(images=[image for image, _, _ in decoded], texts=[text for _, text, _ in decoded])
    scores.pairs.extend((score, is_match) for score, (_, _, is_match) in zip(similarities, decoded))


def similarity_scores(*, images, texts):
    """``similarity_score`` of each decoded image with the text at the same position (nothing stored)."""
    engine = get_engine()
    image_vectors = engine.encode_images([image.image for image in images])
    text_vectors, _ = engine.encode_texts(list(texts))
    return [scoring.similarity_score(float(cosine)) for cosine in np.einsum("ij,ij->i", image_vectors, text_vectors)]


def category_similarities(*, images, categories):
    """``similarity_score`` of each decoded image (rows) with each category's
    zero-shot prompt (columns), as classify scores them; stored image
    embeddings are reused."""
    engine = get_engine()
    image_vectors = image_embeddings_compute(images=images, engine=engine)
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in categories]
    prompt_vectors, _ = run_inference(lambda: engine.encode_texts(prompts))
    cosines = image_vectors @ prompt_vectors.T
    return [[scoring.similarity_score(float(cosine)) for cosine in row] for row in cosines]
