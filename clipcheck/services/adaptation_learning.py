"""Learning an adaptation: fit a head on labelled photos and judge it against what serves now.

The labels come from the project that holds them (its catalogue); the
arithmetic is ``clipcheck.adaptation``; storing and serving is
``clipcheck.services.adaptations``.
"""

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from clipcheck.adaptation import (
    MIN_MATCH_LABELS_PER_CLASS,
    MIN_PHOTOS_PER_CATEGORY,
    CategoryHead,
    FitChoice,
    HeldOut,
    head_fit,
    held_out_figures,
    match_calibration_fit,
    match_figures,
    promotion_decision,
    stratified_held_out,
)
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.services.adaptations import AdaptationError, adaptation_active
from clipcheck.services.classification import images_classify
from clipcheck.settings import clip_settings

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
class MatchLabels:
    """Moderators' text-photo verdicts: ``scores`` the similarity they saw, ``matches`` approved
    (True) or rejected because the text does not describe the photo (False); ``keys`` split them."""

    keys: list
    scores: np.ndarray
    matches: np.ndarray
    categories: list | None = None  # each label's listing category ("" for none)
    sampled: int = 0  # how many come from the random review sample of machine approvals


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
    match_figures: dict | None = None  # held-out ECE and Brier of match_probability, when fitted
    match_note: str = ""  # why there is none


def adaptation_learn(*, photos, match_labels=None):
    """Fit a head on the training split of ``photos`` and judge it against what serves now on the held-out
    split; with ``match_labels`` (enough of each class) the head also carries the match probability."""
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
    outcome = AdaptationOutcome(
        head=head, choice=choice, figures=table, promote=promote, reason=reason,
        before="the zero-shot prompts" if serving is None or not serving.covers(photos.categories)
        else f"adaptation v{serving.version}",
        trained_on=int(train.sum()), held_out=int(held_out.sum()),
    )
    _match_learn(outcome, match_labels)
    return outcome


def _match_learn(outcome, labels):
    """Fit the match probability on the training split of ``labels`` and measure it on the held-out split."""
    counts = (0, 0) if labels is None else (int(np.sum(labels.matches)), int(np.sum(~labels.matches)))
    if min(counts) < MIN_MATCH_LABELS_PER_CLASS:
        outcome.match_note = (
            f"no match_probability: {counts[0]} approved and {counts[1]} rejected text-photo labels "
            f"(at least {MIN_MATCH_LABELS_PER_CLASS} of each wanted)"
        )
        return
    held_out = stratified_held_out(labels.keys, labels.matches, salt="match held-out")
    categories = np.asarray(labels.categories or [""] * len(labels.keys), dtype=object)
    calibration = match_calibration_fit(labels.scores[~held_out], labels.matches[~held_out], categories[~held_out])
    probabilities = [
        calibration.probability(score, category) for score, category in zip(labels.scores[held_out], categories[held_out])
    ]
    outcome.head.match = calibration
    outcome.match_figures = {**match_figures(probabilities, labels.matches[held_out]), **calibration.as_dict()}


def _serving_scores(embeddings, categories):
    """(n, K) scores of ``categories`` for ``embeddings`` as classify answers now."""
    columns = {category: index for index, category in enumerate(categories)}
    scores = np.zeros((len(embeddings), len(categories)))
    for row, matches in enumerate(images_classify(image_embeddings=list(embeddings), categories=categories,
                                                  top_k=len(categories))):
        for match in matches:
            scores[row, columns[match["category"]]] = match["score"]
    return scores
