"""Why a verdict is what it is: reasons with evidence, and the seller's suggestion.

The rules (documented with every reason code in docs/verdicts.md):

- A text that fits the model's context is scored whole, as before. A longer
  one is scored as passages (``clipcheck.passages``) and its score is its
  best passage's: a description matches when one of its sentences does.
- ``low_similarity`` (a text scored whole) or ``passage_mismatch`` (a text
  scored as passages): the score is below the threshold.
- ``attribute_conflict``: a text (or passage) names one value of an
  attribute of its language's vocabulary (``ATTRIBUTES``, or
  ``ATTRIBUTES_BY_LANGUAGE``; any of the value's forms); the same text with another value passes the
  threshold and beats the text by ``ATTRIBUTE_MARGIN`` while the text does
  not pass. Only texts that do not pass can conflict, and of their rewrites
  only the likeliest are scored (``REWRITES_PER_PASSAGE`` per failing
  passage, all in one more batched forward, none when even the likeliest is
  predicted more than ``REWRITE_REACH`` below the threshold): the text's
  embedding with the written value's swapped for the other value's (values
  encoded once per model) predicts which rewrite scores best on the photo.
- ``object_conflict``: the same, for the kind of item: the catalogue's
  ``CATEGORIES`` are treated as one more attribute ("a red circle" on a
  photo of a red star says circle, the photo shows star).
- An app that checks whole items adds its own codes (e.g. ``category_conflict``,
  ``photos_differ``) and registers their wording in ``clipcheck.reasons``.

``texts_judge`` makes the model calls: one ``encode_texts`` for every
text and passage of a batch, then one for the chosen rewrites of those that
fail.

A text is judged in its language (``clipcheck.languages``): that language's
vocabulary finds its conflicts, and its reasons' messages and the seller's
suggestion are written in it (Django's translations, clipcheck/locale).
"""

import hashlib
import json
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clipcheck import reasons as reason_types
from clipcheck import scoring
from clipcheck.attributes import attribute_mentions, text_rewrite_forms, values_named, vocabulary_forms
from clipcheck.default_attributes import DEFAULT_LANGUAGE
from clipcheck.languages import language_vocabulary, supported_languages
from clipcheck.passages import Passage, text_passages
from clipcheck.reasons import Evidence, ReasonType, field_of, field_the, field_your, reason_type_register
from clipcheck.settings import clip_settings

# A category is named to the seller only when the model is confident on its
# own terms: its standalone classify score is above one half.
CONFIDENT_CATEGORY_SCORE = 0.5

# The attribute name under which the catalogue's categories are rewritten:
# its conflicts are reported as ``object_conflict``.
OBJECT_ATTRIBUTE = "item"
CONFLICT_CODES = ("attribute_conflict", "object_conflict")
MISMATCH_CODES = ("low_similarity", "passage_mismatch")

# The default attributes' names in the seller's language (another name reads as it is).
ATTRIBUTE_WORDS = {"colour": gettext_lazy("colour"), "material": gettext_lazy("material"),
                   "pattern": gettext_lazy("pattern")}


def attribute_word(attribute):
    return str(ATTRIBUTE_WORDS.get(attribute, attribute))


def text_vocabulary(language=DEFAULT_LANGUAGE):
    """The attributes a text in ``language`` is checked for: its vocabulary and, when configured, the categories."""
    vocabulary = dict(language_vocabulary(language))
    categories = [str(category) for category in clip_settings.CATEGORIES or []]
    if len(categories) > 1:
        vocabulary[OBJECT_ATTRIBUTE] = categories
    return vocabulary


@dataclass
class Rewrite:
    passage: int
    attribute: str
    text_says: str  # value names
    photo_shows: str
    text: str
    says_form: str = ""  # the forms swapped (a value's name where it has one form)
    shows_form: str = ""

    def __post_init__(self):
        self.says_form = self.says_form or self.text_says
        self.shows_form = self.shows_form or self.photo_shows


@dataclass
class TextPlan:
    """What to encode to judge one text: its passages and their possible rewrites.

    ``rewrites`` lists every rewrite the text allows; only the likeliest of
    those whose passage fails are ever encoded (``texts_judge``).
    """

    text: str
    whole: bool  # fits the context: scored as one text
    passages: list
    covered: bool
    rewrites: list = field(default_factory=list)
    language: str = DEFAULT_LANGUAGE

    def strings(self):
        return [passage.text for passage in self.passages] + [rewrite.text for rewrite in self.rewrites]

    def passage_strings(self):
        return [passage.text for passage in self.passages]

    @property
    def rows(self):
        """Text rows this text may cost at most: its passages, and the rewrites
        scored when every passage that names an attribute fails."""
        return len(self.passages) + rewrite_rows(self)


def rewrite_rows(plan):
    """The most rewrites ``texts_judge`` encodes for ``plan``: per passage, ``REWRITES_PER_PASSAGE``
    values, each in as many readings as a value of that passage has (one, unless a form is ambiguous)."""
    readings: dict[int, int] = {}
    for (passage, _attribute, _value), group in _rewrite_groups(plan.rewrites).items():
        readings[passage] = max(readings.get(passage, 0), len(group))
    per_passage = int(clip_settings.REWRITES_PER_PASSAGE)
    return min(int(clip_settings.MAX_REWRITES), sum(per_passage * count for count in readings.values()))


def _rewrite_groups(rewrites):
    """``{(passage, attribute, other value): [its rewrites]}`` in order: a value has more than one
    rewrite only where the written form may be read at several indexes (es "verde")."""
    groups: dict[tuple, list] = {}
    for rewrite in rewrites:
        groups.setdefault((rewrite.passage, rewrite.attribute, rewrite.photo_shows), []).append(rewrite)
    return groups


@dataclass
class TextJudgement:
    score: float
    threshold: float
    image_index: int  # the best of the images the text was judged against
    text_truncated: bool
    passages: dict | None  # passage evidence for a text scored as passages
    reasons: list
    rewrites_scored: int = 0  # rewrites encoded to judge it

    @property
    def is_mismatch(self):
        return scoring.is_mismatch(self.score, self.threshold)

    def result(self):
        """The analyze answer's verdict fields."""
        return {
            **scoring.verdict(self.score, self.threshold),
            "text_truncated": self.text_truncated,
            "passages": self.passages,
            "reasons": self.reasons,
        }


def text_plan(*, text, engine, language=DEFAULT_LANGUAGE):
    """Split ``text`` into passages when it does not fit and list the attribute rewrites in ``language``."""
    max_tokens = engine.max_text_tokens
    if engine.count_tokens([text])[0] <= max_tokens:
        passages, covered, whole = [Passage(index=0, start=0, end=len(text), text=text)], True, True
    else:
        passages, covered = text_passages(
            text, count_tokens=engine.count_tokens, max_tokens=max_tokens,
            max_passages=int(clip_settings.MAX_PASSAGES),
        )
        whole = False
    plan = TextPlan(text=text, whole=whole, passages=passages, covered=covered, language=language)
    vocabulary = text_vocabulary(language)
    for passage in passages:
        for mention in attribute_mentions(passage.text, vocabulary):
            for rewrite in text_rewrite_forms(passage.text, mention, vocabulary):
                plan.rewrites.append(Rewrite(
                    passage=passage.index, attribute=mention.attribute, text_says=mention.value,
                    photo_shows=rewrite.value, text=rewrite.text, says_form=rewrite.written, shows_form=rewrite.form,
                ))
    return plan


def _run_here(compute, rows=1):
    """Run a model computation in this thread: ``run`` for callers without admission control
    (``rows``, the rows it encodes, is what admission counts)."""
    return compute()


# Each attribute value's own embedding, per engine: encoded once per model
# (a few dozen rows) and kept for the life of the engine, whatever the
# engine's text cache evicts.
_values_cache = weakref.WeakKeyDictionary()
_values_lock = threading.Lock()


def values_vectors(*, values, engine, run=_run_here):
    """``{value: unit vector}`` for attribute values (the bare words), cached per engine.

    One thread encodes what is missing while the others wait for it (the lock
    is held across the forward): concurrent first requests never send the
    same few dozen rows at once. A serving process encodes the whole
    vocabulary before traffic (``vocabulary_warm_up``).
    """
    with _values_lock:
        known = _values_cache.setdefault(engine, {})
        missing = sorted(value for value in values if value not in known)
        if missing:
            vectors, _ = run(lambda: engine.encode_texts(missing), rows=len(missing))
            known.update(zip(missing, (np.array(vector) for vector in vectors), strict=True))
        return {value: known[value] for value in values}


def vocabulary_warm_up(engine):
    """Encode every form of every language's vocabulary (``ATTRIBUTES``, ``ATTRIBUTES_BY_LANGUAGE``,
    the categories) once, before traffic."""
    forms = set().union(*(vocabulary_forms(text_vocabulary(language)) for language in supported_languages()))
    values_vectors(values=sorted(forms), engine=engine)


def texts_vectors(*, strings, engine, run=_run_here):
    """One ``encode_texts`` call for ``strings``: ``{string: vector}``.

    ``run(compute, rows=)`` wraps the model call (admission control, ``run_inference``).
    """
    strings = list(dict.fromkeys(strings))
    if not strings:
        return {}
    vectors, _ = run(lambda: engine.encode_texts(strings), rows=len(strings))
    return dict(zip(strings, vectors, strict=True))


def texts_judge(*, plans, image_vector_groups, thresholds, engine, run=_run_here):
    """Judge planned texts, each against its group of image vectors: one ``TextJudgement`` each.

    One forward for all passages; then one for the likeliest rewrites of
    the passages that do not pass on their best image (a passing text never
    conflicts), so a matching answer costs no rewrite at all and a failing
    one ``REWRITES_PER_PASSAGE`` rows per failing passage.
    """
    vectors = texts_vectors(strings=[s for plan in plans for s in plan.passage_strings()], engine=engine, run=run)
    failing = [
        _rewrites_of_failing_passages(plan=plan, vectors=vectors, image_vectors=images, threshold=threshold)
        for plan, images, threshold in zip(plans, image_vector_groups, thresholds, strict=True)
    ]
    values = values_vectors(
        values={form for candidates, _ in failing for r in candidates for form in (r.says_form, r.shows_form)},
        engine=engine, run=run,
    )
    reach = rewrite_reach(engine)
    chosen = [
        _likeliest_rewrites(plan, candidates, vectors, image_vector, values, threshold, reach)
        for plan, (candidates, image_vector), threshold in zip(plans, failing, thresholds, strict=True)
    ]
    vectors.update(texts_vectors(strings=[r.text for rewrites in chosen for r in rewrites], engine=engine, run=run))
    judgements = []
    for plan, images, threshold, rewrites in zip(plans, image_vector_groups, thresholds, chosen, strict=True):
        judgement = text_judge(plan=plan, vectors=vectors, image_vectors=images, threshold=threshold)
        judgement.rewrites_scored = len({rewrite.text for rewrite in rewrites})
        judgements.append(judgement)
    return judgements


def _best_image_cosines(plan, vectors, image_vectors):
    image_vectors = np.atleast_2d(np.asarray(image_vectors))
    passage_matrix = np.stack([vectors[passage.text] for passage in plan.passages])
    # cosines[i, p]: image i with passage p; a text's score on an image is its best passage's.
    cosines = image_vectors @ passage_matrix.T
    image_index = int(np.argmax(cosines.max(axis=1)))
    return image_index, image_vectors, [scoring.similarity_score(float(c)) for c in cosines[image_index]]


def _rewrites_of_failing_passages(*, plan, vectors, image_vectors, threshold):
    """``(rewrites of the passages that fail on the best image, that image's vector)``."""
    if not plan.rewrites:
        return [], None
    image_index, image_vectors, passage_scores = _best_image_cosines(plan, vectors, image_vectors)
    failing = {index for index, score in enumerate(passage_scores) if score < threshold}
    return [rewrite for rewrite in plan.rewrites if rewrite.passage in failing], image_vectors[image_index]


# REWRITE_REACH when it is None, per family. On a sigmoid-trained model the values' own
# embeddings predict a rewrite's score less closely: on the known-answer SigLIP at 0.1 some
# French rewrites naming the drawn colour were never scored (wrong colours found: 95.0% in
# French against 97.3% in English; 96.0% at 0.2, CLIP's 98.8% the same at either).
DEFAULT_REWRITE_REACH = 0.1
SIGMOID_REWRITE_REACH = 0.2


def rewrite_reach(engine):
    """How far below the threshold the likeliest rewrite may be predicted and still be scored."""
    if clip_settings.REWRITE_REACH is not None:
        return float(clip_settings.REWRITE_REACH)
    return SIGMOID_REWRITE_REACH if engine.model_family.sigmoid else DEFAULT_REWRITE_REACH


def _likeliest_rewrites(plan, candidates, vectors, image_vector, values, threshold, reach):
    """The rewrites worth a forward: per failing passage, those of the ``REWRITES_PER_PASSAGE``
    other values whose predicted score on the photo is highest, if it comes within
    ``reach`` (``rewrite_reach``) of the threshold; ``MAX_REWRITES`` per text.

    A value written in a form that several of its indexes share (Spanish "verde",
    masculine or feminine; French "orange", singular or plural) is rewritten in
    each reading: the other value is predicted by the mean of its readings (the
    text's gender and number are not known) and every reading of a chosen value
    is scored, the best deciding. Elsewhere a value has one rewrite.

    A rewrite swaps one word of its passage, so its embedding is predicted by
    swapping the word's: passage − value written + other value, all unit
    vectors. On the known-answer model this ranks the drawn colour first for
    192 of 192 wrong-colour captions and the drawn shape for 190 of 192, and
    every conflict found by scoring all rewrites had a prediction at most
    0.014 below the threshold; a text predicted far below it (another product
    altogether) is not lifted by one word. Only the choice is predicted: the
    conflict is decided on the rewrite's own embedding.
    """
    if not candidates:
        return []
    predicted = np.stack([
        vectors[plan.passages[rewrite.passage].text] - values[rewrite.says_form] + values[rewrite.shows_form]
        for rewrite in candidates
    ])
    cosines = (predicted @ image_vector) / np.maximum(np.linalg.norm(predicted, axis=1), 1e-12)
    cosine_of = {id(rewrite): float(cosine) for rewrite, cosine in zip(candidates, cosines, strict=True)}
    groups = list(_rewrite_groups(candidates).values())
    group_cosines = np.array([np.mean([cosine_of[id(rewrite)] for rewrite in group]) for group in groups])
    within_reach = threshold - reach
    per_passage = int(clip_settings.REWRITES_PER_PASSAGE)
    taken, chosen = {}, []
    for index in np.argsort(-group_cosines, kind="stable"):
        group = groups[int(index)]
        if scoring.similarity_score(float(group_cosines[index])) < within_reach:
            break
        passage = group[0].passage
        if taken.get(passage, 0) < per_passage:
            taken[passage] = taken.get(passage, 0) + 1
            chosen += group
    return chosen[:int(clip_settings.MAX_REWRITES)]


def text_judge(*, plan, vectors, image_vectors, threshold):
    """Judge one planned text against one or more images (the best image counts)."""
    image_index, image_vectors, passage_scores = _best_image_cosines(plan, vectors, image_vectors)
    best = int(np.argmax(passage_scores))
    score = passage_scores[best]
    passages = None
    if not plan.whole:
        best_passage = plan.passages[best]
        passages = {
            "count": len(plan.passages),
            "covered": plan.covered,
            "best": {**best_passage.evidence(), "score": score},
        }
    reasons = []
    # The reasons' messages are written in the text's language.
    with translation.override(plan.language):
        if scoring.is_mismatch(score, threshold):
            reasons.append(_mismatch_reason(plan=plan, score=score, threshold=threshold, best=best))
        reasons += _attribute_conflicts(
            plan=plan, vectors=vectors, image_vector=image_vectors[image_index],
            passage_scores=passage_scores, threshold=threshold,
        )
    return TextJudgement(
        score=score, threshold=threshold, image_index=image_index,
        text_truncated=not plan.covered, passages=passages, reasons=reasons,
    )


def _mismatch_reason(*, plan, score, threshold, best):
    if plan.whole:
        return {
            "code": "low_similarity", "field": "text",
            "message": _("The text scores {score} against the photo, below the threshold {threshold}.").format(
                score=f"{score:.4f}", threshold=f"{threshold:.4f}"),
            "score": score, "threshold": threshold,
        }
    count = len(plan.passages)
    return {
        "code": "passage_mismatch", "field": "text",
        "message": _(
            "None of the text's {count} passages matches the photo; the best, passage {passage}, "
            "scores {score} against the threshold {threshold}."
        ).format(count=count, passage=best + 1, score=f"{score:.4f}", threshold=f"{threshold:.4f}"),
        "score": score, "threshold": threshold, "passages": count, "passage": plan.passages[best].evidence(),
    }


def _attribute_conflicts(*, plan, vectors, image_vector, passage_scores, threshold):
    margin = float(clip_settings.ATTRIBUTE_MARGIN)
    best_rewrites = {}
    for rewrite in plan.rewrites:
        if rewrite.text not in vectors:
            continue  # its passage passes: it cannot conflict, so it was not scored
        rewrite_score = scoring.similarity_score(float(image_vector @ vectors[rewrite.text]))
        key = (rewrite.passage, rewrite.attribute)
        if key not in best_rewrites or rewrite_score > best_rewrites[key][1]:
            best_rewrites[key] = (rewrite, rewrite_score)
    reasons, reported = [], set()
    for (passage_index, attribute), (rewrite, rewrite_score) in sorted(best_rewrites.items(), key=lambda item: item[0]):
        text_score = passage_scores[passage_index]
        if not (text_score < threshold <= rewrite_score and rewrite_score >= text_score + margin):
            continue
        if (attribute, rewrite.text_says, rewrite.photo_shows) in reported:
            continue
        reported.add((attribute, rewrite.text_says, rewrite.photo_shows))
        reason = {
            "code": "attribute_conflict", "field": "text",
            "message": _("The text says {text_says} but the photo looks {photo_shows} ({attribute}).").format(
                text_says=rewrite.text_says, photo_shows=rewrite.photo_shows, attribute=attribute_word(attribute)),
            "attribute": attribute, "text_says": rewrite.text_says, "photo_shows": rewrite.photo_shows,
            "text_score": text_score, "photo_shows_score": rewrite_score, "threshold": threshold,
        }
        if attribute == OBJECT_ATTRIBUTE:
            reason.update(
                code="object_conflict",
                message=_("The text says {text_says} but the photo shows {photo_shows}.").format(
                    text_says=rewrite.text_says, photo_shows=rewrite.photo_shows),
            )
        if not plan.whole:
            reason["passage"] = plan.passages[passage_index].evidence()
        reasons.append(reason)
    return reasons


def reasons_for_field(reasons, field_name):
    """Reasons of a text judged as ``field_name`` (title, description)."""
    return [{**reason, "field": field_name} if reason.get("field") == "text" else reason for reason in reasons]


def looks_like(category_matches, *, top_k, text=""):
    """The categories the model is confident about on their own (score > 0.5), best first,
    leaving out those the text names already (they are not news to the seller)."""
    named = values_named(text, [match["category"] for match in category_matches]) if text else set()
    confident = [
        match for match in category_matches if match["score"] > CONFIDENT_CATEGORY_SCORE and match["category"] not in named
    ]
    return [{"category": match["category"], "score": match["score"]} for match in confident[:top_k]]


def suggestion(reasons, language=None):
    """One seller-facing sentence per problem, built from the reasons, in ``language`` (the text's;
    None: the active language); None for a clean match."""
    if language is None:
        return reason_types.suggestion(reasons)
    with translation.override(language):
        return reason_types.suggestion(reasons)


def _conflict_explains(reason, reasons):
    return any(other.get("code") in CONFLICT_CODES and other.get("field") == reason.get("field") for other in reasons)


def _mismatch_sentence(reason):
    sentence = _("{the_field} does not match the photo: it scores {score}, below the threshold {threshold}.").format(
        the_field=field_the(reason), score=f"{reason['score']:.3f}", threshold=f"{reason['threshold']:.3f}")
    categories = [match["category"] for match in reason.get("photo_looks_like") or []]
    if categories:
        sentence += " " + _("The photo looks like {categories}.").format(categories=", ".join(categories))
    return sentence


def _mismatch_suggestion(reason, reasons):
    if _conflict_explains(reason, reasons):
        return None  # the conflict says it better
    categories = [match["category"] for match in reason.get("photo_looks_like") or []]
    if categories:
        return _("The photo does not match {your_field}; it looks like: {categories}.").format(
            your_field=field_your(reason), categories=", ".join(categories))
    return _("The photo does not match {your_field}.").format(your_field=field_your(reason))


_SCORE_EVIDENCE = (
    Evidence("score", "Score", reason_types.SCORE), Evidence("threshold", "Threshold", reason_types.THRESHOLD),
)
_CONFLICT_EVIDENCE = (
    Evidence("text_says", "The text says", reason_types.WORD),
    Evidence("text_score", "Score as written", reason_types.SCORE),
    Evidence("photo_shows", "The photo shows", reason_types.WORD),
    Evidence("photo_shows_score", "Score with that word", reason_types.SUPPORT),
    Evidence("threshold", "Threshold", reason_types.THRESHOLD),
    Evidence("passage", "Passage", reason_types.PASSAGE),
)

reason_type_register(ReasonType(
    code="low_similarity", label="Text does not match the photo",
    about="A text scored whole is below the threshold.",
    evidence=(*_SCORE_EVIDENCE, Evidence("photo_looks_like", "The photo looks like", reason_types.CATEGORIES)),
    sentence=_mismatch_sentence, suggestion=_mismatch_suggestion,
))
reason_type_register(ReasonType(
    code="passage_mismatch", label="No passage matches the photo",
    about="A long text scored as passages: its best passage is below the threshold.",
    evidence=(
        *_SCORE_EVIDENCE, Evidence("passages", "Passages scored", reason_types.COUNT),
        Evidence("passage", "Best passage", reason_types.PASSAGE),
        Evidence("photo_looks_like", "The photo looks like", reason_types.CATEGORIES),
    ),
    sentence=lambda reason: _(
        "None of the {count} passages {of_field} matches the photo; the best scores {score}, "
        "below the threshold {threshold}."
    ).format(count=reason["passages"], of_field=field_of(reason), score=f"{reason['score']:.3f}",
             threshold=f"{reason['threshold']:.3f}"),
    suggestion=_mismatch_suggestion,
))
reason_type_register(ReasonType(
    code="attribute_conflict", label="Wrong colour, material or pattern",
    about="The text names one value of an attribute; the photo fits another value of it.",
    evidence=(Evidence("attribute", "Attribute", reason_types.WORD), *_CONFLICT_EVIDENCE),
    sentence=lambda reason: _("{the_field} says {text_says}, but the photo looks {photo_shows} ({attribute}).").format(
        the_field=field_the(reason), text_says=reason["text_says"], photo_shows=reason["photo_shows"],
        attribute=attribute_word(reason["attribute"])),
    suggestion=lambda reason, reasons: _("The photo looks {photo_shows}; {your_field} says {text_says}.").format(
        photo_shows=reason["photo_shows"], your_field=field_your(reason), text_says=reason["text_says"]),
))
reason_type_register(ReasonType(
    code="object_conflict", label="Wrong kind of item",
    about="The text names one of the catalogue's categories; the photo shows another.",
    evidence=_CONFLICT_EVIDENCE,
    sentence=lambda reason: _("{the_field} says {text_says}, but the photo shows {photo_shows}.").format(
        the_field=field_the(reason), text_says=reason["text_says"], photo_shows=reason["photo_shows"]),
    suggestion=lambda reason, reasons: _("The photo shows {photo_shows}; {your_field} says {text_says}.").format(
        photo_shows=reason["photo_shows"], your_field=field_your(reason), text_says=reason["text_says"]),
))


# Bumped when a rule changes what a stored analysis would say (3: only the
# likeliest rewrite of a failing passage is scored, within REWRITE_REACH).
RULES_VERSION = 3


def rules_key(*, adaptation_version=None, language=DEFAULT_LANGUAGE):
    """What an analysis's reasons depend on besides the model, image, text and
    threshold (the category adaptation in force and the text's language among
    them): a stored analysis is reused only under the same rules."""
    # English keeps the key it had before there were languages: its stored analyses stay reusable.
    in_language = [] if language == DEFAULT_LANGUAGE else [language, language_vocabulary(language)]
    rules = [
        RULES_VERSION, *in_language, clip_settings.ATTRIBUTES, clip_settings.ATTRIBUTE_MARGIN, clip_settings.MAX_REWRITES,
        clip_settings.REWRITES_PER_PASSAGE, clip_settings.REWRITE_REACH, clip_settings.MAX_PASSAGES, list(clip_settings.CATEGORIES), clip_settings.PROMPT_TEMPLATE,
        clip_settings.CLASSIFY_THRESHOLD, adaptation_version,
    ]
    return hashlib.sha256(json.dumps(rules, sort_keys=True, default=str).encode()).hexdigest()[:16]
