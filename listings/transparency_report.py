"""The transparency report of a period (DSA Article 15): restrictions, their timing, appeals, and the accuracy
of the automated means, from the stored decisions (``manage.py clip_transparency_report``).

Definitions (docs/compliance.md#transparency-report):

- a **restriction** is one of ``listings.statements.restriction_decisions``
  decided in the period; its category and automated detection are its
  statement's;
- **time from flag to decision**: from the listing's submission (when the
  check flags it and it enters the queue) to the restriction, in seconds;
  the median and the 95th percentile (nearest rank);
- **appeals** received (made in the period), decided, upheld and reversed
  (decided in the period);
- **machine flags decided**: first reviews, in the period, of listings the
  check sent to people (``machine_flagged``), approved or rejected and not
  undone; **upheld** when a person rejected the listing. The share upheld,
  and the overturn rate (approved) per reason code of the machine (a flag
  with several reasons counts for each), each with its 95 % Wilson interval;
- **sampled approvals**: listings the check approved that the random review
  sample sent to people, decided in the period; the **error rate** is the
  share a person rejected, with its 95 % Wilson interval.
"""

import csv
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clipcheck.calibration import wilson_interval
from listings.models import UNDO_REASON_CODE, Appeal, Listing, ModerationDecision
from listings.statements import machine_flagged, reason_code_terms, restriction_decisions

Status = Listing.Status
CSV_COLUMNS = ("section", "key", "value", "numerator", "denominator", "low_95", "high_95")


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self):
        return self.numerator / self.denominator if self.denominator else None

    @property
    def interval(self):
        return wilson_interval(self.numerator, self.denominator) if self.denominator else (None, None)


@dataclass
class TransparencyReport:
    since: datetime
    until: datetime
    restrictions: int = 0
    by_category: Counter = field(default_factory=Counter)
    by_reason_code: Counter = field(default_factory=Counter)
    by_automated_detection: Counter = field(default_factory=Counter)
    decision_seconds: list = field(default_factory=list)
    appeals_received: int = 0
    appeals_decided: int = 0
    appeals_upheld: int = 0
    appeals_reversed: int = 0
    appeal_seconds: list = field(default_factory=list)
    flags_upheld: Rate = Rate(0, 0)
    overturns_by_reason_code: dict = field(default_factory=dict)
    sampled_errors: Rate = Rate(0, 0)

    def rows(self):
        """The report as rows of ``CSV_COLUMNS``."""
        yield "period", "since", self.since.astimezone(UTC).isoformat(), None, None, None, None
        yield "period", "until", self.until.astimezone(UTC).isoformat(), None, None, None, None
        yield "restrictions", "total", self.restrictions, None, None, None, None
        for section, counts in (
            ("restrictions_by_category", self.by_category),
            ("restrictions_by_reason_code", self.by_reason_code),
            ("restrictions_by_automated_detection", self.by_automated_detection),
        ):
            for key, count in sorted(counts.items()):
                yield section, key, count, None, None, None, None
        for section, seconds in (("flag_to_decision_seconds", self.decision_seconds),
                                 ("appeal_to_decision_seconds", self.appeal_seconds)):
            yield section, "median", _rounded(median(seconds)), None, len(seconds), None, None
            yield section, "p95", _rounded(percentile(seconds, 95)), None, len(seconds), None, None
        yield "appeals", "received", self.appeals_received, None, None, None, None
        yield "appeals", "decided", self.appeals_decided, None, None, None, None
        yield "appeals", "upheld", self.appeals_upheld, None, None, None, None
        yield "appeals", "reversed", self.appeals_reversed, None, None, None, None
        yield _rate_row("accuracy", "machine_flags_upheld_share", self.flags_upheld)
        for code, rate in sorted(self.overturns_by_reason_code.items()):
            yield _rate_row("overturn_rate_by_reason_code", code, rate)
        yield _rate_row("accuracy", "sampled_approval_error_rate", self.sampled_errors)

    def write_csv(self, stream):
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in self.rows():
            writer.writerow(["" if cell is None else cell for cell in row])


def _rounded(value, digits=3):
    return None if value is None else round(value, digits)


def _rate_row(section, key, rate):
    low, high = rate.interval
    return section, key, _rounded(rate.value, 4), rate.numerator, rate.denominator, _rounded(low, 4), _rounded(high, 4)


def median(values):
    return statistics.median(values) if values else None


def percentile(values, percent):
    """The nearest-rank percentile: the smallest value with at least ``percent`` % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(percent / 100 * len(ordered)), 1) - 1]


def _decided_in(decisions, since, until):
    return decisions.filter(decided_at__gte=since, decided_at__lt=until)


def first_review_decisions(since, until):
    """People's approvals and rejections of listings waiting for a first review, not undone."""
    return _decided_in(
        ModerationDecision.objects.filter(
            undone_at__isnull=True, to_status__in=[Status.APPROVED, Status.REJECTED],
        ).exclude(reason_code=UNDO_REASON_CODE).filter(from_status__in=[Status.NEEDS_REVIEW, Status.APPROVED]),
        since, until,
    )


def transparency_report(*, since, until):
    """The report of decisions with ``since <= decided_at < until`` (appeals: made, or decided, then)."""
    report = TransparencyReport(since=since, until=until)
    for decision in restriction_decisions(since=since, until=until):
        report.restrictions += 1
        report.by_category[reason_code_terms(decision.reason_code)["category"]] += 1
        report.by_reason_code[decision.reason_code or "none"] += 1
        report.by_automated_detection["Yes" if machine_flagged(decision) else "No"] += 1
        report.decision_seconds.append((decision.decided_at - decision.listing.created_at).total_seconds())

    appeals = Appeal.objects.all()
    report.appeals_received = appeals.filter(created_at__gte=since, created_at__lt=until).count()
    decided = appeals.exclude(outcome=Appeal.Outcome.OPEN).filter(decided_at__gte=since, decided_at__lt=until)
    for appeal in decided:
        report.appeals_decided += 1
        report.appeals_upheld += appeal.outcome == Appeal.Outcome.UPHELD
        report.appeals_reversed += appeal.outcome == Appeal.Outcome.REVERSED
        report.appeal_seconds.append((appeal.decided_at - appeal.created_at).total_seconds())

    flags_decided = flags_upheld = 0
    sampled_decided = sampled_rejected = 0
    code_decided, code_overturned = Counter(), Counter()
    for decision in first_review_decisions(since, until):
        rejected = decision.to_status == Status.REJECTED
        if decision.sampled:
            sampled_decided += 1
            sampled_rejected += rejected
        elif machine_flagged(decision) and decision.from_status == Status.NEEDS_REVIEW:
            flags_decided += 1
            flags_upheld += rejected
            codes = {reason.get("code") for reason in decision.reasons if isinstance(reason, dict)}
            for code in codes - {None}:
                code_decided[code] += 1
                code_overturned[code] += not rejected
    report.flags_upheld = Rate(flags_upheld, flags_decided)
    report.overturns_by_reason_code = {code: Rate(code_overturned[code], count) for code, count in code_decided.items()}
    report.sampled_errors = Rate(sampled_rejected, sampled_decided)
    return report


def period_bounds(period):
    """``2026-H2`` → (2026-07-01, 2027-01-01) in UTC; also ``2026``, ``2026-Q3`` and ``2026-09``."""
    text = period.strip().upper()
    try:
        year, _, part = text.partition("-")
        year = int(year)
        if not part:
            first, months = 1, 12
        elif part in ("H1", "H2"):
            first, months = (1 if part == "H1" else 7), 6
        elif part in ("Q1", "Q2", "Q3", "Q4"):
            first, months = 3 * (int(part[1]) - 1) + 1, 3
        else:
            first, months = int(part), 1
            if not 1 <= first <= 12:
                raise ValueError(part)
        since = datetime(year, first, 1, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{period!r} is not a period like 2026-H2, 2026, 2026-Q3 or 2026-09.") from None
    end = first - 1 + months
    return since, datetime(year + end // 12, end % 12 + 1, 1, tzinfo=UTC)
