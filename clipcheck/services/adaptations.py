"""The model's active category adaptation: read (cached), promoted, rolled back.

A serving process reads the active adaptation at most once per
``CALIBRATION_CACHE_SECONDS``, as it reads calibrated thresholds: a
promotion or a rollback reaches every process within that time, without a
restart. The head's arrays are decoded once per version.
"""

import hashlib
import json
import threading
import time
from dataclasses import dataclass

import numpy as np

from django.core.signals import setting_changed
from django.db import DatabaseError, transaction
from django.utils import timezone

from clipcheck import selectors
from clipcheck.adaptation import (
    MIN_PHOTOS_PER_CATEGORY, CategoryHead, FitChoice, HeldOut, head_fit, held_out_figures, promotion_decision,
    stratified_held_out,
)
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.errors import ClipcheckError
from clipcheck.models import Adaptation
from clipcheck.services.thresholds import model_id
from clipcheck.settings import clip_settings


class AdaptationError(ClipcheckError):
    status_code = 400
    code = "adaptation_unavailable"


@dataclass(frozen=True)
class ActiveAdaptation:
    version: int
    head: CategoryHead
    created_at: object
    metrics: dict

    def covers(self, categories):
        """Whether the head judges every one of ``categories`` (else the zero-shot prompts do)."""
        return set(categories) <= set(self.head.categories)


_cache = {}  # model -> (ActiveAdaptation or None, expires)
_heads = {}  # (model, version) -> CategoryHead
_lock = threading.Lock()


def adaptation_active(*, model=None):
    """The active adaptation of ``model`` (the current one by default), or None."""
    model = model or model_id()
    now = time.monotonic()
    cached = _cache.get(model)
    if cached is not None and cached[1] > now:
        return cached[0]
    row = selectors.adaptation_active_get(model=model)
    active = None
    if row is not None:
        key = (model, row.version)
        head = _heads.get(key)
        if head is None:
            head = CategoryHead.from_bytes(row.head)
        active = ActiveAdaptation(version=row.version, head=head, created_at=row.created_at, metrics=row.metrics)
    with _lock:
        if active is not None:
            _heads[(model, active.version)] = active.head
        _cache[model] = (active, now + float(clip_settings.CALIBRATION_CACHE_SECONDS))
    return active


def adaptation_version(*, model=None):
    active = adaptation_active(model=model)
    return None if active is None else active.version


def adaptation_summary():
    """The active adaptation in a few fields for health; None without one, or when the
    database cannot be read (health answers without the database)."""
    try:
        active = adaptation_active()
    except DatabaseError:
        return None
    if active is None:
        return None
    accuracy = active.metrics.get("overall", {}).get("accuracy", {})
    return {
        "version": active.version, "categories": len(active.head.categories), "promoted_at": active.created_at,
        "held_out_accuracy": accuracy.get("after"),
    }


def adaptation_forget():
    with _lock:
        _cache.clear()


def _forget_on_settings_change(*, setting, **kwargs):
    if setting == "CLIPCHECK":
        adaptation_forget()


setting_changed.connect(_forget_on_settings_change)


@transaction.atomic
def adaptation_promote(*, head, label_digest, labels, metrics, created_by="", model=None):
    """Store ``head`` as the next version of ``model``'s adaptation and make it the active one."""
    model = model or model_id()
    # Locks the model's rows (PostgreSQL): two promotions never take one version.
    latest = list(Adaptation.objects.select_for_update().filter(model=model).values_list("version", flat=True))
    Adaptation.objects.filter(model=model, active=True).update(active=False, deactivated_at=timezone.now())
    promoted = Adaptation.objects.create(
        model=model, version=(max(latest) if latest else 0) + 1, active=True, categories=list(head.categories),
        head=head.to_bytes(), label_digest=label_digest, labels=labels, metrics=metrics, created_by=created_by,
    )
    # This process at once (and again once committed); the others within CALIBRATION_CACHE_SECONDS.
    transaction.on_commit(adaptation_forget)
    adaptation_forget()
    return promoted


@transaction.atomic
def adaptation_rollback(*, model=None):
    """Retire ``model``'s active adaptation and make the version before it active again.

    Returns ``(retired, restored)``; ``restored`` is None when the retired
    one was the first (the zero-shot prompts judge again).
    """
    model = model or model_id()
    current = Adaptation.objects.select_for_update().filter(model=model, active=True).first()
    if current is None:
        raise AdaptationError(f"The model {model!r} has no active adaptation to roll back.")
    current.active, current.deactivated_at = False, timezone.now()
    current.save(update_fields=["active", "deactivated_at"])
    restored = selectors.adaptation_before(model=model, version=current.version)
    if restored is not None:
        restored.active, restored.deactivated_at = True, None
        restored.save(update_fields=["active", "deactivated_at"])
    transaction.on_commit(adaptation_forget)
    adaptation_forget()
    return current, restored



# Learning


MIN_LABELLED_PHOTOS = 40


@dataclass
class LabelledPhotos:
    """What an adaptation learns from: photos' embeddings and what their labels say.

    ``truth[i]`` is the index in ``categories`` of photo i's category, or -1
    when only ``against[i]`` is known: a category the photo is not (a
    moderator rejected it as the wrong category). ``keys`` (listing ids)
    decide the split, the same on every run.
    """

    keys: list
    embeddings: np.ndarray
    categories: list
    truth: np.ndarray
    against: np.ndarray

    def digest(self):
        rows = sorted(zip(map(str, self.keys), self.truth.tolist(), self.against.tolist()))
        labelled = json.dumps([self.categories, rows]).encode()
        return hashlib.sha256(labelled).hexdigest()


@dataclass
class AdaptationOutcome:
    head: CategoryHead
    choice: FitChoice
    figures: dict
    promote: bool
    reason: str
    before: str  # what judged categories before: "the zero-shot prompts" or "adaptation vN"
    trained_on: int
    held_out: int


def adaptation_learn(*, photos):
    """Fit a head on the training split of ``photos`` and judge it against what serves now on the held-out split."""
    learnt = photos.truth >= 0
    if learnt.sum() < MIN_LABELLED_PHOTOS or len(photos.categories) < 2:
        raise AdaptationError(
            f"Too few labels to adapt: {int(learnt.sum())} labelled photos in {len(photos.categories)} categories "
            f"(at least {MIN_LABELLED_PHOTOS} photos in 2 categories, {MIN_PHOTOS_PER_CATEGORY} per category)."
        )
    strata = [f"{truth}" if truth >= 0 else f"against {against}" for truth, against in zip(photos.truth, photos.against)]
    held_out = stratified_held_out(photos.keys, strata)
    train = ~held_out & learnt
    engine = get_engine()
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in photos.categories]
    text_weights = run_inference(lambda: engine.encode_texts(prompts)[0])
    head, choice = head_fit(
        photos.embeddings[train], photos.truth[train], keys=[key for key, kept in zip(photos.keys, train) if kept],
        categories=photos.categories, text_weights=text_weights, logit_scale=engine.logit_scale,
    )
    judged = photos.embeddings[held_out]
    serving = adaptation_active()
    before = HeldOut(_serving_scores(judged, photos.categories), photos.truth[held_out], photos.against[held_out])
    after = HeldOut(head.probabilities(judged), photos.truth[held_out], photos.against[held_out])
    table = held_out_figures(before, after, categories=photos.categories)
    promote, reason = promotion_decision(table)
    return AdaptationOutcome(
        head=head, choice=choice, figures=table, promote=promote, reason=reason,
        before="the zero-shot prompts" if serving is None or not serving.covers(photos.categories)
        else f"adaptation v{serving.version}",
        trained_on=int(train.sum()), held_out=int(held_out.sum()),
    )


def _serving_scores(embeddings, categories):
    """(n, K) scores of ``categories`` for ``embeddings`` as classify answers now."""
    from clipcheck.services.classification import images_classify

    columns = {category: index for index, category in enumerate(categories)}
    scores = np.zeros((len(embeddings), len(categories)))
    for row, matches in enumerate(images_classify(image_embeddings=list(embeddings), categories=categories,
                                                  top_k=len(categories))):
        for match in matches:
            scores[row, columns[match["category"]]] = match["score"]
    return scores
