"""The transparency report: its figures equal those counted by hand on a seeded catalogue of decisions with
known timings and outcomes; the command writes them as CSV for a period."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from clipcheck.calibration import wilson_interval
from listings import review
from listings.appeals import appeal_create
from listings.models import Appeal, Listing, ModerationDecision
from listings.transparency_report import percentile, period_bounds, transparency_report
from tests.support.statements import listing_to_review

pytestmark = pytest.mark.django_db

Status = Listing.Status
T0 = datetime(2026, 8, 1, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
PASSAGE = {"code": "passage_mismatch", "field": "description", "message": "This passage does not match.",
           "score": 0.12, "threshold": 0.25}
CATEGORY = {"code": "category_conflict", "field": "category", "category": "bags", "category_score": 0.12,
            "photo_shows": "shoes", "photo_shows_score": 0.7, "message": "The photo does not look like bags."}


def decided(seller, moderator, *, to_status, at, reasons=(), reason_code="", sampled=False, created=T0):
    status = Status.APPROVED if sampled else Status.NEEDS_REVIEW
    listing = listing_to_review(seller=seller, reasons=list(reasons), status=status, sampled=sampled)
    Listing.objects.filter(pk=listing.pk).update(created_at=created)
    decision = review.decision_record(
        listing=Listing.objects.get(pk=listing.pk), moderator=moderator, to_status=to_status, reason_code=reason_code,
    )
    ModerationDecision.objects.filter(pk=decision.pk).update(decided_at=at)
    return ModerationDecision.objects.get(pk=decision.pk)


def appeal_decided(appeal, moderator, decision, at):
    closing = review.review_decide(listing_id=appeal.listing_id, moderator=moderator, decision=decision,
                                   reason_code="misleading_description" if decision == "reject" else "",
                                   require_claim=False)
    ModerationDecision.objects.filter(pk=closing.pk).update(decided_at=at)
    Appeal.objects.filter(pk=appeal.pk).update(decided_at=at)


@pytest.fixture
def catalogue():
    """Five restrictions in 2026-H2 (three machine-flagged, one unflagged, one sampled), one before it, one
    undone; a flag approved; three sampled approvals approved; three appeals (reversed, upheld, open)."""
    users = get_user_model().objects
    seller = users.create_user("seller")
    first = users.create_user("first", is_staff=True)
    second = users.create_user("second", is_staff=True)
    r1 = decided(seller, first, to_status=Status.REJECTED, at=T0 + HOUR, reasons=[PASSAGE],
                 reason_code="misleading_description")
    r2 = decided(seller, first, to_status=Status.REJECTED, at=T0 + 2 * HOUR, reasons=[PASSAGE, CATEGORY],
                 reason_code="wrong_category")
    r3 = decided(seller, first, to_status=Status.REJECTED, at=T0 + 3 * HOUR, reasons=[CATEGORY],
                 reason_code="wrong_category")
    decided(seller, first, to_status=Status.REJECTED, at=T0 + 10 * HOUR, reason_code="prohibited")
    decided(seller, first, to_status=Status.REJECTED, at=T0 + 5 * HOUR, sampled=True, reason_code="wrong_photo")
    decided(seller, first, to_status=Status.REJECTED, at=datetime(2026, 6, 30, tzinfo=UTC), reasons=[PASSAGE],
            reason_code="misleading_description", created=datetime(2026, 6, 29, tzinfo=UTC))
    undone = decided(seller, first, to_status=Status.REJECTED, at=T0 + HOUR, reasons=[PASSAGE],
                     reason_code="duplicate")
    ModerationDecision.objects.filter(pk=undone.pk).update(undone_at=T0 + 2 * HOUR)
    decided(seller, first, to_status=Status.APPROVED, at=T0 + 4 * HOUR, reasons=[PASSAGE])
    for hours in (6, 7, 8):
        decided(seller, first, to_status=Status.APPROVED, at=T0 + hours * HOUR, sampled=True)

    reversed_appeal = appeal_create(listing=r1.listing, text="It matches.", now=T0 + DAY)
    upheld_appeal = appeal_create(listing=r2.listing, text="It is the right category.", now=T0 + 2 * DAY)
    appeal_create(listing=r3.listing, text="Please look again.", now=T0 + 3 * DAY)
    appeal_decided(reversed_appeal, second, "approve", T0 + DAY + 2 * HOUR)
    appeal_decided(upheld_appeal, second, "reject", T0 + 2 * DAY + 6 * HOUR)


def test_the_reports_figures_equal_the_hand_counted_ones(catalogue):
    since, until = period_bounds("2026-H2")
    report = transparency_report(since=since, until=until)
    assert report.restrictions == 5
    assert report.by_reason_code == {"misleading_description": 1, "wrong_category": 2, "prohibited": 1,
                                     "wrong_photo": 1}
    assert report.by_category == {
        "STATEMENT_CATEGORY_CONSUMER_INFORMATION": 2, "STATEMENT_CATEGORY_OTHER_VIOLATION_TC": 2,
        "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS": 1,
    }
    assert report.by_automated_detection == {"Yes": 3, "No": 2}
    assert sorted(report.decision_seconds) == [3600, 7200, 10800, 18000, 36000]
    assert (report.appeals_received, report.appeals_decided, report.appeals_upheld, report.appeals_reversed) == (
        3, 2, 1, 1)
    assert sorted(report.appeal_seconds) == [7200, 21600]
    # Flags: r1, r2, r3 upheld, one approved; passage_mismatch in r1, r2 and the approved one.
    assert (report.flags_upheld.numerator, report.flags_upheld.denominator) == (3, 4)
    overturns = {code: (rate.numerator, rate.denominator) for code, rate in report.overturns_by_reason_code.items()}
    assert overturns == {"passage_mismatch": (1, 3), "category_conflict": (0, 2)}
    assert (report.sampled_errors.numerator, report.sampled_errors.denominator) == (1, 4)

    rows = {(row[0], row[1]): row for row in report.rows()}
    assert rows[("flag_to_decision_seconds", "median")][2] == 10800
    assert rows[("flag_to_decision_seconds", "p95")][2] == 36000
    assert rows[("appeal_to_decision_seconds", "median")][2] == 14400
    upheld = rows[("accuracy", "machine_flags_upheld_share")]
    # 3 of 4 by hand: p 0.75, Wilson 95 % (0.3006, 0.9544).
    assert upheld[2:] == (0.75, 3, 4, 0.3006, 0.9544)
    assert rows[("accuracy", "sampled_approval_error_rate")][2:] == (
        0.25, 1, 4, *(round(bound, 4) for bound in wilson_interval(1, 4)))
    assert rows[("overturn_rate_by_reason_code", "passage_mismatch")][2:5] == (0.3333, 1, 3)


def test_the_command_writes_the_period_as_csv(catalogue, tmp_path):
    out = io.StringIO()
    call_command("clip_transparency_report", "--period", "2026-H2", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    by_key = {(row["section"], row["key"]): row for row in rows}
    assert by_key[("period", "since")]["value"] == "2026-07-01T00:00:00+00:00"
    assert by_key[("restrictions", "total")]["value"] == "5"
    assert by_key[("appeals", "reversed")]["value"] == "1"
    assert by_key[("accuracy", "machine_flags_upheld_share")]["low_95"] == "0.3006"

    target = tmp_path / "report.csv"
    call_command("clip_transparency_report", "--since", "2026-06-01", "--until", "2026-07-01",
                 "--output", str(target), stderr=io.StringIO())
    earlier = {(row["section"], row["key"]): row for row in csv.DictReader(target.open())}
    assert earlier[("restrictions", "total")]["value"] == "1"
    with pytest.raises(CommandError, match="not a period"):
        call_command("clip_transparency_report", "--period", "2026-H3")
    with pytest.raises(CommandError, match="Say which period"):
        call_command("clip_transparency_report")


@pytest.mark.parametrize("period, bounds", [
    ("2026-H2", ((2026, 7, 1), (2027, 1, 1))), ("2026-H1", ((2026, 1, 1), (2026, 7, 1))),
    ("2026", ((2026, 1, 1), (2027, 1, 1))), ("2026-Q4", ((2026, 10, 1), (2027, 1, 1))),
    ("2026-12", ((2026, 12, 1), (2027, 1, 1))),
])
def test_periods(period, bounds):
    assert period_bounds(period) == tuple(datetime(*day, tzinfo=UTC) for day in bounds)


def test_the_percentile_is_the_nearest_rank():
    assert percentile([5, 1, 3, 2, 4], 95) == 5 and percentile(list(range(1, 101)), 95) == 95
    assert percentile([], 95) is None


def test_the_admin_shows_the_reports_figures_and_downloads_the_commands_csv(catalogue, tmp_path):
    from django.contrib.auth.models import Permission
    from django.test import Client
    from django.urls import reverse

    officer = get_user_model().objects.create_user("officer", is_staff=True)
    officer.user_permissions.add(Permission.objects.get(codename="view_moderationdecision"))
    browser = Client()
    browser.force_login(officer)
    url = reverse("admin:listings_moderationdecision_transparency")

    assert url in browser.get(reverse("admin:listings_moderationdecision_changelist")).content.decode()
    page = browser.get(url, {"period": "2026-H2"}).content.decode()
    assert '<tr data-section="restrictions" data-key="total">' in page
    assert '<td class="value">5</td>' in page.split('data-key="total">', 1)[1][:200]
    assert "3 of 4" in page and "0.3006 – 0.9544" in page  # machine flags upheld, with its interval
    csv_answer = browser.get(url, {"period": "2026-H2", "format": "csv"})
    command = io.StringIO()
    call_command("clip_transparency_report", "--period", "2026-H2", stdout=command)
    assert csv_answer["Content-Type"].startswith("text/csv")
    assert csv_answer.content.decode() == command.getvalue()
    assert "is not a period" in browser.get(url, {"period": "2026-H7"}).content.decode()

    nobody = get_user_model().objects.create_user("nobody", is_staff=True)
    browser.force_login(nobody)
    assert browser.get(url).status_code == 403
