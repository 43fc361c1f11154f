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

from clipcheck import costs, metrics, scoring, selectors, verdicts
from clipcheck.default_attributes import DEFAULT_LANGUAGE
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference, start_inference
from clipcheck.errors import ModelUnavailable
from clipcheck.hashes import text_hash
from clipcheck.images import DecodedImage
from clipcheck.models import Analysis
from clipcheck.services.adaptations import adaptation_active
from clipcheck.services.classification import images_classify
from clipcheck.services.embeddings import image_embeddings_compute
from clipcheck.services.thresholds import default_threshold, model_id
from clipcheck.settings import clip_settings


@dataclass(frozen=True)
class AnalysisRequest:
    """One image/text pair to analyse; ``subject`` is the object it concerns.

    ``alternatives`` are other photos of the same item: the text is judged
    against the best of ``image`` and them, and the analysis names that one.
    """

    image: DecodedImage
    text: str
    threshold: float | None = None
    subject: models.Model | None = None
    alternatives: tuple = ()
    category: str = ""  # the item's category, where it has one (score metrics)
    language: str = DEFAULT_LANGUAGE  # the text's: its vocabulary and the reasons' words (clipcheck.languages)


def analysis_create(*, image, text, threshold=None, source, subject=None, budget=None, language=DEFAULT_LANGUAGE):
    """Analyse one decoded image against one text (written in ``language``) and store the result."""
    request = AnalysisRequest(image=image, text=text, threshold=threshold, subject=subject, language=language)
    return analyses_create(requests=[request], source=source, budget=budget)[0]


def analyses_create(*, requests, source, budget=None, plans=None):
    """Analyse image/text pairs and store one ``Analysis`` per pair, in order.

    ``analyses_compute`` followed by ``analyses_save`` in one transaction.
    """
    analyses = analyses_compute(requests=requests, source=source, budget=budget, plans=plans)
    with transaction.atomic():
        analyses_save(analyses=analyses)
    return analyses


def analyses_compute(*, requests, source, store_embeddings=True, image_vectors=None, looks_like_top_k=2,
                     budget=None, plans=None):
    """Analyse image/text pairs: one unsaved ``Analysis`` per pair, in order.

    A pair already analysed with the same image bytes, text, threshold and
    model is answered from the stored verdict without the model
    (``cached=True``). The others cost one ``encode_images`` call for the
    images whose embedding is not stored yet and one ``encode_texts`` call.
    Nothing but new image embeddings is written (and not even those when
    ``store_embeddings`` is false), so callers run the model outside their
    transactions and save the rows afterwards with ``analyses_save``.

    Each text is judged by ``clipcheck.verdicts`` (passages, attribute
    rewrites, reasons); a request with ``alternatives`` is never answered
    from a stored verdict. ``image_vectors`` ({sha256: vector}) are
    embeddings the caller already holds; ``looks_like_top_k`` bounds the
    categories a mismatch reason names. With a ``budget``
    (``costs.RequestBudget``) the pairs to compute are refused over its bound
    and charged to its client before any model work; ``plans`` ({text:
    ``verdicts.TextPlan``}) are texts the caller planned already.
    """
    model = model_id()
    requests = [_with_threshold(request) for request in requests]
    started = time.monotonic()
    active = adaptation_active()  # read once: the version recorded is the one that judged
    adaptation = None if active is None else active.version
    # A text's reasons depend on its language: a stored verdict is reused under its own language's rules.
    rules = {language: verdicts.rules_key(adaptation_version=adaptation, language=language)
             for language in dict.fromkeys(request.language for request in requests)}
    text_hashes = [text_hash(request.text) for request in requests]
    keys = [(r.image.sha256, digest, r.threshold) for r, digest in zip(requests, text_hashes)]
    earlier = _stored_verdicts(requests=requests, keys=keys, model=model, rules=rules)
    lookup_ms = (time.monotonic() - started) * 1000

    to_compute = [
        index for index, key in enumerate(keys)
        if key not in earlier[requests[index].language] or requests[index].alternatives
    ]
    computed, judged_images, device, compute_ms = _pairs_compute(
        requests=[requests[index] for index in to_compute], model=model, store_embeddings=store_embeddings,
        known=image_vectors, top_k=looks_like_top_k, budget=budget, plans=plans or {},
    )
    results = _adapted_results(dict(zip(to_compute, computed)), requests=requests, active=active)
    judged = dict(zip(to_compute, judged_images))

    answers = [
        (results[index], False, device, compute_ms) if index in results
        else _earlier_result(earlier[requests[index].language][keys[index]], share_ms=lookup_ms / len(requests))
        for index in range(len(requests))
    ]
    return [
        analysis_build(
            image_sha256=judged.get(index, request.image).sha256, text=request.text, text_sha256=text_hashes[index],
            result=result, model=model, device=analysis_device, source=source, duration_ms=duration_ms,
            cached=cached, subject=request.subject, rules=rules[request.language], adaptation_version=adaptation,
            language=request.language,
        )
        for index, (request, (result, cached, analysis_device, duration_ms)) in enumerate(zip(requests, answers))
    ]


def _stored_verdicts(*, requests, keys, model, rules):
    """Per language, ``{key: stored analysis}`` of the pairs a stored verdict may answer
    (none with ``alternatives``), under that language's rules."""
    return {
        language: selectors.analyses_cached(
            keys=[key for key, request in zip(keys, requests) if not request.alternatives and request.language == language],
            model=model, rules=language_rules,
        )
        for language, language_rules in rules.items()
    }


def _with_threshold(request):
    threshold = default_threshold() if request.threshold is None else float(request.threshold)
    return AnalysisRequest(
        image=request.image, text=request.text, threshold=threshold, subject=request.subject,
        alternatives=tuple(request.alternatives), category=request.category, language=request.language,
    )


def _pairs_compute(*, requests, model, store_embeddings, known=None, top_k=2, budget=None, plans=None):
    """The model's verdicts: ``(results, the photo each text was judged on, device, milliseconds per pair)``.

    One ``encode_images`` call for the photos without a stored (or
    ``known``) embedding, one ``encode_texts`` call for every text and
    passage, one more for the attribute rewrites of the texts that do not
    pass (``verdicts.texts_judge``), and for mismatches the category prompts
    (cached by the engine after the first). Nothing loads the model when
    there is nothing to compute.
    """
    if not requests:
        return [], [], "", 0.0
    started = time.monotonic()
    engine = get_engine()
    photos = [[request.image, *request.alternatives] for request in requests]
    planned = plans or {}
    plans = [_planned(planned, request, engine) for request in requests]
    if budget is not None:
        budget.admit(costs.plans_cost(plans, photos=sum(len(group) for group in photos)))
    groups = _photos_and_texts_encode(
        photos=photos, plans=plans, engine=engine, model=model, store_embeddings=store_embeddings, known=known
    )
    judgements = verdicts.texts_judge(
        plans=plans, image_vector_groups=groups, thresholds=[request.threshold for request in requests],
        engine=engine, run=run_inference,
    )
    judged_images = [group[judgement.image_index] for judgement, group in zip(judgements, photos)]
    reasons_add_looks_like_many(
        [judgement.reasons for judgement in judgements],
        image_vectors=[vectors[judgement.image_index] for judgement, vectors in zip(judgements, groups)],
        texts=[plan.text for plan in plans], top_k=top_k,
    )
    results = [judgement.result() for judgement in judgements]
    if engine.model_family.sigmoid:
        results = [
            {**result, "match_probability": _sigmoid_match_probability(plan, vectors[judgement.image_index], engine)}
            for result, plan, judgement, vectors in zip(results, plans, judgements, groups)
        ]
    return results, judged_images, engine.device_name, (time.monotonic() - started) * 1000 / len(requests)


def _sigmoid_match_probability(plan, image_vector, engine):
    """A sigmoid-trained model's own probability that the text matches the photo: of the
    cosine behind the text's score (its best passage's; the passages are in the engine's
    text cache, unless it keeps none). An active adaptation's probability replaces it
    (``_adapted_results``)."""
    strings = plan.passage_strings()
    passage_vectors = run_inference(lambda: engine.encode_texts(strings)[0], rows=len(strings))
    cosine = float(np.max(passage_vectors @ image_vector))
    return scoring.sigmoid_probability(cosine, engine.logit_scale, engine.logit_bias)


def _planned(planned, request, engine):
    """The caller's plan of the request's text where it was planned in the request's language, else a new one."""
    plan = planned.get(request.text)
    if plan is None or plan.language != request.language:
        plan = verdicts.text_plan(text=request.text, engine=engine, language=request.language)
    return plan


def _photos_and_texts_encode(*, photos, plans, engine, model, store_embeddings, known):
    """The photos' embeddings, grouped as ``photos`` is; the texts' passages encoded alongside.

    Started first, the texts' forward runs while the photos are encoded, on
    the same admission slot (the engine's lanes overlap them when the cores
    allow); ``texts_judge`` then finds them in the engine's text cache. The
    slot counts the rows of the longer of the two in flight: the towers run
    alongside each other, so the request waits about as long as its longer one.
    """
    strings = [string for plan in plans for string in plan.passage_strings()]
    rows = max(len(set(strings)), sum(len(group) for group in photos))
    with start_inference(lambda: verdicts.texts_vectors(strings=strings, engine=engine), rows=rows) as pending_texts:
        vectors = image_embeddings_compute(
            images=[photo for group in photos for photo in group], model=model, engine=engine,
            store=store_embeddings, known=known, run=pending_texts.alongside,
        )
        pending_texts.result()
    groups, offset = [], 0
    for group in photos:
        groups.append(vectors[offset:offset + len(group)])
        offset += len(group)
    return groups


def vocabulary_warm_up():
    """The attribute values and categories encoded once per model before traffic (the likeliest
    rewrite is chosen with them), so no request pays for them; a model that failed to load is left
    to the requests' own 503."""
    try:
        verdicts.vocabulary_warm_up(get_engine())
    except ModelUnavailable:
        pass


def reasons_add_looks_like(reasons, *, image, image_vector, text="", top_k=2):
    """Name what the photo looks like in a mismatch reason, when the model is
    confident about it (``verdicts.looks_like``), the text does not name it
    already, and no conflict explains the mismatch better."""
    reasons_add_looks_like_many([reasons], image_vectors=[image_vector], texts=[text], top_k=top_k)


def reasons_add_looks_like_many(reasons_lists, *, image_vectors, texts=None, top_k=2):
    """``reasons_add_looks_like`` for many texts, each with the embedding of the
    photo it was judged on: one classification (prompts encoded once) for all
    the mismatches among them."""
    mismatches, vectors, mismatch_texts = [], [], []
    for reasons, image_vector, text in zip(reasons_lists, image_vectors, texts or [""] * len(reasons_lists)):
        mismatch = next((r for r in reasons if r["code"] in verdicts.MISMATCH_CODES), None)
        if mismatch is None or any(r["code"] in verdicts.CONFLICT_CODES for r in reasons):
            continue
        mismatches.append(mismatch)
        vectors.append(image_vector)
        mismatch_texts.append(text)
    # Extra candidates so that leaving out the categories a text names still leaves top_k.
    matches_lists = images_classify(image_embeddings=vectors, top_k=top_k + 3) if vectors else []
    for mismatch, matches, text in zip(mismatches, matches_lists, mismatch_texts):
        mismatch["photo_looks_like"] = verdicts.looks_like(matches, top_k=top_k, text=text)


def _earlier_result(analysis, *, share_ms):
    """``(result, cached, device, duration_ms)`` of a pair answered from an earlier analysis."""
    return _stored_result(analysis), True, analysis.device, share_ms


def _stored_result(analysis):
    """The verdict fields of an earlier analysis of the same pair (made under the same rules and adaptation)."""
    result = {
        **scoring.verdict(analysis.similarity_score, analysis.threshold), "text_truncated": analysis.text_truncated,
        "reasons": analysis.reasons, "passages": analysis.passages,
    }
    if analysis.match_probability is not None:
        result.update(match_probability=analysis.match_probability, confidence=analysis.confidence)
    return result


def _adapted_results(results, *, requests, active):
    """``{index: result}`` with the adaptation's match probability, each score counted for drift."""
    match = None if active is None else active.head.match
    if active is not None:
        # An active adaptation decides alone, as on CLIP: a sigmoid model's own probability gives way
        # (to none where the adaptation has no match calibration).
        results = {index: {key: value for key, value in result.items() if key != "match_probability"}
                   for index, result in results.items()}
    adapted = {index: _with_match_probability(result, match, requests[index].category) for index, result in results.items()}
    _scores_observe([(result, requests[index].category) for index, result in adapted.items()], active=active)
    return adapted


def _scores_observe(results_and_categories, *, active):
    """The score histogram (drift alerts, docs/adaptation.md), with its category label bounded."""
    named = set((active.head.categories if active else clip_settings.CATEGORIES)[:metrics.METRIC_CATEGORIES])
    for result, category in results_and_categories:
        label = category if category in named else "other" if category else "none"
        verdict = "mismatch" if result["is_mismatch"] else "match"
        metrics.SIMILARITY_SCORES.labels(verdict=verdict, category=label).observe(result["similarity_score"])


def _with_match_probability(result, match, category=""):
    """``result`` with ``match_probability`` (the category's curve where it has one) and the
    ``confidence`` it implies, under a match calibration."""
    if match is None:
        return result
    probability = round(float(match.probability(result["similarity_score"], category)), 4)
    return {
        **result, "match_probability": probability,
        "confidence": scoring.confidence_from_probability(probability, result["is_mismatch"]),
    }


def analyses_save(*, analyses):
    """Store analyses built by ``analyses_compute`` (one INSERT for them all)."""
    return Analysis.objects.bulk_create(analyses)


def analysis_build(
    *, image_sha256, text, result, model, device, source, duration_ms, cached=False, subject=None, text_sha256=None,
    rules="", adaptation_version=None, language=DEFAULT_LANGUAGE,
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
        reasons=result.get("reasons", []),
        passages=result.get("passages"),
        rules=rules,
        model=model,
        adaptation_version=adaptation_version,
        language=language,
        match_probability=result.get("match_probability"),
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
