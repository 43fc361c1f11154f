"""Per-category and classify calibration on the known-answer model.

- Two categories whose texts sit on different scales: "toys" are described
  with full captions ("a red circle", matches near 0.9) and their mismatches
  name the wrong colour of the right shape (near 0.4-0.6); "paint" is
  described by colour alone ("something red", matches near 0.4) and its
  mismatches name another colour. No one threshold serves both; one per
  category does.
- Classify's prompts ("a photo of a circle", right answers near 0.56) sit
  below the caption threshold (0.7121): the guide's quality-control check
  (one expected category, ``score > 0.5``) refuses right answers until
  ``clip_calibrate --classify`` learns the prompts' own threshold from the
  catalogue. The known-answer SigLIP's score is its own probability: it is
  right before any calibration, and the calibration leaves it so.

Both run on each known-answer model (tests/knownanswer/conftest.py).
"""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from clipcheck.calibration import OperatingPoint
from clipcheck.images import decode_image
from clipcheck.models import CalibratedThreshold
from clipcheck.selectors import analyses_for_subject
from clipcheck.services import thresholds as clip_services
from clipcheck.services.calibration_data import similarity_scores
from knownanswer import domain
from listings.models import Listing, ModerationDecision

pytestmark = pytest.mark.django_db


def png(picture):
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def calibrated_thresholds_in_force(settings, media_root):
    """No explicit CLIPCHECK THRESHOLD: the calibrated ones apply (it would win over them)."""
    settings.CLIPCHECK = {key: value for key, value in settings.CLIPCHECK.items() if key != "THRESHOLD"}
    settings.CLIPCHECK["CATEGORIES"] = list(domain.SHAPES)
    clip_services.calibrated_threshold_forget()
    yield
    clip_services.calibrated_threshold_forget()


def category_pairs(seed_base, count):
    """(category, picture, text, is_match) for both categories."""
    pairs = []
    for index in range(count):
        shape, colour = domain.SHAPES[index % 6], domain.COLOURS[index % 8]
        wrong_colour = domain.COLOURS[(index + 3) % 8]
        picture = domain.render(shape, colour, seed=seed_base + index, size=96)
        pairs += [
            ("toys", picture, domain.caption(shape, colour, index % 10), True),
            ("toys", picture, domain.caption(shape, wrong_colour, index % 10), False),
            ("paint", picture, domain.colour_caption(colour, 1 + index % 3), True),
            ("paint", picture, domain.colour_caption(wrong_colour, 1 + index % 3), False),
        ]
    return pairs


def scored(pairs):
    scores = similarity_scores(
        images=[decode_image(png(picture)) for _, picture, _, _ in pairs], texts=[text for _, _, text, _ in pairs]
    )
    return [(category, score, is_match) for (category, _, _, is_match), score in zip(pairs, scores)]


def f1(rows, threshold_of):
    """The mismatch F1 of the verdicts ``score < threshold_of(category)``."""
    flagged_mismatches = sum(1 for c, s, m in rows if s < threshold_of(c) and not m)
    flagged_matches = sum(1 for c, s, m in rows if s < threshold_of(c) and m)
    mismatches = sum(1 for _, _, m in rows if not m)
    matches = len(rows) - mismatches
    return OperatingPoint(
        threshold=0.0, flagged_mismatches=flagged_mismatches, flagged_matches=flagged_matches,
        missed_mismatches=mismatches - flagged_mismatches, passed_matches=matches - flagged_matches,
    ).f1


def test_per_category_thresholds_beat_one_global_threshold(calibrated_thresholds_in_force, known_answer):
    model = clip_services.model_id()
    for category, score, is_match in scored(category_pairs(9_100_000, 30)):
        listing = Listing.objects.create(
            title="t", description="d", category=category, image="listings/none.png", image_sha256="0" * 64,
            status=Listing.Status.APPROVED, review_sampled=True,
        )
        ModerationDecision.objects.create(
            listing=listing, from_status="approved", to_status="approved" if is_match else "rejected",
            reason_code="" if is_match else "misleading_description", title_score=1.0, description_score=score,
            threshold=known_answer.threshold, model=model, category=category, sampled=True,
        )
    output = io.StringIO()

    call_command("clip_calibrate", "--per-category", "--apply", stdout=output)

    report = output.getvalue()
    assert "0 from listings the machine flagged, 120 from the random review sample" in report
    assert "Biased labels" not in report
    global_threshold = CalibratedThreshold.objects.get(category="").threshold
    per_category = dict(CalibratedThreshold.objects.exclude(category="").values_list("category", "threshold"))
    assert set(per_category) == {"toys", "paint"}
    assert clip_services.default_threshold(category="toys") == per_category["toys"]
    assert clip_services.default_threshold(category="shoes") == global_threshold

    held_out = scored(category_pairs(9_300_000, 30))
    global_f1 = f1(held_out, lambda category: global_threshold)
    category_f1 = f1(held_out, lambda category: per_category[category])
    print(f"\nheld-out mismatch F1 over toys+paint ({len(held_out)} pairs): one global threshold "
          f"{global_threshold:.4f}: F1 {global_f1:.3f}; per-category thresholds toys {per_category['toys']:.4f}, "
          f"paint {per_category['paint']:.4f}: F1 {category_f1:.3f}")
    assert category_f1 >= 0.95
    if known_answer.family == "siglip":
        # Its colour-only and full captions share one scale: one threshold already serves
        # both, and a category's own never does worse.
        assert category_f1 >= global_f1
    else:
        assert category_f1 > global_f1 + 0.05

    # /clip/analyze with a category uses that category's threshold; without, the global one.
    shape, colour = "star", "blue"
    upload = png(domain.render(shape, colour, seed=9_500_000, size=96))
    api = APIClient()

    def analyze(**fields):
        file = SimpleUploadedFile("x.png", upload, content_type="image/png")
        return api.post("/clip/analyze", {"file": file, **fields}, format="multipart").json()

    paint = analyze(text=domain.colour_caption(colour, 1), category="paint")
    assert paint["threshold_used"] == per_category["paint"] and paint["is_mismatch"] is False
    unknown = analyze(text=domain.colour_caption(colour, 1))
    assert unknown["threshold_used"] == global_threshold
    assert analyze(text="x", category="paint", threshold=0.9)["threshold_used"] == 0.9
    assert api.post("/clip/analyze", {"file": SimpleUploadedFile("x.png", upload, content_type="image/png"),
                                      "text": "x", "category": "c" * 101}, format="multipart").status_code == 400


def test_a_listing_check_uses_its_categorys_threshold(calibrated_thresholds_in_force, make_known_listing,
                                                      known_answer):
    # Far above a colour-only caption's score, and below it (the SigLIP's cosines sit lower).
    paint = {"clip": 0.3, "siglip": 0.1}[known_answer.family]
    clip_services.calibrated_threshold_apply(threshold=0.7, source="test", counts={})
    clip_services.calibrated_threshold_apply(threshold=paint, source="test", counts={}, category="paint")
    from listings import services

    painted = make_known_listing("circle", "red", "paint", description=domain.colour_caption("red", 1))
    toy = make_known_listing("circle", "red", "toys", description=domain.colour_caption("red", 1), seed=9_700_001)

    services.listings_check(listings=[painted, toy])

    painted.refresh_from_db()
    toy.refresh_from_db()
    assert toy.status == Listing.Status.NEEDS_REVIEW
    if known_answer.sigmoid:
        # Its own probability that the photo (a circle) shows "paint" is ~0: the category, not
        # the text, sends it to review.
        assert [(r["code"], r["field"]) for r in painted.reasons] == [("category_conflict", "category")]
    else:
        assert painted.status == Listing.Status.APPROVED
    assert {analysis.threshold for analysis in analyses_for_subject(subject=painted)} == {paint}
    assert {analysis.threshold for analysis in analyses_for_subject(subject=toy)} == {0.7}


@pytest.fixture
def make_known_listing(media_root):
    def make(shape, colour, category, *, seed=9_700_000, description=None):
        data = png(domain.render(shape, colour, seed=seed, size=96))
        listing = Listing(
            title=domain.caption(shape, colour), description=description or domain.caption(shape, colour, 1),
            category=category, image_sha256=decode_image(data).sha256,
        )
        listing.image.save("photo.png", ContentFile(data), save=False)
        listing.save()
        return listing

    return make


def quality_control(api, cases):
    """The guide's pipeline: classify with the one expected category, accept when ``score > 0.5``."""
    right_accepted = wrong_refused = 0
    for data, right, wrong in cases:
        for category, should_apply in ((right, True), *((category, False) for category in wrong)):
            file = SimpleUploadedFile("x.png", data, content_type="image/png")
            response = api.post("/clip/classify", {"file": file, "categories": category}, format="multipart")
            assert response.status_code == 200, response.content
            applies = response.json()["top_matches"][0]["score"] > 0.5
            if should_apply:
                right_accepted += applies
            else:
                wrong_refused += not applies
    rights = len(cases)
    wrongs = sum(len(wrong) for _, _, wrong in cases)
    return right_accepted / rights, wrong_refused / wrongs


def test_classify_calibration_makes_the_quality_control_check_right(calibrated_thresholds_in_force,
                                                                     make_known_listing, known_answer):
    # The caption threshold calibrated on this model's captions, as a deployment would have it.
    clip_services.calibrated_threshold_apply(threshold=known_answer.threshold, source="test", counts={})
    for index in range(60):
        shape, colour = domain.SHAPES[index % 6], domain.COLOURS[index % 8]
        make_known_listing(shape, colour, shape, seed=9_800_000 + index)
    # Sellers sometimes pick the wrong category; moderators said so.
    for index in range(4):
        listing = make_known_listing("circle", domain.COLOURS[index], "square", seed=9_850_000 + index)
        ModerationDecision.objects.create(
            listing=listing, from_status="needs_review", to_status="rejected", reason_code="wrong_category",
            category="square",
        )
    cases = []
    for index in range(60):
        shape, colour = domain.SHAPES[index % 6], domain.COLOURS[(index * 5) % 8]
        data = png(domain.render(shape, colour, seed=9_900_000 + index, size=(96, 128, 224)[index % 3]))
        cases.append((data, shape, [domain.SHAPES[(index + 1) % 6], domain.SHAPES[(index + 3) % 6]]))
    api = APIClient()
    before = quality_control(api, cases)
    output = io.StringIO()

    call_command("clip_calibrate", "--classify", "--apply", stdout=output)

    report = output.getvalue()
    assert "64 catalogue listings in 6 categories, 4 of them with a category moderators rejected" in report
    stored = CalibratedThreshold.objects.filter(kind="classify")
    # 10 listings per category: too few for a category's own threshold; the global one serves them.
    assert stored.filter(category="").count() == 1 and not stored.exclude(category="").exists()
    after = quality_control(api, cases)
    print(f"\nquality control (classify one expected category, score > 0.5) on {len(cases)} held-out pictures: "
          f"before calibration right categories accepted {before[0]:.1%}, wrong refused {before[1]:.1%}; "
          f"after --classify right accepted {after[0]:.1%}, wrong refused {after[1]:.1%} "
          f"(global classify threshold {stored.get(category='').threshold:.4f}, "
          f"caption threshold {known_answer.threshold})")
    if known_answer.sigmoid:
        # The model's own probability: right with no calibration, and the calibration changes no score.
        assert before[0] >= 0.95 and before[1] >= 0.95
        assert after == before
    else:
        assert before[0] < 0.5
    assert after[0] >= 0.95 and after[1] >= 0.95
