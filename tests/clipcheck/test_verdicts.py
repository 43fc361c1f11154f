"""The verdict rules on embeddings (clipcheck.verdicts), without a model."""

import numpy as np
import pytest

from clipcheck import verdicts
from clipcheck.engine.families import CLIP
from clipcheck.passages import Passage
from tests.support.clip_settings import set_clip_settings


def unit(*values):
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def plan_for(text, rewrites=()):
    return verdicts.TextPlan(
        text=text, whole=True, passages=[Passage(0, 0, len(text), text)], covered=True,
        rewrites=[verdicts.Rewrite(0, "colour", "red", value, rewritten) for value, rewritten in rewrites],
    )


IMAGE = unit(1, 0, 0)


def judge(plan, vectors, threshold=0.5):
    return verdicts.text_judge(plan=plan, vectors=vectors, image_vectors=[IMAGE], threshold=threshold)


@pytest.mark.parametrize(
    ("text_cosine", "rewrite_cosine", "conflict"),
    [
        (0.30, 0.60, True),   # the rewrite passes and beats the text by more than the margin
        (0.30, 0.45, False),  # the rewrite does not pass the threshold
        (0.55, 0.80, False),  # the text itself passes: no conflict
        (0.49, 0.50, False),  # passes, but within the margin (0.02)
    ],
)
def test_an_attribute_conflict_needs_a_passing_rewrite_that_beats_a_failing_text(settings, text_cosine, rewrite_cosine, conflict):
    set_clip_settings(settings, ATTRIBUTE_MARGIN=0.02)
    plan = plan_for("a red star", [("blue", "a blue star")])
    vectors = {
        "a red star": unit(text_cosine, np.sqrt(1 - text_cosine**2), 0),
        "a blue star": unit(rewrite_cosine, 0, np.sqrt(1 - rewrite_cosine**2)),
    }

    reasons = judge(plan, vectors).reasons

    conflicts = [r for r in reasons if r["code"] == "attribute_conflict"]
    assert bool(conflicts) is conflict
    if conflict:
        assert conflicts[0] | {"message": ""} == {
            "code": "attribute_conflict", "field": "text", "message": "", "attribute": "colour", "text_says": "red",
            "photo_shows": "blue", "text_score": pytest.approx(text_cosine, abs=1e-4),
            "photo_shows_score": pytest.approx(rewrite_cosine, abs=1e-4), "threshold": 0.5,
        }


def test_a_text_is_judged_against_its_best_image_and_names_it():
    plan = plan_for("a red star")
    vectors = {"a red star": unit(0, 1, 0)}
    judgement = verdicts.text_judge(
        plan=plan, vectors=vectors, image_vectors=np.stack([unit(1, 0, 0), unit(0.2, 1, 0)]), threshold=0.5
    )
    assert judgement.image_index == 1 and not judgement.is_mismatch and judgement.reasons == []


def test_categories_are_named_only_above_one_half():
    matches = [{"category": "shoe", "score": 0.91}, {"category": "boot", "score": 0.5}, {"category": "bag", "score": 0.0}]
    assert verdicts.looks_like(matches, top_k=5) == [{"category": "shoe", "score": 0.91}]
    assert verdicts.looks_like(matches[1:], top_k=5) == []


def test_the_suggestion_is_built_from_the_reasons():
    assert verdicts.suggestion([]) is None
    conflict = {"code": "attribute_conflict", "field": "title", "text_says": "red", "photo_shows": "blue", "message": ""}
    low = {"code": "low_similarity", "field": "title", "message": "", "photo_looks_like": []}
    # The conflict explains the title's mismatch better than "does not match".
    assert verdicts.suggestion([low, conflict]) == "The photo looks blue; your title says red."
    described = {**low, "field": "description", "photo_looks_like": [{"category": "lamp", "score": 0.9}]}
    assert verdicts.suggestion([described]) == "The photo does not match your description; it looks like: lamp."
    silent = {**low, "field": "description"}
    assert verdicts.suggestion([silent]) == "The photo does not match your description."
    category = {"code": "category_conflict", "field": "category", "category": "shoes", "photo_shows": "bags", "message": ""}
    assert verdicts.suggestion([category]) == "The photo looks like bags, not shoes: check the category."


class WordEngine:
    """A stand-in engine whose text embedding is the normalised sum of its words'
    vectors, recording every batch of texts it encodes."""

    max_text_tokens = 77
    model_family = CLIP
    WORDS = ("a", "red", "blue", "green", "yellow", "black", "star", "lamp")

    def __init__(self):
        self.batches = []

    def vector(self, text):
        summed = sum(np.eye(len(self.WORDS), dtype=np.float32)[self.WORDS.index(word)] * (0.1 if word == "a" else 1.0)
                     for word in text.lower().split())
        return summed / np.linalg.norm(summed)

    def count_tokens(self, texts):
        return [len(text.split()) + 2 for text in texts]

    def encode_texts(self, texts):
        self.batches.append(list(texts))
        return np.stack([self.vector(text) for text in texts]), [False] * len(texts)


COLOURS = {"colour": ["red", "blue", "green", "yellow", "black"]}


def judge_with(engine, text, image, threshold):
    plan = verdicts.text_plan(text=text, engine=engine)
    judgement, = verdicts.texts_judge(plans=[plan], image_vector_groups=[[image]], thresholds=[threshold], engine=engine)
    rewrites_encoded = [t for batch in engine.batches for t in batch if t != text and t not in COLOURS["colour"]]
    return judgement, rewrites_encoded


def test_a_failing_text_scores_only_its_likeliest_rewrite(settings):
    """Of the four other colours, only the one the photo fits is encoded (it was all four)."""
    set_clip_settings(settings, ATTRIBUTES=COLOURS, CATEGORIES=["star"])
    engine = WordEngine()
    blue_star = engine.vector("blue star")

    judgement, rewrites_encoded = judge_with(engine, "a red star", blue_star, threshold=0.6)

    assert rewrites_encoded == ["a blue star"] and judgement.rewrites_scored == 1
    conflict, = [reason for reason in judgement.reasons if reason["code"] == "attribute_conflict"]
    assert (conflict["text_says"], conflict["photo_shows"]) == ("red", "blue")
    # The values' own embeddings are encoded once per engine, not once per answer.
    engine.batches.clear()
    judge_with(engine, "a red star", blue_star, threshold=0.6)
    assert engine.batches == [["a red star"], ["a blue star"]]


def test_a_text_no_single_word_could_lift_scores_no_rewrite(settings):
    """A photo of something else altogether: every rewrite is predicted far below the threshold."""
    set_clip_settings(settings, ATTRIBUTES=COLOURS, CATEGORIES=["star"], REWRITE_REACH=0.1)
    engine = WordEngine()

    judgement, rewrites_encoded = judge_with(engine, "a red star", engine.vector("lamp"), threshold=0.6)

    assert rewrites_encoded == [] and judgement.rewrites_scored == 0
    assert [reason["code"] for reason in judgement.reasons] == ["low_similarity"]


def test_more_rewrites_per_passage_can_be_asked_for(settings):
    set_clip_settings(settings, ATTRIBUTES=COLOURS, CATEGORIES=["star"], REWRITES_PER_PASSAGE=3, REWRITE_REACH=1.0)
    engine = WordEngine()

    _, rewrites_encoded = judge_with(engine, "a red star", engine.vector("blue star"), threshold=0.6)

    assert len(rewrites_encoded) == 3 and rewrites_encoded[0] == "a blue star"


def test_concurrent_first_requests_encode_the_attribute_values_once():
    import threading
    import time

    class SlowEngine:
        calls = []

        def encode_texts(self, texts):
            self.calls.append(list(texts))
            time.sleep(0.05)
            return [np.ones(3) / np.sqrt(3) for _ in texts], False

    engine = SlowEngine()
    barrier = threading.Barrier(6)

    def ask():
        barrier.wait()
        verdicts.values_vectors(values=["red", "blue", "green"], engine=engine)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.calls == [["blue", "green", "red"]]


# Texts in other languages: each word of the known-answer domain stands for its English concept.

class ConceptEngine(WordEngine):
    """A ``WordEngine`` that reads every form of the domain's colours and shapes in the four languages as
    the English word (other words count little), so a German text and its English twin embed alike."""

    def __init__(self):
        super().__init__()
        from knownanswer import domain

        self.concepts = {word: word for word in self.WORDS}
        for language in domain.LANGUAGES:
            for colour, forms in domain.COLOUR_WORDS[language].items():
                self.concepts.update({form.casefold(): colour for form in forms if colour in self.WORDS})
            for shape, (noun, _) in domain.SHAPE_WORDS[language].items():
                if shape in self.WORDS:
                    self.concepts[noun.casefold()] = shape

    def vector(self, text):
        eye = np.eye(len(self.WORDS), dtype=np.float32)
        summed = sum(
            eye[self.WORDS.index(self.concepts[word])] if word in self.concepts else eye[0] * 0.1
            for word in text.casefold().replace(",", " ").split()
        )
        return summed / np.linalg.norm(summed)


@pytest.mark.parametrize(("language", "text", "says", "shows", "rewrite", "message", "advice"), [
    ("de", "ein roter Stern", "rot", "blau", "ein blauer Stern",
     "Im Text steht „rot“, das Foto zeigt aber „blau“ (Farbe).", "Das Foto zeigt „blau“; Ihr Text nennt „rot“."),
    ("fr", "une étoile verte", "vert", "bleu", "une étoile bleue",
     "Le texte indique « vert », mais la photo montre « bleu » (couleur).",
     "La photo montre « bleu » ; votre texte indique « vert »."),
    ("es", "una estrella roja", "rojo", "azul", "una estrella azul",
     "El texto dice «rojo», pero la foto muestra «azul» (color).", "La foto muestra «azul»; su texto dice «rojo»."),
])
def test_a_conflict_is_found_with_the_texts_vocabulary_and_reported_in_its_language(
        settings, language, text, says, shows, rewrite, message, advice):
    set_clip_settings(settings, CATEGORIES=["star"])
    engine = ConceptEngine()
    plan = verdicts.text_plan(text=text, engine=engine, language=language)
    judgement, = verdicts.texts_judge(plans=[plan], image_vector_groups=[[engine.vector("blue star")]],
                                      thresholds=[0.8], engine=engine)

    conflict, = [reason for reason in judgement.reasons if reason["code"] == "attribute_conflict"]
    assert (conflict["attribute"], conflict["text_says"], conflict["photo_shows"]) == ("colour", says, shows)
    assert conflict["message"] == message
    assert rewrite in [t for batch in engine.batches for t in batch]  # the inflected form was scored
    assert verdicts.suggestion(judgement.reasons, language=language) == advice
    # Read in English, the same text names no English colour: nothing to rewrite, no conflict.
    english = verdicts.text_plan(text=text, engine=engine)
    assert english.rewrites == []


def test_the_rules_key_tells_languages_apart_and_keeps_englishs():
    assert verdicts.rules_key() == verdicts.rules_key(language="en")
    keys = {verdicts.rules_key(language=language) for language in ("en", "de", "fr", "es")}
    assert len(keys) == 4


def test_every_languages_forms_are_encoded_before_traffic(settings):
    set_clip_settings(settings, CATEGORIES=["star", "lamp"])
    engine = ConceptEngine()
    verdicts.vocabulary_warm_up(engine)
    encoded = {text for batch in engine.batches for text in batch}
    assert {"red", "roter", "bleue", "amarillas", "Leder", "à pois", "star", "lamp"} <= encoded


def test_a_form_read_two_ways_scores_both_readings_of_the_likeliest_value(settings):
    """Spanish "verde" may be masculine or feminine: "rojo" is chosen as a value and both readings are scored."""
    set_clip_settings(settings, CATEGORIES=["star"])
    engine = ConceptEngine()
    plan = verdicts.text_plan(text="una estrella verde", engine=engine, language="es")
    assert verdicts.rewrite_rows(plan) == 2  # what admission charges: both readings of one value

    judgement, = verdicts.texts_judge(plans=[plan], image_vector_groups=[[engine.vector("red star")]],
                                      thresholds=[0.8], engine=engine)

    assert judgement.rewrites_scored == 2
    assert {"una estrella rojo", "una estrella roja"} <= {t for batch in engine.batches for t in batch}
    conflict, = [reason for reason in judgement.reasons if reason["code"] == "attribute_conflict"]
    assert (conflict["text_says"], conflict["photo_shows"]) == ("verde", "rojo")


def test_the_rewrite_reach_is_the_model_familys_unless_configured(settings):
    from clipcheck.engine.families import SIGLIP

    sigmoid = type("SigmoidEngine", (), {"model_family": SIGLIP})()
    set_clip_settings(settings, REWRITE_REACH=None)
    assert verdicts.rewrite_reach(WordEngine()) == 0.1
    assert verdicts.rewrite_reach(sigmoid) == 0.2
    set_clip_settings(settings, REWRITE_REACH=0.05)
    assert verdicts.rewrite_reach(sigmoid) == verdicts.rewrite_reach(WordEngine()) == 0.05
