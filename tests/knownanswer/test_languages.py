"""Language parity on known answers: the known-answer SigLIP, trained with captions in English,
German, French and Spanish (knownanswer/domain.py), judged through the production service.

In each language a caption naming the wrong colour must come back as an
``attribute_conflict`` naming both colours in that language's words (``text_says``,
``photo_shows``: the value names of ``ATTRIBUTES_BY_LANGUAGE``), and a caption
naming the drawn colour and shape must pass; each language within two points of
English. The figures are printed (run with -s).

The service runs with the known-answer suites' settings, ``REWRITE_REACH`` left at
its default: the model family's, 0.2 on a sigmoid-trained model (at CLIP's 0.1
some French rewrites naming the drawn colour were not scored at all: French wrong
colours found 95.0% instead of 96.0%, 2.3 points behind English).
"""

import io

import pytest
from rest_framework.test import APIClient

from knownanswer import domain
from tests.support.users import user_with_token

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("known_answer", ["siglip"], indirect=True)]

# Seeds far from the training seeds and from the other known-answer tests.
SEED_BASE = 7_500_000
CASES = 480  # per language: every shape in every colour ten times (one miss is 0.2 points)
DETECTED, PASSING, PARITY = 0.95, 0.97, 0.02


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def cases():
    """(shape, colour, wrong colour, seed, size): every shape in every colour in turn, the same in every language."""
    pairs = [(s, c) for s in domain.SHAPES for c in domain.COLOURS]
    drawn = []
    for index in range(CASES):
        shape, colour = pairs[index % len(pairs)]
        seed = SEED_BASE + index
        written = domain.COLOURS[(domain.COLOURS.index(colour) + 1 + seed % 7) % len(domain.COLOURS)]
        drawn.append((shape, colour, written, seed, (64, 96, 128, 224)[index % 4]))
    return drawn


def analyze_batch(api, batch_root, items, language):
    """``items``: (image file name, text) → the results, in order, judged in ``language``."""
    results = []
    for start in range(0, len(items), 256):
        payload = [{"image_path": name, "text": text} for name, text in items[start:start + 256]]
        response = api.post("/clip/analyze-batch", {"items": payload, "language": language}, format="json")
        assert response.status_code == 200, response.content
        results += response.json()["results"]
    assert all("error" not in result for result in results), results
    return results


def language_figures(api, batch_root, language):
    """``(wrong colour found as attribute_conflict naming both, matching caption passes)`` as fractions."""
    wrong, right, expected = [], [], []
    for shape, colour, written, seed, size in cases():
        name = f"{shape}-{colour}-{seed}-{size}.png"
        if not (batch_root / name).exists():
            (batch_root / name).write_bytes(png(domain.render(shape, colour, seed, size)))
        template = seed % len(domain.FULL_TEMPLATES)
        wrong.append((name, domain.caption(shape, written, template, language=language)))
        right.append((name, domain.caption(shape, colour, template, language=language)))
        expected.append({
            "code": "attribute_conflict", "attribute": "colour",
            "text_says": domain.COLOUR_WORDS[language][written][0],
            "photo_shows": domain.COLOUR_WORDS[language][colour][0],
        })
    wrong_results = analyze_batch(api, batch_root, wrong, language)
    right_results = analyze_batch(api, batch_root, right, language)
    detected = sum(
        any(want.items() <= reason.items() for reason in result["reasons"])
        for want, result in zip(expected, wrong_results, strict=True)
    )
    passing = sum(not result["is_mismatch"] for result in right_results)
    return detected / CASES, passing / CASES, wrong_results


def test_every_language_finds_wrong_colours_and_passes_right_captions_as_english_does(batch_root, known_answer, settings):
    assert settings.CLIPCHECK.get("REWRITE_REACH") is None  # the family's default
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {user_with_token(permissions=['clipcheck.run_batch_analysis'])[1]}")

    figures = {}
    for language in domain.LANGUAGES:
        detected, passing, wrong_results = language_figures(api, batch_root, language)
        figures[language] = (detected, passing)
        print(f"\n[known answers, {known_answer.family}] {language}: wrong colour -> attribute_conflict naming both "
              f"colours {detected:.1%}, right caption passes {passing:.1%} ({CASES} each)")
        if language != "en":
            # The seller reads it in the text's language.
            conflict, result = next(
                (reason, result) for result in wrong_results for reason in result["reasons"]
                if reason["code"] == "attribute_conflict"
            )
            assert conflict["text_says"] in conflict["message"] and conflict["photo_shows"] in result["suggestion"]
            assert "The photo" not in result["suggestion"] and "The text" not in conflict["message"]

    english_detected, english_passing = figures["en"]
    for language, (detected, passing) in figures.items():
        assert detected >= DETECTED, (language, figures)
        assert passing >= PASSING, (language, figures)
        assert abs(detected - english_detected) <= PARITY, (language, figures)
        assert abs(passing - english_passing) <= PARITY, (language, figures)
