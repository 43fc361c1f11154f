"""The review queue on /metrics (clipcheck's exposition; registered in ``ListingsConfig.ready``).

- ``clipcheck_review_queue_size`` and ``clipcheck_review_queue_oldest_seconds``
  (listings waiting for a first review), ``clipcheck_appeal_queue_size`` and
  ``clipcheck_appeal_queue_oldest_seconds`` (sellers' appeals waiting for a
  moderator, aged from the appeal) are read from the database when /metrics
  is scraped (one process answers, so they are never summed over workers);
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


QUEUES = {
    "review": ("Listings waiting for a moderator.", "Age of the oldest listing waiting for a moderator."),
    "appeal": (
        "Sellers' appeals waiting for a moderator.", "Age of the oldest appeal waiting for a moderator (since it was made).",
    ),
}


class ReviewQueueCollector:
    """Queue size and the age of the oldest waiting item, at scrape time, per queue.

    ``stats()`` and ``appeal_stats()`` return an object with ``size`` and
    ``oldest_seconds`` (``listings.review.review_queue_stats``,
    ``listings.appeals.appeal_queue_stats``).
    """

    def __init__(self, stats, appeal_stats=None):
        self.sources = {"review": stats, "appeal": appeal_stats}

    def describe(self):
        # Declared without touching the database (registration happens in ready()).
        return [family for queue in self._queues() for family in self._families(queue)]

    def _queues(self):
        return [queue for queue, source in self.sources.items() if source is not None]

    @staticmethod
    def _families(queue, stats=None):
        size_help, oldest_help = QUEUES[queue]
        if stats is None:
            return [
                GaugeMetricFamily(f"clipcheck_{queue}_queue_size", size_help),
                GaugeMetricFamily(f"clipcheck_{queue}_queue_oldest_seconds", oldest_help),
            ]
        return [
            GaugeMetricFamily(f"clipcheck_{queue}_queue_size", size_help, value=stats.size),
            GaugeMetricFamily(
                f"clipcheck_{queue}_queue_oldest_seconds", oldest_help, value=round(stats.oldest_seconds, 3),
            ),
        ]

    def collect(self):
        for queue in self._queues():
            try:
                stats = self.sources[queue]()
            except DatabaseError:
                # /metrics keeps answering (the service metrics) while the database is away.
                logger.warning("%s queue metrics unavailable: database error.", queue.capitalize(), exc_info=True)
                return
            yield from self._families(queue, stats)
