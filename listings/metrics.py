"""The review queue on /metrics (clipcheck's exposition; registered in ``ListingsConfig.ready``).

- ``clipcheck_review_queue_size`` and ``clipcheck_review_queue_oldest_seconds``
  are read from the database when /metrics is scraped (one process answers,
  so they are never summed over workers);
- ``clipcheck_review_decisions_total{reason_code, to_status}`` counts the
  moderators' decisions (per process; aggregated in multiprocess mode);
- ``clipcheck_review_overturns_total{kind, reason_code}`` counts those that
  reverse the machine (``listings.drift.decision_overturns``).
"""

import logging

from django.db import DatabaseError
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

REVIEW_DECISIONS = Counter(
    "clipcheck_review_decisions", "Moderators' decisions by reason code.", ["reason_code", "to_status"]
)
REVIEW_OVERTURNS = Counter(
    "clipcheck_review_overturns",
    "Decisions that reverse the machine: flag_approved (a listing it flagged approved), sampled_rejected "
    "(a sampled approval rejected), by reason code.",
    ["kind", "reason_code"],
)


class ReviewQueueCollector:
    """Queue size and the age of the oldest waiting listing, at scrape time.

    ``stats()`` returns an object with ``size`` and ``oldest_seconds``
    (``listings.review.review_queue_stats``).
    """

    def __init__(self, stats):
        self.stats = stats

    def describe(self):
        # Declared without touching the database (registration happens in ready()).
        return [
            GaugeMetricFamily("clipcheck_review_queue_size", "Listings waiting for a moderator."),
            GaugeMetricFamily(
                "clipcheck_review_queue_oldest_seconds", "Age of the oldest listing waiting for a moderator."
            ),
        ]

    def collect(self):
        try:
            stats = self.stats()
        except DatabaseError:
            # /metrics keeps answering (the service metrics) while the database is away.
            logger.warning("Review queue metrics unavailable: database error.", exc_info=True)
            return
        yield GaugeMetricFamily("clipcheck_review_queue_size", "Listings waiting for a moderator.", value=stats.size)
        yield GaugeMetricFamily(
            "clipcheck_review_queue_oldest_seconds", "Age of the oldest listing waiting for a moderator.",
            value=round(stats.oldest_seconds, 3),
        )
