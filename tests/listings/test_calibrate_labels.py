"""clip_calibrate on the moderators' labels: provenance, bias and sample-size warnings,
confidence intervals, per-category thresholds and which labels count."""

import io
import re

import pytest
from django.core.management import call_command

from clipcheck.calibration import label_warnings, wilson_interval
from clipcheck.models import CalibratedThreshold
from clipcheck.services import thresholds as clip_services
from listings.models import Listing, ModerationDecision

pytestmark = pytest.mark.django_db


def label(is_match, score, *, sampled=False, category="", undone=False, reason_code=""):
    listing = Listing.objects.create(
        title="t", description="d", category=category, image="listings/none.png", image_sha256="0" * 64,
        status=Listing.Status.APPROVED if sampled else Listing.Status.NEEDS_REVIEW, review_sampled=sampled,
    )
    ModerationDecision.objects.create(
        listing=listing, from_status=listing.status, to_status="approved" if is_match else "rejected",
        title_score=0.99, description_score=score, threshold=0.25, model=clip_services.model_id(),
        category=category, sampled=sampled, reason_code=reason_code,
        undone_at="2026-01-01T00:00:00Z" if undone else None,
    )


def run(*args):
    output = io.StringIO()
    call_command("clip_calibrate", *args, stdout=output)
    return output.getvalue()


def test_wilson_interval_matches_the_textbook_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_labels_only_from_flagged_listings_are_reported_as_biased():
    # As in the field: everything a moderator saw was flagged, so every
    # label sits below the threshold then in force (0.25 here).
    for index in range(11):
        label(True, 0.14 + index / 100)
        label(False, 0.05 + index / 100)

    output = run()

    assert "Label provenance: 22 from listings the machine flagged, 0 from the random review sample" in output
    assert "WARNING: Biased labels: 22 of 22 come from items the machine flagged and only 0" in output
    assert "WARNING: Few labels: 11 matches and 11 mismatches" in output
    assert re.search(r"Expected at 0\.\d{4}: mismatch precision \d\.\d{3} \(95 % CI \d\.\d{3}-\d\.\d{3}\), recall", output)


def test_enough_sampled_labels_raise_no_warning_and_sampled_only_uses_them_alone():
    for index in range(30):
        label(True, 0.40 + index / 200, sampled=True)
        label(False, 0.05 + index / 200, sampled=index < 10)
    for index in range(5):
        label(True, 0.10, sampled=False)  # flagged approvals: the biased side

    output = run()
    assert "25 from listings the machine flagged, 40 from the random review sample" in output
    assert "WARNING" not in output

    sampled_only = run("--sampled-only")
    assert "0 from listings the machine flagged, 40 from the random review sample" in sampled_only
    assert "30 matches, 10 mismatches" in sampled_only


def test_undone_decisions_and_undos_are_no_labels():
    for _ in range(5):
        label(True, 0.5)
        label(False, 0.1)
    label(False, 0.9, undone=True)
    label(True, 0.05, reason_code="undo")

    assert "5 matches, 5 mismatches" in run()


def test_per_category_thresholds_need_enough_labels_of_both_classes_and_apply_stores_them():
    for index in range(6):
        label(True, 0.80 + index / 100, category="toys", sampled=True)
        label(False, 0.55 + index / 100, category="toys", sampled=True)
        label(True, 0.40 + index / 100, category="paint", sampled=True)
        label(False, 0.10 + index / 100, category="paint", sampled=True)
    for index in range(3):
        label(True, 0.5, category="hats", sampled=True)

    output = run("--per-category", "--apply")

    assert re.search(r"  hats: 3 labels; global threshold \(Calibration needs at least 5", output)
    stored = dict(CalibratedThreshold.objects.values_list("category", "threshold"))
    assert set(stored) == {"", "toys", "paint"}
    assert 0.60 < stored["toys"] < 0.80 and 0.15 < stored["paint"] < 0.40
    assert clip_services.default_threshold(category="toys") == stored["toys"]
    assert clip_services.default_threshold(category="hats") == stored[""]
    assert "Stored threshold" in output and "for category 'toys'" in output


def test_an_explicit_threshold_setting_wins_over_category_thresholds(settings):
    clip_services.calibrated_threshold_apply(threshold=0.6, source="t", counts={}, category="toys")
    assert clip_services.default_threshold(category="toys") == 0.6
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 0.3}
    assert clip_services.default_threshold(category="toys") == 0.3
    assert clip_services.category_thresholds() == {}


@pytest.mark.parametrize(("flagged", "sampled", "matches", "mismatches", "expected"), [
    (22, 0, 11, 11, ["Biased", "Few"]),
    (100, 19, 60, 59, ["Biased"]),
    (100, 20, 60, 60, []),
    (0, 40, 10, 30, ["Few"]),
])
def test_label_warnings(flagged, sampled, matches, mismatches, expected):
    warnings = label_warnings(flagged=flagged, sampled=sampled, matches=matches, mismatches=mismatches)
    assert [warning.split(" ")[0].rstrip(":") for warning in warnings] == [word for word in expected]


def test_the_audit_uses_each_categorys_calibrated_threshold(make_listing):
    from clipcheck.selectors import analyses_for_subject

    clip_services.calibrated_threshold_apply(threshold=0.0, source="t", counts={})
    clip_services.calibrated_threshold_apply(threshold=1.0, source="t", counts={}, category="paint")
    paint, toy = make_listing(category="paint"), make_listing(category="toys")

    call_command("clip_audit", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())

    assert {a.threshold for a in analyses_for_subject(subject=paint)} == {1.0}
    assert {a.threshold for a in analyses_for_subject(subject=toy)} == {0.0}
    assert Listing.objects.get(pk=paint.pk).status == Listing.Status.NEEDS_REVIEW
    assert Listing.objects.get(pk=toy.pk).status == Listing.Status.APPROVED

    explicit = io.StringIO()
    call_command("clip_audit", "--no-progress", "--recheck", "--status", "all", "--threshold", "0.0", stdout=explicit,
                 stderr=io.StringIO())
    assert {a.threshold for a in analyses_for_subject(subject=paint)} == {1.0, 0.0}


def test_an_upload_uses_its_categorys_calibrated_threshold(media_root):
    from clipcheck.images import decode_image
    from listings.services import listing_submit
    from tests.support.images import image_bytes

    clip_services.calibrated_threshold_apply(threshold=0.0, source="t", counts={})
    clip_services.calibrated_threshold_apply(threshold=1.0, source="t", counts={}, category="paint")
    def submit(category, color):
        data = image_bytes(color=color)  # another photo each: a reused one would be flagged for that
        return listing_submit(photos=[(data, decode_image(data))], title="a", description="b", category=category)

    paint, toy = submit("paint", (200, 30, 30)), submit("toys", (30, 30, 200))

    assert (paint.description_analysis.threshold, paint.listing.status) == (1.0, Listing.Status.NEEDS_REVIEW)
    assert (toy.description_analysis.threshold, toy.listing.status) == (0.0, Listing.Status.APPROVED)


def test_classify_stores_a_categorys_own_threshold_only_with_enough_labels(monkeypatch):
    from clipcheck.models import CalibratedThreshold as Stored
    from listings.labels import ClassifyLabels

    # "hats" prompts sit higher than "bags" prompts; "bags" has too few listings of its own.
    labels = ClassifyLabels(categories=["bags", "hats"], listings=70, pairs={
        "hats": [(0.70 + i / 1000, True) for i in range(40)] + [(0.40 + i / 1000, False) for i in range(40)],
        "bags": [(0.35 + i / 1000, True) for i in range(10)] + [(0.10 + i / 1000, False) for i in range(60)],
    })
    monkeypatch.setattr("listings.management.commands.clip_calibrate.classify_labels", lambda **kwargs: labels)

    output = run("--classify", "--apply")

    stored = {row.category: row.threshold for row in Stored.objects.filter(kind="classify")}
    assert set(stored) == {"", "hats"} and 0.44 < stored["hats"] < 0.70
    assert "global threshold for: bags (fewer than 30 labels of a class)" in output
    assert clip_services.classify_threshold(category="hats") == stored["hats"]
    assert clip_services.classify_threshold(category="bags") == stored[""]
    # The 10 "bags" listings sit below the global threshold: why a category wants its own once it has enough.
    assert "Quality control after (on these labels): right categories accepted 40/50 (80.0 %), wrong categories " \
        "refused 100/100 (100.0 %)" in output
