"""manage.py clip_calibrate, and the calibrated threshold as the default of the API and the audit."""

import csv
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from clipcheck.images import decode_image
from clipcheck.models import Analysis, CalibratedThreshold
from clipcheck.services import calibration_data, thresholds
from listings.models import Listing, ModerationDecision
from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes

pytestmark = pytest.mark.django_db


def run_calibrate(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("clip_calibrate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def threshold_in(output, label):
    found = re.search(re.escape(label) + r": (\d\.\d{4})", output)
    assert found, f"{label!r} not in:\n{output}"
    return float(found.group(1))


def decide(to_status, title_score, description_score, *, model=None, listing=None):
    listing = listing or Listing.objects.create(
        title="t", description="d", image="listings/none.png", image_sha256="0" * 64, status=Listing.Status.NEEDS_REVIEW
    )
    ModerationDecision.objects.create(
        listing=listing, from_status=listing.status, to_status=to_status, title_score=title_score,
        description_score=description_score, threshold=0.25, model=model or thresholds.model_id(),
    )
    return listing


@pytest.fixture
def separable_decisions():
    """5 approvals with weaker scores 0.30-0.34 and 6 rejections with 0.10-0.15 (one after an approval)."""
    for index in range(5):
        decide("approved", 0.50, 0.30 + index / 100)  # the description is the weaker text
    for index in range(5):
        decide("rejected", 0.10 + index / 100, 0.60)  # the title is
    changed_mind = decide("approved", 0.40, 0.40)
    decide("rejected", 0.15, 0.40, listing=changed_mind)
    decide("needs_review", 0.01, 0.01)  # a flag is no label
    decide("approved", 0.01, 0.01, model="another/model")  # another model's scale


def test_moderators_decisions_give_the_threshold(separable_decisions):
    output, _ = run_calibrate()

    assert "Labels from moderation" in output and "5 matches, 6 mismatches" in output
    best = threshold_in(output, "F1-optimal threshold")
    assert 0.15 < best < 0.30
    assert "precision 1.000, recall 1.000, F1 1.000" in output
    assert "flags 6 of the mismatches and 0 matches" in output
    assert re.search(r"F1 +" + re.escape(f"{best:.4f}") + r" +1\.000 +1\.000 +1\.000 +6 +0 +0 +5", output)
    assert not CalibratedThreshold.objects.exists()


@pytest.mark.parametrize(("matches", "mismatches"), [(4, 10), (10, 4), (0, 0)])
def test_too_few_labels_of_either_class_are_refused(matches, mismatches):
    for _ in range(matches):
        decide("approved", 0.4, 0.4)
    for _ in range(mismatches):
        decide("rejected", 0.1, 0.1)

    with pytest.raises(CommandError, match=f"at least 5 labelled matches .* have {matches} matches and {mismatches}"):
        run_calibrate("--apply")

    assert not CalibratedThreshold.objects.exists()


def test_a_target_precision_picks_the_highest_recall_threshold_reaching_it():
    for score in (0.22, 0.30, 0.33, 0.35, 0.40, 0.45):
        decide("approved", score, 0.9)
    for score in (0.10, 0.15, 0.20, 0.24, 0.31):
        decide("rejected", score, 0.9)

    output, _ = run_calibrate("--target-precision", "1", "--apply")

    strict = threshold_in(output, "Threshold for precision >= 1")
    assert strict <= 0.22
    stored = CalibratedThreshold.objects.get()
    assert stored.threshold == strict and stored.source == "moderation"
    assert stored.counts["rule"] == "target_precision" and stored.counts["precision"] == 1.0
    assert (stored.counts["flagged_mismatches"], stored.counts["flagged_matches"]) == (3, 0)
    assert (stored.counts["matches"], stored.counts["mismatches"]) == (6, 5)


def test_an_unreachable_target_precision_applies_nothing():
    for _ in range(5):
        decide("approved", 0.2, 0.9)
        decide("rejected", 0.2, 0.9)

    with pytest.raises(CommandError, match="no threshold reaches a precision of 0.9"):
        run_calibrate("--target-precision", "0.9", "--apply")

    assert not CalibratedThreshold.objects.exists()


def analyze(seller_client, text="a red shoe"):
    upload = SimpleUploadedFile("photo.png", image_bytes(), content_type="image/png")
    return seller_client.post("/clip/analyze", {"file": upload, "text": text}).json()


def test_apply_makes_the_api_and_the_audit_use_the_threshold(seller_client, separable_decisions, media_root):
    assert analyze(seller_client)["threshold_used"] == 0.25

    output, _ = run_calibrate("--apply")

    best = threshold_in(output, "F1-optimal threshold")
    assert f"Stored threshold {best:g}" in output
    assert analyze(seller_client, "a blue bag")["threshold_used"] == best
    stored = CalibratedThreshold.objects.get()
    assert (stored.model, stored.counts["rule"], stored.counts["f1"]) == (thresholds.model_id(), "best_f1", 1.0)

    listing = Listing(title="lamp", description="a desk lamp", image_sha256=decode_image(image_bytes()).sha256)
    listing.image.save("photo.png", io.BytesIO(image_bytes()), save=False)
    listing.save()
    call_command("clip_audit", "--no-progress", stdout=io.StringIO())
    assert set(Analysis.objects.filter(source="audit").values_list("threshold", flat=True)) == {best}


def test_an_explicit_threshold_setting_wins_over_the_calibrated_one(seller_client, settings, separable_decisions):
    set_clip_settings(settings, THRESHOLD=0.3)

    output, _ = run_calibrate("--apply")

    assert "CLIPCHECK THRESHOLD is set explicitly (0.3) and wins" in output
    assert CalibratedThreshold.objects.exists()
    assert analyze(seller_client)["threshold_used"] == 0.3
    assert thresholds.default_threshold() == 0.3


def test_the_calibrated_threshold_is_cached_briefly(settings, django_assert_num_queries):
    model = thresholds.model_id()
    CalibratedThreshold.objects.create(model=model, threshold=0.21, source="moderation")
    assert thresholds.default_threshold() == 0.21

    # Stored by another process: this one keeps its cached value, without a query.
    CalibratedThreshold.objects.create(model=model, threshold=0.23, source="moderation")
    with django_assert_num_queries(0):
        assert thresholds.default_threshold() == 0.21

    set_clip_settings(settings, CALIBRATION_CACHE_SECONDS=0)
    assert thresholds.default_threshold() == 0.23
    CalibratedThreshold.objects.create(model="another/model", threshold=0.5, source="moderation")
    assert thresholds.default_threshold() == 0.23


# CSV


def write_pairs(directory, rows):
    path = directory / "pairs.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture
def labelled_csv(tmp_path):
    """Pairs labelled by the test model's own scores: the 6 best are matches, the 6 worst mismatches."""
    images = []
    for index in range(4):
        data = image_bytes(format="JPEG", color=(60 * index, 200 - 40 * index, 90))
        (tmp_path / f"photo{index}.jpg").write_bytes(data)
        images.append((f"photo{index}.jpg", decode_image(data)))
    texts = ["a red shoe", "a blue bag", "a green lamp"]
    pairs = [(name, image, text) for name, image in images for text in texts]
    scores = calibration_data.similarity_scores(images=[image for _, image, _ in pairs], texts=[text for *_, text in pairs])
    ranked = sorted(zip(scores, pairs), key=lambda item: item[0])
    assert ranked[5][0] < ranked[6][0], "the test model gives tied scores"
    rows = [
        (name, text, "match" if rank >= 6 else ("mismatch" if rank % 2 else "0"))
        for rank, (_, (name, _, text)) in enumerate(ranked)
    ]
    return write_pairs(tmp_path, rows), ranked[5][0], ranked[6][0]


def test_a_csv_of_labelled_pairs_gives_the_threshold(labelled_csv):
    path, highest_mismatch, lowest_match = labelled_csv

    output, errors = run_calibrate("--csv", str(path), "--batch-size", "5", "--target-precision", "0.99")

    assert f"Labels from csv:{path}" in output and "6 matches, 6 mismatches" in output
    best = threshold_in(output, "F1-optimal threshold")
    assert highest_mismatch < best < lowest_match
    assert "precision 1.000, recall 1.000, F1 1.000" in output
    assert threshold_in(output, "Threshold for precision >= 0.99") == best
    assert errors == ""


def test_csv_rows_whose_image_is_unusable_are_skipped_and_reported(labelled_csv, tmp_path):
    path, _, _ = labelled_csv
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerows([("broken.png", "a cat", "match"), ("missing.png", "a dog", "1")])

    output, errors = run_calibrate("--csv", str(path))

    assert "6 matches, 6 mismatches" in output
    assert "Line 14 skipped:" in errors and "broken.png" in errors
    assert "Line 15 skipped:" in errors and "missing.png" in errors


@pytest.mark.parametrize(("rows", "message"), [
    ([("photo.jpg", "a shoe", "maybe")], "Line 2: label 'maybe' is not match, mismatch, 1 or 0"),
    ([("", "a shoe", "match")], "Line 2: image_path and text must not be empty"),
])
def test_malformed_csv_rows_are_refused(tmp_path, rows, message):
    with pytest.raises(CommandError, match=message):
        run_calibrate("--csv", str(write_pairs(tmp_path, rows)))


def test_a_csv_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("path,caption,label\nphoto.jpg,a shoe,match\n")

    with pytest.raises(CommandError, match="must have the columns image_path,text,label .* missing: image_path, text"):
        run_calibrate("--csv", str(path))


def test_a_missing_csv_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="cannot be read"):
        run_calibrate("--csv", str(tmp_path / "nowhere.csv"))


@pytest.mark.parametrize(("value", "valid"), [(0, True), (30, True), (2.5, True), (-1, False), ("30", False)])
def test_the_cache_seconds_setting_is_checked(settings, value, valid):
    from clipcheck.checks import check_clipcheck_settings

    set_clip_settings(settings, CALIBRATION_CACHE_SECONDS=value)

    assert ("clipcheck.E014" not in [error.id for error in check_clipcheck_settings()]) is valid
